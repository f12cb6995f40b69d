"""The images of an image-quality assessment on the reference grid: rasters stacked as bands and read as
float64 with their valid pixels, as they are, placed without interpolation or warped (GDAL) onto the reference
grid; and the compared window (EXTENT grown to whole reference pixels).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
from osgeo import gdal

from ..errors import PatchFlowError
from ..geodata.raster import Grid, RasterStack, Window, crs_label
from ..geodata.raster import parse_extent as raster_extent
from .qualityscores import WIN_SIZE

FLOAT_TYPES = (gdal.GDT_Float32, gdal.GDT_Float64, gdal.GDT_CFloat32, gdal.GDT_CFloat64)
RESAMPLING_NAMES = {"near": "no", "bilinear": "bilinear", "cubic": "bicubic (cubic convolution)",
                    "lanczos": "Lanczos (windowed sinc, 3 lobes)"}


class OnGrid:
    """One or more rasters stacked as bands, read on the reference grid as float64 with the mask of valid
    pixels (finite and not nodata in any band). ``warped`` holds GDAL warped VRTs when the rasters are on
    another grid (nodata and the area outside them come back as NaN)."""

    def __init__(self, stack: RasterStack, warped: list[gdal.Dataset] | None, note: str) -> None:
        self.stack, self.warped, self.note = stack, warped, note

    @property
    def band_count(self) -> int:
        return self.stack.band_count

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        if self.warped is None:
            raw = self.stack.read(window)
            values = raw.astype(np.float64)
            valid = ~self.stack.nodata_mask(raw)
        else:
            parts = [ds.ReadAsArray(*window) for ds in self.warped]
            values = np.concatenate([p[np.newaxis] if p.ndim == 2 else p for p in parts]).astype(np.float64)
            valid = np.ones(values.shape[1:], dtype=bool)
        valid &= np.isfinite(values).all(axis=0)
        return values, valid


def _pixel_shift(own: Grid, grid: Grid) -> tuple[float, float] | None:
    """How many reference pixels ``own``'s origin is from the reference's, when the pixel sizes are the same.
    (Grid.same_as compares origins with a relative tolerance, too loose for projected coordinates.)"""
    if not all(math.isclose(a, b, rel_tol=1e-6) for a, b in ((own.dx, grid.dx), (own.dy, grid.dy))):
        return None
    return (own.x0 - grid.x0) / grid.dx, (own.y0 - grid.y0) / grid.dy


def _aligned(own: Grid, grid: Grid) -> bool:
    """Same pixel size and an origin a whole number of pixels away: no interpolation needed."""
    shift = _pixel_shift(own, grid)
    return shift is not None and all(abs(s - round(s)) < 1e-6 for s in shift)


def _same_grid(own: Grid, grid: Grid) -> bool:
    shift = _pixel_shift(own, grid)
    return (shift is not None and all(abs(s) < 1e-6 for s in shift)
            and (own.width, own.height) == (grid.width, grid.height))


def _warp(ds: gdal.Dataset, grid: Grid, method: str) -> gdal.Dataset:
    xmin, ymin, xmax, ymax = grid.extent
    band = ds.GetRasterBand(1)
    # floating-point bands without a nodata value: NaN is nodata (left out of the interpolation, as a
    # declared nodata value is); infinity still spreads to the pixels it touches, which are then not valid
    source_nodata = float("nan") if band.GetNoDataValue() is None and band.DataType in FLOAT_TYPES else None
    options = gdal.WarpOptions(
        format="VRT", outputBounds=(xmin, ymin, xmax, ymax), width=grid.width, height=grid.height,
        dstSRS=grid.crs_wkt or None, resampleAlg=method, outputType=gdal.GDT_Float64, dstNodata=float("nan"),
        srcNodata=source_nodata)
    return gdal.Warp("", ds, options=options)


def window_extent(grid: Grid, window: Window) -> tuple[float, float, float, float]:
    c0, r0, w, h = window
    xs = (grid.x0 + c0 * grid.dx, grid.x0 + (c0 + w) * grid.dx)
    ys = (grid.y0 + r0 * grid.dy, grid.y0 + (r0 + h) * grid.dy)
    return min(xs), min(ys), max(xs), max(ys)


def format_extent(extent: tuple[float, float, float, float]) -> str:
    xmin, ymin, xmax, ymax = extent
    return f"x {xmin:.2f} to {xmax:.2f}, y {ymin:.2f} to {ymax:.2f}"


def place_on_grid(paths: Sequence[str], parameter: str, grid: Grid, window: Window, resampling: str,
                  with_extent: bool) -> OnGrid:
    """The rasters of ``parameter`` on the reference grid: as they are, placed without interpolation, or
    warped with ``resampling``; errors name ``parameter`` (other CRS, no overlap with ``window``)."""
    stack = RasterStack(paths, parameter)
    own = stack.grid
    if not grid.same_crs_as(own):
        raise PatchFlowError(
            f"{os.path.basename(stack.paths[0])} is in {crs_label(own.crs_wkt)} but the reference is in "
            f"{crs_label(grid.crs_wkt)}. Reproject it onto the reference's CRS first (gdalwarp -t_srs).", parameter)
    ax0, ay0, ax1, ay1 = own.extent
    bx0, by0, bx1, by1 = window_extent(grid, window)
    tolerance = 1e-6 * abs(grid.dx)
    if min(ax1, bx1) - max(ax0, bx0) <= tolerance or min(ay1, by1) - max(ay0, by0) <= tolerance:
        where = "the reference within EXTENT" if with_extent else "the reference"
        raise PatchFlowError(
            f"{os.path.basename(stack.paths[0])} ({format_extent(own.extent)}) does not overlap {where} "
            f"({format_extent((bx0, by0, bx1, by1))}). Choose images of the same area.", parameter)
    if _same_grid(own, grid):
        return OnGrid(stack, None, f"{parameter} is on the reference grid")
    method = "near" if _aligned(own, grid) else resampling
    warped = [_warp(ds, grid, method) for ds in stack.datasets]
    size = f"{own.width}x{own.height} px of {abs(own.dx):g} x {abs(own.dy):g}"
    if method == "near":
        note = f"placed {parameter} ({size}) on the reference grid without interpolation (same pixels)"
    else:
        note = (f"resampled {parameter} ({size}) to the reference grid ({grid.width}x{grid.height} px of "
                f"{abs(grid.dx):g} x {abs(grid.dy):g}) with {RESAMPLING_NAMES[method]} interpolation (GDAL warp)")
    return OnGrid(stack, warped, note)


def parse_extent(text: str, grid: Grid) -> tuple[float, float, float, float]:
    return raster_extent(text, grid, "the reference's")


def extent_window(text: str, grid: Grid, parameter: str = "EXTENT") -> Window:
    """The reference pixels of an extent (``parameter``'s), grown to whole pixels and clipped."""
    try:
        xmin, xmax, ymin, ymax = parse_extent(text, grid)
    except PatchFlowError as error:
        raise PatchFlowError(error.message, parameter) from None
    cols, rows = grid.fractional_pixel(np.array([xmin, xmax]), np.array([ymax, ymin]))
    cols, rows = np.round(cols, 6), np.round(rows, 6)  # a millionth of a pixel is rounding
    c0, c1 = max(0, math.floor(cols.min())), min(grid.width, math.ceil(cols.max()))
    r0, r1 = max(0, math.floor(rows.min())), min(grid.height, math.ceil(rows.max()))
    if c1 <= c0 or r1 <= r0:
        raise PatchFlowError(
            f"the extent {xmin:g},{xmax:g},{ymin:g},{ymax:g} lies outside the reference "
            f"({format_extent(grid.extent)}). Choose an extent that overlaps it.", parameter)
    return c0, r0, c1 - c0, r1 - r0


def compare_window(text: str, grid: Grid) -> Window:
    """The reference pixels to compare: EXTENT grown to whole pixels and clipped, else the whole grid."""
    window = extent_window(text, grid) if text.strip() else (0, 0, grid.width, grid.height)
    if min(window[2], window[3]) < WIN_SIZE:
        raise PatchFlowError(
            f"the compared area is {window[2]}x{window[3]} px; SSIM needs at least {WIN_SIZE}x{WIN_SIZE}. "
            "Choose a larger extent.", "EXTENT" if text.strip() else "REFERENCE")
    return window
