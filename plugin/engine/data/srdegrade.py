"""Degradation of an HR image by Wald's protocol, for super-resolution datasets: a Gaussian
low-pass whose gain at the LR Nyquist frequency is NYQUIST_GAIN, sampled at LR pixel centres, written
block by block as the LR GeoTIFF (any HR image thus becomes a training set).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from osgeo import gdal

from ..errors import Cancelled
from ..geodata.geotiff import create_geotiff, creation_options
from ..geodata.raster import Grid, RasterStack
from ..reporting import Reporter
from .patches import MAX_CACHE_BYTES

NYQUIST_GAIN = 0.25  # the degradation filter's gain at the LR Nyquist frequency
DEGRADE_TILE = 256  # LR pixels per side of a degraded block (and of the LR GeoTIFF's tiles)
LR_OPTIONS = creation_options(tiled=True, block=DEGRADE_TILE, deflate=True, predictor=3)


def gaussian_sigma(scale: float, gain: float = NYQUIST_GAIN) -> float:
    """Standard deviation (HR pixels) of the Gaussian low-pass whose gain at the LR Nyquist
    frequency is ``gain``.

    A Gaussian of standard deviation s has the transfer function H(f) = exp(-2 pi^2 s^2 f^2) (f in
    cycles per HR pixel). The LR grid's Nyquist frequency is f_N = 1 / (2 r). Setting H(f_N) = g:

        s = r * sqrt(-2 ln g) / pi        (g = 0.25: s = 2 r sqrt(ln 2) / pi ~ 0.530 r)

    i.e. a full width at half maximum of 2 sqrt(2 ln 2) s ~ 1.25 r. This is the MTF-matched filter
    of Wald's protocol (Wald, Ranchin & Mangolini 1997, PE&RS 63(6)) as pansharpening and SR
    practice build it (Aiazzi et al. 2006, PE&RS 72(5); Vivone et al. 2015, IEEE TGRS 53(5)):
    optical sensors' MTF at Nyquist is typically 0.2-0.3, so the degraded image looks like one the
    coarser sensor would have taken, with little aliasing.
    """
    return scale * math.sqrt(-2.0 * math.log(gain)) / math.pi


def degradation_kernel(scale: int, sigma: float) -> tuple[np.ndarray, int]:
    """1-D weights of the Gaussian centred on LR pixel 0's centre, and the HR index of its first tap:
    LR pixel i = sum over t of w[t] * HR[i * scale + first + t] (truncated at 3 sigma, normalised).

    The centre of LR pixel i is HR index i r + (r - 1) / 2 (between two HR pixels when r is even):
    decimation samples the blurred image at LR pixel centres, so the Gaussian is the whole system
    response and LR pixel (i, j) is centred on the HR block [i r, (i + 1) r)."""
    centre = (scale - 1) / 2
    first = math.floor(centre - 3 * sigma)
    last = math.ceil(centre + 3 * sigma)
    taps = np.arange(first, last + 1)
    weights = np.exp(-((taps - centre) ** 2) / (2 * sigma**2))
    return weights / weights.sum(), first


def decimate_axis(values: np.ndarray, weights: np.ndarray, scale: int, count: int, axis: int) -> np.ndarray:
    """``count`` weighted sums along ``axis``, ``scale`` apart; ``values`` starts at the first tap."""
    result = None
    for tap, weight in enumerate(weights):
        index = [slice(None)] * values.ndim
        index[axis] = slice(tap, tap + (count - 1) * scale + 1, scale)
        term = values[tuple(index)] * np.float32(weight)
        if result is None:
            result = term
        else:
            result += term
    assert result is not None  # one tap at least
    return result


def blur_decimate(values: np.ndarray, weights: np.ndarray, scale: int, rows: int, cols: int) -> np.ndarray:
    """(bands, HR rows, HR cols) with the kernel's margins -> (bands, rows, cols) LR pixels (separable)."""
    return decimate_axis(decimate_axis(values, weights, scale, rows, 1), weights, scale, cols, 2)


@dataclass
class HrRange:
    """HR pixels a run of LR pixels needs along one axis: what to read and what to mirror beyond the edge."""

    start: int
    stop: int
    before: int
    after: int

    @classmethod
    def of(cls, lr_start: int, lr_count: int, scale: int, first: int, taps: int, size: int) -> HrRange:
        start = lr_start * scale + first
        stop = (lr_start + lr_count - 1) * scale + first + taps
        return cls(max(0, start), min(size, stop), max(0, -start), max(0, stop - size))


