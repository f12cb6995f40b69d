"""Losses and per-epoch metrics for image targets (super-resolution), as registered Keras objects so
a checkpoint (.keras) reloads with them when training resumes.

All work on the standardised values the network outputs. PSNR and SSIM per epoch use the batch's own
target range as the data range (nothing to configure, comparable from epoch to epoch); the report's
final PSNR/SSIM are computed in the HR image's units (imagequality in training.evaluate_images).
"""

from __future__ import annotations

import keras
import tensorflow as tf

IMAGE_LOSSES = ("l1", "l2", "ssim")


def _data_range(y_true):
    return tf.maximum(tf.reduce_max(y_true) - tf.reduce_min(y_true), 1e-6)


@keras.saving.register_keras_serializable(package="patchflow")
def psnr(y_true, y_pred):
    return tf.image.psnr(y_true, y_pred, max_val=_data_range(y_true))


@keras.saving.register_keras_serializable(package="patchflow")
def ssim(y_true, y_pred):
    return tf.image.ssim(y_true, y_pred, max_val=_data_range(y_true), filter_size=7)


@keras.saving.register_keras_serializable(package="patchflow")
class ImageLoss(keras.losses.Loss):
    """A weighted sum of L1, L2 (mean squared error) and 1 - SSIM."""

    def __init__(self, weights: dict[str, float] | None = None, name: str = "image_loss", **options):
        super().__init__(name=name, **options)
        self.weights = {k: float(v) for k, v in (weights or {"l1": 1.0}).items() if float(v)}

    def call(self, y_true, y_pred):
        """Per pixel (n, h, w), as the sample weights of image targets are given."""
        total = tf.zeros(tf.shape(y_true)[:3], y_pred.dtype)
        if "l1" in self.weights:
            total += self.weights["l1"] * tf.reduce_mean(tf.abs(y_true - y_pred), axis=-1)
        if "l2" in self.weights:
            total += self.weights["l2"] * tf.reduce_mean(tf.square(y_true - y_pred), axis=-1)
        if "ssim" in self.weights:
            total += self.weights["ssim"] * (1.0 - ssim(y_true, y_pred))[:, None, None]
        return total

    def get_config(self):
        return {**super().get_config(), "weights": self.weights}
