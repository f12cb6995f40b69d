"""The baselines beside bicubic that a super-resolution result is held to: Lanczos upsampling (GDAL warp, on the
reference grid like bicubic) and a sharpened bicubic, an unsharp mask on the bicubic image whose two parameters
(the Gaussian's sigma and the amount) are fitted on a training part of the reference; and the sentence that says
how the produced image compares to the best baseline for each score.

Unsharp mask: S = B + amount (B - G_sigma * B), B the bicubic image and G_sigma * B its Gaussian blur (scipy's
kernel, truncated at 4 sigma), computed over B's valid pixels only (normalised convolution: each pixel's kernel
is renormalised over the valid neighbours, pixels outside the grid count as not valid). For each sigma of SIGMAS
the amount minimising the squared error over the fit pixels is found in closed form (least squares, bands
weighted by 1 / R_b^2 as the overall PSNR weighs them, R_b DATA_RANGE else the reference band's max - min over
the fit pixels); the sigma of the smallest error is kept. At most about FIT_PIXELS pixels a band are read (whole
strips, evenly spaced).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import Cancelled, PatchFlowError
from ..geodata.raster import Grid, Window
from ..reporting import Reporter
from .qualityscores import STRIP_PIXELS, Scores
from .referencegrid import OnGrid, extent_window, format_extent, window_extent

SIGMAS = tuple(0.5 * 2 ** (k / 2) for k in range(9))  # 0.5 to 8 reference pixels, steps of sqrt(2)
TRUNCATE = 4.0  # scipy.ndimage.gaussian_filter's default
FIT_PIXELS = 1 << 22  # at most about this many pixels a band are read to fit (whole strips, evenly spaced)


def radius(sigma: float) -> int:
    """scipy's kernel radius for ``sigma``."""
    return int(TRUNCATE * sigma + 0.5)


def padded(window: Window, pad: int, grid: Grid) -> tuple[Window, int, int]:
    """``window`` grown by ``pad`` pixels on each side, clipped to the grid; and where ``window`` starts in it."""
    c0, r0, w, h = window
    left, top = max(0, c0 - pad), max(0, r0 - pad)
    right, bottom = min(grid.width, c0 + w + pad), min(grid.height, r0 + h + pad)
    return (left, top, right - left, bottom - top), c0 - left, r0 - top


def blurred(values: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """(bands, rows, cols) Gaussian blur over the valid pixels (normalised convolution); NaN where not valid."""
    from scipy.ndimage import gaussian_filter

    weights = gaussian_filter(valid.astype(np.float64), sigma, mode="constant", truncate=TRUNCATE)
    sums = gaussian_filter(np.where(valid, values, 0.0), (0, sigma, sigma), mode="constant", truncate=TRUNCATE)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid, sums / weights, np.nan)


class Sharpened(OnGrid):
    """The bicubic baseline with an unsharp mask: read with the kernel's radius of bicubic pixels around."""

    def __init__(self, bicubic: OnGrid, grid: Grid, sigma: float, amount: float, note: str) -> None:
        super().__init__(bicubic.stack, bicubic.warped, note)
        self.bicubic, self.grid, self.sigma, self.amount = bicubic, grid, sigma, amount

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        around, dc, dr = padded(window, radius(self.sigma), self.grid)
        values, valid = self.bicubic.read(around)
        sharp = values + self.amount * (values - blurred(values, valid, self.sigma))
        own = (slice(dr, dr + window[3]), slice(dc, dc + window[2]))
        return sharp[(slice(None), *own)], valid[own]


@dataclass
class FitPart:
    window: Window  # the pixels the fit reads
    excluded: Window | None  # the compared window, left out of them
    parameter: str | None  # FIT_EXTENT when the user gave it (an empty fit is then an error)
    evaluated: bool  # fitted on the compared pixels


@dataclass
class Fit:
    sigma: float
    amount: float
    pixels: int
    evaluated: bool
    description: str
    psnr_gain: float  # dB over bicubic on the fit pixels (overall PSNR's weighting)


