"""Evaluate: how good the results are. Accuracy of a class map against references (confusion matrix, OA, kappa, per-
class F1), several accuracy reports compared side by side, and image quality of a produced image against a reference
(PSNR, SSIM, SAM, ERGAS).
"""