def degrade_window(stack: RasterStack, window: tuple[int, int, int, int], scale: int, weights: np.ndarray,
                   first: int) -> tuple[np.ndarray, np.ndarray | None]:
    """LR pixels of ``window`` (LR col, row, width, height) and where their HR block holds nodata
    (None when it cannot). Beyond the image the HR is mirrored; near nodata the Gaussian is
    renormalised over valid pixels (normalised convolution), so nodata values never leak in."""
    col0, row0, cols, rows = window
    grid = stack.grid
    across = HrRange.of(col0, cols, scale, first, len(weights), grid.width)
    down = HrRange.of(row0, rows, scale, first, len(weights), grid.height)
    values = stack.read((across.start, down.start, across.stop - across.start, down.stop - down.start))
    values = values.astype(np.float32)
    invalid = stack.nodata_mask(values) if stack.may_hold_nodata else None  # NaN/infinity are nodata too
    pad = ((down.before, down.after), (across.before, across.after))
    if invalid is None or not invalid.any():
        values = np.pad(values, ((0, 0), *pad), mode="symmetric")
        return blur_decimate(values, weights, scale, rows, cols), None
    valid = np.pad(~invalid, pad, mode="symmetric")
    values = np.pad(np.where(invalid, np.float32(0), values), ((0, 0), *pad), mode="symmetric")
    weight = valid.astype(np.float32)[np.newaxis]
    total = blur_decimate(values * weight, weights, scale, rows, cols)
    norm = blur_decimate(weight, weights, scale, rows, cols)
    lr = np.divide(total, norm, out=np.zeros_like(total), where=norm > 0)
    inner = -first  # the padded arrays start at HR index (first LR pixel) * scale + first
    block = ~valid[inner:inner + rows * scale, inner:inner + cols * scale]
    return lr, block.reshape(rows, scale, cols, scale).any(axis=(1, 3))


def degraded_grid(grid: Grid, scale: int) -> Grid:
    """The LR grid of a degraded HR: same origin, pixels ``scale`` times larger, partial blocks dropped."""
    return Grid(grid.width // scale, grid.height // scale, grid.x0, grid.dx * scale, grid.y0, grid.dy * scale,
                grid.crs_wkt)


def degrade(stack: RasterStack, scale: int, output: str, nodata: float | None, reporter: Reporter,
            cancelled: Callable[[], bool] = lambda: False) -> Grid:
    """Write ``stack`` degraded by ``scale`` (Wald's protocol) to the float32 GeoTIFF ``output``,
    block by block (HR windows read with the kernel's margin). LR pixels whose HR block touches
    nodata get ``nodata``."""
    sigma = gaussian_sigma(scale)
    weights, first = degradation_kernel(scale, sigma)
    grid = degraded_grid(stack.grid, scale)
    bands = stack.band_count
    if "GDAL_CACHEMAX" not in os.environ:  # the HR blocks of one row of LR tiles, read once
        row_bytes = stack.grid.width * (DEGRADE_TILE * scale + len(weights)) * bands * stack.dtype.itemsize
        gdal.SetCacheMax(max(gdal.GetCacheMax(), min(MAX_CACHE_BYTES, row_bytes)))
    ds = create_geotiff(output, grid.width, grid.height, bands, np.dtype(np.float32), LR_OPTIONS, "OUTPUT_LR",
                        grid.geotransform, grid.crs_wkt)
    windows = [(c, r, min(DEGRADE_TILE, grid.width - c), min(DEGRADE_TILE, grid.height - r))
               for r in range(0, grid.height, DEGRADE_TILE) for c in range(0, grid.width, DEGRADE_TILE)]
    for done, window in enumerate(windows, start=1):
        if cancelled():
            raise Cancelled()
        lr, invalid = degrade_window(stack, window, scale, weights, first)
        if invalid is not None and nodata is not None:
            lr[:, invalid] = nodata
        ds.WriteRaster(window[0], window[1], window[2], window[3], np.ascontiguousarray(lr, np.float32).tobytes(),
                       buf_type=gdal.GDT_Float32, band_list=list(range(1, bands + 1)))
        reporter.stage(f"degrading: tiles {done}/{len(windows)}", 100.0 * done / len(windows), log=False)
    for index, band in enumerate(stack.bands, start=1):
        ds.GetRasterBand(index).SetDescription(band.description)
        if nodata is not None:
            ds.GetRasterBand(index).SetNoDataValue(nodata)
    ds = None
    return grid
