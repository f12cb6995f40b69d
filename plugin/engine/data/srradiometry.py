"""Radiometric matching for super-resolution datasets: the HR patches averaged over each LR pixel's
ground, a per-band linear fit LR = gain x HR + offset on the training pairs, and the HR
patches-image rewritten calibrated with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .patches import BandStats, PatchesImage, PatchesImageWriter

REWRITE_CHUNK = 256  # patches per read when the HR patches are calibrated
FIT_CHUNK = 64  # HR patches averaged at once for the radiometric fit


def area_matrix(patch: int, hr_patch: int, ratio: float) -> np.ndarray:
    """(patch, hr_patch) weights averaging HR pixels over each LR pixel by overlap length (exact
    for non-integer ratios: an HR pixel split by an LR edge counts in both)."""
    lr_edges = np.arange(patch + 1) * ratio
    hr_edges = np.arange(hr_patch + 1, dtype=np.float64)
    low = np.maximum(lr_edges[:-1, None], hr_edges[None, :-1])
    high = np.minimum(lr_edges[1:, None], hr_edges[None, 1:])
    return np.clip(high - low, 0, None) / ratio


def area_average(hr: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(n, bands, P, P) HR patches -> (n, bands, p, p): each LR pixel's HR mean."""
    return np.einsum("ij,nbjk,lk->nbil", matrix, hr.astype(np.float64), matrix, optimize=True)


@dataclass
class LinearFit:
    """Per-band least squares LR ~ gain * HR_averaged + offset, accumulated batch by batch."""

    bands: int
    count: np.ndarray = field(init=False)
    sums: np.ndarray = field(init=False)  # x, y, xx, xy, yy per band

    def __post_init__(self) -> None:
        self.count = np.zeros(self.bands)
        self.sums = np.zeros((5, self.bands))

    def add(self, hr_averaged: np.ndarray, lr: np.ndarray) -> None:
        x = hr_averaged.transpose(1, 0, 2, 3).reshape(self.bands, -1)
        y = lr.astype(np.float64).transpose(1, 0, 2, 3).reshape(self.bands, -1)
        self.count += x.shape[1]
        self.sums += np.stack([x.sum(1), y.sum(1), (x * x).sum(1), (x * y).sum(1), (y * y).sum(1)])

    def solve(self) -> dict:
        n = np.maximum(self.count, 1)
        mx, my = self.sums[0] / n, self.sums[1] / n
        vx = self.sums[2] / n - mx**2
        vy = self.sums[4] / n - my**2
        cov = self.sums[3] / n - mx * my
        flat = vx <= 1e-12 * np.maximum(1.0, mx**2)
        gain = np.where(flat, 1.0, cov / np.where(flat, 1.0, vx))
        offset = my - gain * mx
        r2 = np.where(flat | (vy <= 0), 0.0, cov**2 / np.where(flat | (vy <= 0), 1.0, vx * vy))
        return {"gain": [float(g) for g in gain], "offset": [float(o) for o in offset],
                "r2": [float(v) for v in r2], "pixels": int(self.count[0]),
                "model": "LR = gain * HR + offset per band, HR averaged over each LR pixel, fitted on the "
                         "training pairs; the HR patches hold gain * HR + offset"}


def calibrate_patches(raw: str, output: str, gain: np.ndarray, offset: np.ndarray, stats: BandStats) -> int:
    """Rewrite an HR patches-image as float32 gain * HR + offset, chunk by chunk; returns the count."""
    image = PatchesImage(raw, None, "HR")
    writer = PatchesImageWriter(output, len(image), image.bands, image.patch_size, np.dtype(np.float32))
    g, o = gain.astype(np.float32)[:, None, None], offset.astype(np.float32)[:, None, None]
    for start in range(0, len(image), REWRITE_CHUNK):
        patches = image.read(start, start + REWRITE_CHUNK).transpose(0, 3, 1, 2).astype(np.float32) * g + o
        writer.add(patches)
        stats.add(patches)
    descriptions = [image.ds.GetRasterBand(i).GetDescription() for i in range(1, image.bands + 1)]
    image.ds = None
    writer.close(descriptions, [None] * len(descriptions))
    os.remove(raw)
    return writer.written