def fit_part(fit_text: str, extent_given: bool, window: Window, grid: Grid, reporter: Reporter) -> FitPart:
    """FIT_EXTENT less the compared window; by default the reference outside EXTENT; without either, the
    compared window itself."""
    if fit_text.strip():
        fit = extent_window(fit_text, grid, "FIT_EXTENT")
        overlap = _overlap(fit, window)
        if overlap == fit[2] * fit[3]:
            raise PatchFlowError(
                "the fit extent lies inside the compared pixels (EXTENT, else the whole reference): the sharpened "
                "bicubic would be fitted on the pixels it is scored on. Give EXTENT for the compared part and a "
                "FIT_EXTENT outside it, or leave FIT_EXTENT empty.", "FIT_EXTENT")
        if overlap:
            reporter.warning(f"FIT_EXTENT overlaps the compared extent: its {overlap} compared pixels are left out "
                             "of the fit.")
        return FitPart(fit, window, "FIT_EXTENT", False)
    if extent_given and _overlap((0, 0, grid.width, grid.height), window) < grid.width * grid.height:
        return FitPart((0, 0, grid.width, grid.height), window, None, False)
    return FitPart(window, None, None, True)


def _overlap(a: Window, b: Window) -> int:
    cols = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    rows = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, cols) * max(0, rows)


class _FitSums:
    def __init__(self, bands: int) -> None:
        self.pixels = 0
        self.rr = np.zeros(bands)  # sum of (R - B)^2
        self.rd = np.zeros((len(SIGMAS), bands))  # sum of (R - B) D_sigma
        self.dd = np.zeros((len(SIGMAS), bands))  # sum of D_sigma^2
        self.low, self.high = np.full(bands, np.inf), np.full(bands, -np.inf)


