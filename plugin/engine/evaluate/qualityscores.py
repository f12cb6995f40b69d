"""Image-quality scores summed strip by strip: the strips read (with PAD rows of overlap for SSIM's window),
SSIM maps, spectral angles, squared errors and the reference's statistics added up in one pass (or two, when
the data ranges are only known after the first), and PSNR, SSIM, SAM, ERGAS and RMSE per band and overall.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import Cancelled
from ..geodata.raster import Window
from ..reporting import Reporter

if TYPE_CHECKING:  # referencegrid imports this module (WIN_SIZE)
    from .referencegrid import OnGrid


STRIP_PIXELS = 1 << 20  # pixels of one band read per strip (the tests make it small)
WIN_SIZE = 7  # SSIM window, scikit-image's default
PAD = (WIN_SIZE - 1) // 2
K1, K2 = 0.01, 0.03


def strips(window: Window, rows_per_strip: int) -> Iterator[tuple[Window, int, int]]:
    """(window read, with up to PAD rows of overlap above and below; its first own row; its own rows)."""
    c0, r0, width, height = window
    for top in range(0, height, rows_per_strip):
        bottom = min(height, top + rows_per_strip)
        read_top, read_bottom = max(0, top - PAD), min(height, bottom + PAD)
        yield (c0, r0 + read_top, width, read_bottom - read_top), top - read_top, bottom - top


def ssim_map(x: np.ndarray, y: np.ndarray, data_range: float) -> np.ndarray:
    """SSIM at every pixel of two 2-D float64 images: scikit-image's ``structural_similarity`` computation
    (uniform WIN_SIZE window, sample covariance), without the border crop."""
    from scipy.ndimage import uniform_filter

    count = WIN_SIZE * WIN_SIZE
    cov_norm = count / (count - 1)
    ux, uy = uniform_filter(x, WIN_SIZE), uniform_filter(y, WIN_SIZE)
    uxx, uyy, uxy = (uniform_filter(a * b, WIN_SIZE) for a, b in ((x, x), (y, y), (x, y)))
    vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))


def window_valid(valid: np.ndarray) -> np.ndarray:
    """Where the whole SSIM window around a pixel is valid (outside the array counts as not valid)."""
    from scipy.ndimage import minimum_filter

    return minimum_filter(valid.astype(np.uint8), size=WIN_SIZE, mode="constant", cval=0).astype(bool)


def spectral_angles(reference: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Angles in degrees between the (bands, n) spectra, for the pixels where neither is zero; computed as
    2 atan2(|u - v|, |u + v|) of the unit vectors, which stays accurate near 0 and 180 degrees."""
    norm_r, norm_i = np.linalg.norm(reference, axis=0), np.linalg.norm(image, axis=0)
    keep = (norm_r > 0) & (norm_i > 0)
    u, v = reference[:, keep] / norm_r[keep], image[:, keep] / norm_i[keep]
    return np.degrees(2 * np.arctan2(np.linalg.norm(u - v, axis=0), np.linalg.norm(u + v, axis=0)))


@dataclass
class Sums:
    """What one image's scores are made of, summed strip by strip."""

    bands: int
    squared_error: np.ndarray = field(init=False)
    ssim_sum: np.ndarray = field(init=False)
    ssim_pixels: int = 0
    angle_sum: float = 0.0
    angle_pixels: int = 0

    def __post_init__(self) -> None:
        self.squared_error = np.zeros(self.bands)
        self.ssim_sum = np.zeros(self.bands)


@dataclass
class ReferenceSums:
    bands: int
    pixels: int = 0
    total: np.ndarray = field(init=False)
    minimum: np.ndarray = field(init=False)
    maximum: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.total = np.zeros(self.bands)
        self.minimum = np.full(self.bands, np.inf)
        self.maximum = np.full(self.bands, -np.inf)

    def add(self, values: np.ndarray) -> None:
        """(bands, n) valid reference values."""
        self.pixels += values.shape[1]
        if values.shape[1]:
            self.total += values.sum(axis=1)
            self.minimum = np.minimum(self.minimum, values.min(axis=1))
            self.maximum = np.maximum(self.maximum, values.max(axis=1))


