"""Experiment: "does super-resolution help?" on the user's data, the four versions of an image (LR, bicubic, SR,
HR) classified by the same model and compared on a held-out part, from the engine's own operations.
"""
