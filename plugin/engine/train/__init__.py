"""Train: fit a model on patches datasets streamed from disk, with checkpoints, resumption, and the training report
(settings, loss and metric curves, validation scores, super-resolution PSNR/SSIM against a bicubic baseline).
"""
