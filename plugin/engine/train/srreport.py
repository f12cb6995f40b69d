"""Image targets in the training report: PSNR and SSIM of the model on the validation patches, in
the HR image's units, beside a bicubic upsampling of the same LR patches (the baseline every SR
paper shows), and a strip of samples LR | bicubic | SR | HR as a PNG."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import Cancelled
from ..models.modelcard import Normalization
from ..params import RunContext
from ..report import htmlreport

STRIP_SAMPLES = 4


@dataclass
class ImageScores:
    patches: int = 0
    psnr: float = 0.0  # mean over patches
    ssim: float = 0.0
    bicubic_psnr: float = 0.0
    bicubic_ssim: float = 0.0
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def rows(self) -> list[dict]:
        return [{"image": "super-resolved (model)", "PSNR (dB)": f"{self.psnr:.3f}", "SSIM": f"{self.ssim:.4f}"},
                {"image": "bicubic upsampling", "PSNR (dB)": f"{self.bicubic_psnr:.3f}",
                 "SSIM": f"{self.bicubic_ssim:.4f}"}]


def denormalise(values: np.ndarray, normalization: Normalization) -> np.ndarray:
    if normalization.kind == "standard":
        std = np.asarray(normalization.std, np.float32)
        return values * np.where(std > 0, std, 1.0) + np.asarray(normalization.mean, np.float32)
    if normalization.kind == "scale":
        return values / np.float32(normalization.scale)
    return values


def data_range(target_bands: list[dict]) -> float:
    """The HR image's range over all bands (manifest statistics): PSNR's and SSIM's peak value."""
    lows = [float(b["min"]) for b in target_bands if b.get("min") is not None]  # null: a band without data
    highs = [float(b["max"]) for b in target_bands if b.get("max") is not None]
    return max(max(highs, default=1.0) - min(lows, default=0.0), 1e-6)


def evaluate_images(model, stream, low: Normalization, high: Normalization, peak: float,
                    context: RunContext) -> ImageScores:
    """Mean PSNR/SSIM per patch (TensorFlow's, 11 x 11 Gaussian SSIM) of the model and of bicubic."""
    import tensorflow as tf

    scores = ImageScores()
    totals = np.zeros(4)
    for inputs, targets, _ in stream.epoch(0):
        if context.cancelled():
            raise Cancelled()
        name = next(iter(inputs))
        predicted = np.asarray(model.predict_on_batch(inputs[name]))
        hr = denormalise(targets, high)
        sr = denormalise(predicted, high)
        lr = denormalise(inputs[name], low)
        bicubic = tf.image.resize(lr, hr.shape[1:3], method="bicubic").numpy()
        for image, column in ((sr, 0), (bicubic, 2)):
            totals[column] += float(tf.reduce_sum(tf.image.psnr(hr, image, max_val=peak)))
            totals[column + 1] += float(tf.reduce_sum(tf.image.ssim(hr, image, max_val=peak)))
        if len(scores.samples) < STRIP_SAMPLES:
            for index in range(min(len(hr), STRIP_SAMPLES - len(scores.samples))):
                scores.samples.append((lr[index], bicubic[index], sr[index], hr[index]))
        scores.patches += len(hr)
    if scores.patches:
        scores.psnr, scores.ssim, scores.bicubic_psnr, scores.bicubic_ssim = (totals / scores.patches).tolist()
    return scores


def _rgb(image: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    bands = [2, 1, 0] if image.shape[-1] >= 3 else [0, 0, 0]
    picked = image[..., bands].astype(np.float32)
    return np.clip((picked - low) / np.maximum(high - low, 1e-6), 0, 1)


def plot_strip(scores: ImageScores, png_path: str) -> bool:
    """Rows of samples, columns LR | bicubic | SR | HR, each stretched as its HR (2-98 %)."""
    if not scores.samples:
        return False
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    rows = len(scores.samples)
    figure, axes = pyplot.subplots(rows, 4, figsize=(8, 2.1 * rows), dpi=100, squeeze=False)
    for row, sample in enumerate(scores.samples):
        hr = sample[3]
        bands = [2, 1, 0] if hr.shape[-1] >= 3 else [0, 0, 0]
        low = np.percentile(hr[..., bands], 2, axis=(0, 1))
        high = np.percentile(hr[..., bands], 98, axis=(0, 1))
        for column, (image, title) in enumerate(zip(sample, ("LR", "bicubic", "SR", "HR"))):
            axis = axes[row][column]
            axis.imshow(_rgb(image, low, high), interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(title)
    figure.tight_layout()
    figure.savefig(png_path)
    pyplot.close(figure)
    return True


def report_sections(scores: ImageScores, label: str, strip_png: str) -> list[tuple[str, str]]:
    sections = [(f"Image quality on the {label} ({scores.patches} patches)",
                 htmlreport.table(scores.rows(), ["image", "PSNR (dB)", "SSIM"]) + htmlreport.paragraph(
                     "Mean over patches, in the HR image's units; peak value: the HR image's range (manifest "
                     "statistics); SSIM: TensorFlow's (11 × 11 Gaussian window). Bicubic: the LR patch upsampled "
                     "to the HR grid, the baseline the model must beat."))]
    if plot_strip(scores, strip_png):
        sections.append(("Validation samples: LR | bicubic | SR | HR", htmlreport.image_tag(strip_png, "samples")))
    return sections