def _fit_strips(part: FitPart) -> list[Window]:
    c0, r0, w, h = part.window
    rows = max(1, STRIP_PIXELS // w)
    planned = [(c0, r0 + top, w, min(rows, h - top)) for top in range(0, h, rows)]
    every = max(1, math.ceil(w * h / FIT_PIXELS))
    return planned[every // 2::every] if every > 1 else planned


def _sums(reference: OnGrid, bicubic: OnGrid, grid: Grid, part: FitPart,
          cancelled: Callable[[], bool]) -> _FitSums:
    sums = _FitSums(reference.band_count)
    for strip in _fit_strips(part):
        if cancelled():
            raise Cancelled()
        ref_values, valid = reference.read(strip)
        around, dc, dr = padded(strip, radius(max(SIGMAS)), grid)
        values, around_valid = bicubic.read(around)
        own = (slice(dr, dr + strip[3]), slice(dc, dc + strip[2]))
        base = values[(slice(None), *own)]
        valid &= around_valid[own]
        if part.excluded is not None:
            c0, r0, w, h = part.excluded
            rows = np.arange(strip[1], strip[1] + strip[3])[:, None]
            cols = np.arange(strip[0], strip[0] + strip[2])[None, :]
            valid &= ~((rows >= r0) & (rows < r0 + h) & (cols >= c0) & (cols < c0 + w))
        if not valid.any():
            continue
        error = (ref_values - base)[:, valid]
        sums.pixels += error.shape[1]
        sums.rr += (error ** 2).sum(axis=1)
        sums.low = np.minimum(sums.low, ref_values[:, valid].min(axis=1))
        sums.high = np.maximum(sums.high, ref_values[:, valid].max(axis=1))
        for index, sigma in enumerate(SIGMAS):
            detail = (values - blurred(values, around_valid, sigma))[(slice(None), *own)][:, valid]
            sums.rd[index] += (error * detail).sum(axis=1)
            sums.dd[index] += (detail ** 2).sum(axis=1)
    return sums


def fit_sharpening(reference: OnGrid, bicubic: OnGrid, grid: Grid, part: FitPart, given_range: float | None,
                   reporter: Reporter, cancelled: Callable[[], bool]) -> Fit:
    """The unsharp mask's sigma and amount of least squared error on the fit part's valid pixels."""
    sums = _sums(reference, bicubic, grid, part, cancelled)
    if sums.pixels == 0 and part.parameter:
        raise PatchFlowError("no pixel of the fit extent outside the compared extent is valid in both the reference "
                             "and the bicubic LOW_RESOLUTION. Choose a FIT_EXTENT that both cover.", part.parameter)
    if sums.pixels == 0 and not part.evaluated:
        reporter.warning("no pixel of the reference outside EXTENT is valid in both the reference and "
                         "LOW_RESOLUTION: the sharpened bicubic is fitted on the compared pixels (optimistic).")
        part = FitPart(part.excluded or part.window, None, None, True)
        sums = _sums(reference, bicubic, grid, part, cancelled)
    ranges = np.full(reference.band_count, given_range) if given_range is not None else sums.high - sums.low
    weights = 1.0 / np.where(ranges > 0, ranges, 1.0) ** 2
    best = (math.inf, SIGMAS[0], 0.0)
    for index, sigma in enumerate(SIGMAS):
        rd, dd = float(np.dot(weights, sums.rd[index])), float(np.dot(weights, sums.dd[index]))
        amount = rd / dd if dd > 0 else 0.0
        error = float(np.dot(weights, sums.rr)) - 2 * amount * rd + amount ** 2 * dd
        if error < best[0]:
            best = (error, sigma, amount)
    bicubic_error = float(np.dot(weights, sums.rr))
    gain = 10 * math.log10(bicubic_error / best[0]) if best[0] > 0 and bicubic_error > 0 else 0.0
    where = _where(part, grid)
    return Fit(best[1], best[2], sums.pixels, part.evaluated, where, gain)


def _where(part: FitPart, grid: Grid) -> str:
    if part.evaluated:
        return ("the compared pixels themselves (no separate training part: give EXTENT, or EXTENT and "
                "FIT_EXTENT), so the sharpened baseline is fitted on the evaluated pixels and is optimistic")
    inside = "FIT_EXTENT" if part.parameter else "the reference"
    area = format_extent(window_extent(grid, part.window))
    return f"{inside} ({area}) outside the compared extent"


def sharpened_note(fit: Fit) -> str:
    smoothing = " (negative: smoothing fits better than sharpening here)" if fit.amount < 0 else ""
    return (f"sharpened the bicubic LOW_RESOLUTION with an unsharp mask (Gaussian sigma {fit.sigma:.3g} reference "
            f"px, amount {fit.amount:.4f}{smoothing}) fitted on {fit.pixels} pixels of {fit.description}; "
            f"{fit.psnr_gain:+.2f} dB over bicubic there")


# ---- the produced image against the best baseline --------------------------------------------------------

SHORT_NAMES = {"bicubic baseline": "bicubic", "Lanczos baseline": "Lanczos",
               "sharpened bicubic baseline": "sharpened bicubic"}
SCORES = (("PSNR", "overall_psnr", True, " dB", 2), ("SSIM", "overall_ssim", True, "", 4),
          ("SAM", "sam", False, "°", 3), ("ERGAS", "ergas", False, "", 3))


def comparison(image: Scores, baselines: list[Scores]) -> str:
    """Per score, how the produced image compares to the best baseline, e.g. "PSNR +0.80 dB over the best
    baseline, the sharpened bicubic (+2.00 dB over bicubic, ...); ...; SAM 0.310° worse than the bicubic
    (1.820° against 1.510°)"; "" without baselines."""
    parts = []
    for name, attribute, higher, unit, digits in SCORES:
        value = getattr(image, attribute)
        scored = [(getattr(b, attribute), SHORT_NAMES.get(b.label, b.label)) for b in baselines]
        scored = [(v, label) for v, label in scored if v is not None]
        if value is None or not scored:
            continue
        best_value, best = (max if higher else min)(scored, key=lambda item: item[0])
        if math.isinf(value) or math.isinf(best_value):
            parts.append(f"{name} {value:g} against {best_value:g} for the {best}")
            continue
        difference = value - best_value
        if difference == 0:
            parts.append(f"{name} equal to the best baseline's, the {best}")
        elif higher:
            others = ", ".join(f"{value - v:+.{digits}f}{unit} over {label}" for v, label in scored
                               if label != best and not math.isinf(v))
            word = "over" if difference > 0 else "below"
            parts.append(f"{name} {abs(difference):.{digits}f}{unit} {word} the best baseline, the {best}"
                         + (f" ({others})" if name == "PSNR" and others else ""))
        else:
            word = "better" if difference < 0 else "worse"
            others = "".join(f", {label} {v:.{digits}f}{unit}" for v, label in scored if label != best)
            parts.append(f"{name} {abs(difference):.{digits}f}{unit} {word} than the best baseline, the {best} "
                         f"({value:.{digits}f}{unit} against {best_value:.{digits}f}{unit}{others}; lower is "
                         "better)")
    return "; ".join(parts) + ("." if parts else "")