def scan(reference: OnGrid, images: list[OnGrid], window: Window, ranges: np.ndarray | None, first_pass: bool,
         reporter: Reporter, cancelled: Callable[[], bool]) -> tuple[ReferenceSums, list[Sums], int]:
    """One pass over the strips: errors, reference statistics and angles (``first_pass``), SSIM (when the
    ``ranges`` are known). Returns the sums and the number of strips."""
    bands = reference.band_count
    ref_sums, sums = ReferenceSums(bands), [Sums(bands) for _ in images]
    rows_per_strip = max(1, STRIP_PIXELS // window[2])
    planned = list(strips(window, rows_per_strip))
    what = ("errors and statistics" if first_pass else "") + (" and " if first_pass and ranges is not None else "") \
        + ("SSIM" if ranges is not None else "")
    reporter.stage(f"measuring {what}", 0)
    for index, (read, first, own_rows) in enumerate(planned):
        if cancelled():
            raise Cancelled()
        ref_values, valid = reference.read(read)
        read_images = [image.read(read) for image in images]
        for _, image_valid in read_images:
            valid &= image_valid
        own = slice(first, first + own_rows)
        own_valid = valid[own]
        if first_pass:
            ref_own = ref_values[:, own][:, own_valid]
            ref_sums.add(ref_own)
            for (values, _), image_sums in zip(read_images, sums):
                _add_errors(image_sums, ref_own, values[:, own][:, own_valid])
        if ranges is not None:
            counted = window_valid(valid)[own]
            ref_filled = np.where(valid, ref_values, 0.0)
            for (values, _), image_sums in zip(read_images, sums):
                _add_ssim(image_sums, ref_filled, np.where(valid, values, 0.0), ranges, own, counted)
        reporter.stage(f"{what}: strips {index + 1}/{len(planned)}", 100.0 * (index + 1) / len(planned), log=False)
    return ref_sums, sums, len(planned)


def _add_errors(sums: Sums, reference: np.ndarray, image: np.ndarray) -> None:
    sums.squared_error += ((image - reference) ** 2).sum(axis=1)
    if sums.bands > 1:
        angles = spectral_angles(reference, image)
        sums.angle_sum += float(angles.sum())
        sums.angle_pixels += angles.size


def _add_ssim(sums: Sums, reference: np.ndarray, image: np.ndarray, ranges: np.ndarray, own: slice,
              counted: np.ndarray) -> None:
    for band in range(sums.bands):
        sums.ssim_sum[band] += ssim_map(reference[band], image[band], float(ranges[band]))[own][counted].sum()
    sums.ssim_pixels += int(counted.sum())


@dataclass
class Scores:
    """One image's scores: per band and overall (None where a score is undefined)."""

    label: str
    psnr: list[float]
    ssim: list[float | None]
    rmse: list[float]
    overall_psnr: float
    overall_ssim: float | None
    sam: float | None
    ergas: float | None
    overall_rmse: float


def psnr(mse: float, data_range: float) -> float:
    return math.inf if mse == 0 else 10 * math.log10(data_range ** 2 / mse)


def scores_of(label: str, sums: Sums, ref_sums: ReferenceSums, ranges: np.ndarray, scale: float) -> Scores:
    n = ref_sums.pixels
    mse = sums.squared_error / n
    normalised = float(np.mean(mse / ranges ** 2))
    overall_psnr = math.inf if normalised == 0 else -10 * math.log10(normalised)
    ssim = [float(v) / sums.ssim_pixels if sums.ssim_pixels else None for v in sums.ssim_sum]
    means = ref_sums.total / n
    ergas = None if np.any(means == 0) else float(100 * scale * math.sqrt(float(np.mean(mse / means ** 2))))
    return Scores(
        label=label, psnr=[psnr(float(m), float(r)) for m, r in zip(mse, ranges)], ssim=ssim,
        rmse=[math.sqrt(float(m)) for m in mse], overall_psnr=overall_psnr,
        overall_ssim=float(np.mean(np.array(ssim, dtype=np.float64))) if sums.ssim_pixels else None,
        sam=sums.angle_sum / sums.angle_pixels if sums.angle_pixels else None, ergas=ergas,
        overall_rmse=math.sqrt(float(mse.mean())))
