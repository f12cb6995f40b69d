"""Raster access through GDAL: opening with clear errors, grids, windows and stacked sources."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from osgeo import gdal, osr

from ..errors import PatchFlowError

gdal.UseExceptions()
osr.UseExceptions()

# GDAL's default block cache is 5% of RAM, and it keeps every block it reads: the engine's memory
# would then grow with the raster up to that size. Windows are read once (twice for sampling),
# so a small cache costs little; GDAL_CACHEMAX, when set, still wins.
DEFAULT_CACHE_BYTES = 64 << 20
if "GDAL_CACHEMAX" not in os.environ:
    gdal.SetCacheMax(DEFAULT_CACHE_BYTES)

Window = tuple[int, int, int, int]  # xoff, yoff, xsize, ysize


def open_raster(path: str, parameter: str) -> gdal.Dataset:
    if not path:
        raise PatchFlowError("no raster given. Choose a raster file.", parameter)
    if "://" not in path and not path.startswith("/vsi") and not os.path.exists(path):
        raise PatchFlowError(f"raster file not found: {path}. Check the path.", parameter)
    try:
        ds = gdal.Open(path)
    except RuntimeError as exc:
        raise PatchFlowError(f"cannot open {path} as a raster: {exc}", parameter) from None
    if ds is None or ds.RasterCount == 0:
        raise PatchFlowError(f"{path} holds no raster band. Choose a raster file.", parameter)
    return ds


def same_crs(wkt_a: str, wkt_b: str, probe: tuple[float, float] | None = None, tolerance: float = 0.0) -> bool:
    """True when both CRSs are the same, or, given a ``probe`` point (in ``wkt_a``), when going from one
    to the other moves it by at most ``tolerance`` map units (two definitions of one projection)."""
    if not wkt_a or not wkt_b:
        return wkt_a == wkt_b
    a, b = osr.SpatialReference(), osr.SpatialReference()
    a.ImportFromWkt(wkt_a)
    b.ImportFromWkt(wkt_b)
    if a.IsSame(b):
        return True
    if probe is None or not (a.IsProjected() and b.IsProjected()) and not (a.IsGeographic() and b.IsGeographic()):
        return False
    for srs in (a, b):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    try:
        x, y, _ = osr.CoordinateTransformation(a, b).TransformPoint(probe[0], probe[1])
    except RuntimeError:
        return False
    return abs(x - probe[0]) <= tolerance and abs(y - probe[1]) <= tolerance


def crs_label(wkt: str) -> str:
    if not wkt:
        return "no CRS"
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    code = srs.GetAuthorityCode(None)
    name = srs.GetName() or "unnamed CRS"
    return f"{srs.GetAuthorityName(None)}:{code} ({name})" if code else name


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: size, origin, pixel size (``dy`` < 0) and CRS."""

    width: int
    height: int
    x0: float
    dx: float
    y0: float
    dy: float
    crs_wkt: str

    @classmethod
    def of(cls, ds: gdal.Dataset, parameter: str) -> Grid:
        gt = ds.GetGeoTransform()
        if gt[2] != 0 or gt[4] != 0:
            raise PatchFlowError(
                f"{ds.GetDescription()} has a rotated geotransform, which PatchFlow does not handle. "
                "Warp it to a north-up grid first (gdalwarp).",
                parameter,
            )
        return cls(ds.RasterXSize, ds.RasterYSize, gt[0], gt[1], gt[3], gt[5], ds.GetProjection())

    @property
    def geotransform(self) -> tuple[float, float, float, float, float, float]:
        return (self.x0, self.dx, 0.0, self.y0, 0.0, self.dy)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """xmin, ymin, xmax, ymax."""
        x1 = self.x0 + self.dx * self.width
        y1 = self.y0 + self.dy * self.height
        return min(self.x0, x1), min(self.y0, y1), max(self.x0, x1), max(self.y0, y1)

    def fractional_pixel(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Column and row coordinates (not floored) of map coordinates."""
        return (np.asarray(xs) - self.x0) / self.dx, (np.asarray(ys) - self.y0) / self.dy

    def pixel_centres(self, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.x0 + (np.asarray(cols) + 0.5) * self.dx, self.y0 + (np.asarray(rows) + 0.5) * self.dy

    def window_geotransform(self, window: Window) -> tuple[float, float, float, float, float, float]:
        xoff, yoff, _, _ = window
        return (self.x0 + xoff * self.dx, self.dx, 0.0, self.y0 + yoff * self.dy, 0.0, self.dy)

    @property
    def centre(self) -> tuple[float, float]:
        return self.x0 + self.dx * self.width / 2, self.y0 + self.dy * self.height / 2

    def same_crs_as(self, other: Grid) -> bool:
        """Same CRS, or definitions that agree to a hundredth of a pixel over this grid."""
        return same_crs(self.crs_wkt, other.crs_wkt, self.centre, 0.01 * min(abs(self.dx), abs(other.dx)))

    def same_as(self, other: Grid, tolerance: float = 1e-3) -> bool:
        """Same size, pixel sizes within a millionth, origins within ``tolerance`` of a pixel (a
        relative tolerance on coordinates of 500 000 m would accept half a pixel)."""
        return (
            (self.width, self.height) == (other.width, other.height)
            and math.isclose(self.dx, other.dx, rel_tol=1e-6) and math.isclose(self.dy, other.dy, rel_tol=1e-6)
            and abs(self.x0 - other.x0) <= tolerance * abs(self.dx)
            and abs(self.y0 - other.y0) <= tolerance * abs(self.dy)
        )


def parse_extent(text: str, grid: Grid, whose: str) -> tuple[float, float, float, float]:
    """"xmin,xmax,ymin,ymax" in ``grid``'s CRS, or followed by " [EPSG:x]" (any CRS GDAL knows), then
    transformed (its four corners) into ``grid``'s CRS; ``whose`` names that CRS in messages."""
    numbers, _, crs = text.partition("[")
    try:
        xmin, xmax, ymin, ymax = (float(v) for v in numbers.split(","))
    except ValueError:
        raise PatchFlowError(f"'{text}' is not an extent; write xmin,xmax,ymin,ymax in {whose} CRS.",
                             "EXTENT") from None
    crs = crs.rstrip("] ").strip()
    if not crs:
        return xmin, xmax, ymin, ymax
    given, target = osr.SpatialReference(), osr.SpatialReference()
    try:
        known = given.SetFromUserInput(crs) == 0 and target.ImportFromWkt(grid.crs_wkt) == 0
    except RuntimeError:
        known = False
    if not known:
        raise PatchFlowError(f"the extent's CRS '{crs}' is unknown; give the extent in {whose} CRS.", "EXTENT")
    if given.IsSame(target):
        return xmin, xmax, ymin, ymax
    for srs in (given, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(given, target)
    corners = [transform.TransformPoint(x, y)[:2] for x in (xmin, xmax) for y in (ymin, ymax)]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return min(xs), max(xs), min(ys), max(ys)


def block_windows(width: int, height: int, block: tuple[int, int], target_pixels: int = 1 << 20) -> Iterator[Window]:
    """Windows covering the raster in row-major order, aligned on the natural block size and
    grown to about ``target_pixels`` each (whole strips when blocks are strips)."""
    bx, by = max(1, block[0]), max(1, block[1])
    bx = min(width, bx * max(1, int(math.sqrt(target_pixels) // bx))) if bx < width else width
    by = min(height, by * max(1, target_pixels // (bx * by)))
    for yoff in range(0, height, by):
        for xoff in range(0, width, bx):
            yield xoff, yoff, min(bx, width - xoff), min(by, height - yoff)


def nodata_mask(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """Where ``values`` hold no data: the ``nodata`` value, and, for floating-point values, every
    non-finite one (NaN, +-infinity) whatever the declared nodata (none, NaN or a number)."""
    values = np.asarray(values)
    mask = ~np.isfinite(values) if values.dtype.kind in "fc" else np.zeros(values.shape, dtype=bool)
    if nodata is not None and math.isfinite(nodata):
        mask |= values == nodata
    return mask


@dataclass
class BandRef:
    path: str
    band: int
    description: str
    nodata: float | None


class RasterStack:
    """One or more rasters on the same grid, read as one multi-band image (bands, rows, cols)."""

    def __init__(self, paths: Sequence[str], parameter: str) -> None:
        if not paths:
            raise PatchFlowError("no raster given. Choose at least one raster.", parameter)
        self.parameter = parameter
        self.paths = [str(p) for p in paths]
        self.datasets = [open_raster(p, parameter) for p in self.paths]
        self.grid = Grid.of(self.datasets[0], parameter)
        for path, ds in zip(self.paths[1:], self.datasets[1:]):
            grid = Grid.of(ds, parameter)
            if not self.grid.same_crs_as(grid):
                raise PatchFlowError(
                    f"{path} is in {crs_label(grid.crs_wkt)} but {self.paths[0]} is in "
                    f"{crs_label(self.grid.crs_wkt)}. Stacked rasters must share one grid: "
                    "reproject them first (gdalwarp).",
                    parameter,
                )
            if not grid.same_as(self.grid):
                raise PatchFlowError(
                    f"{path} ({grid.width}x{grid.height} px, origin {grid.x0:.3f},{grid.y0:.3f}, "
                    f"pixel {grid.dx:g}) is not on the grid of {self.paths[0]} ({self.grid.width}x"
                    f"{self.grid.height} px, origin {self.grid.x0:.3f},{self.grid.y0:.3f}, pixel "
                    f"{self.grid.dx:g}). Stacked rasters must share one grid: resample them first.",
                    parameter,
                )
        self.bands: list[BandRef] = []
        dtypes = []
        for path, ds in zip(self.paths, self.datasets):
            for index in range(1, ds.RasterCount + 1):
                band = ds.GetRasterBand(index)
                description = band.GetDescription() or f"{os.path.basename(path)} band {index}"
                self.bands.append(BandRef(path, index, description, band.GetNoDataValue()))
                dtypes.append(gdal_array_dtype(band.DataType))
        self.dtype = np.result_type(*dtypes)

    @property
    def band_count(self) -> int:
        return len(self.bands)

    @property
    def nodata(self) -> list[float | None]:
        return [b.nodata for b in self.bands]

    def read(self, window: Window) -> np.ndarray:
        xoff, yoff, xsize, ysize = window
        parts = [ds.ReadAsArray(xoff, yoff, xsize, ysize) for ds in self.datasets]
        parts = [p[np.newaxis] if p.ndim == 2 else p for p in parts]
        stacked = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        return stacked.astype(self.dtype, copy=False)

    @property
    def may_hold_nodata(self) -> bool:
        """Whether some pixel can be nodata: a band declares a nodata value, or the bands are floating
        point (NaN and infinity are nodata)."""
        return self.dtype.kind in "fc" or any(v is not None for v in self.nodata)

    def nodata_mask(self, values: np.ndarray) -> np.ndarray:
        """True where any band of (bands, ...) ``values`` is nodata (its value, or non-finite)."""
        mask = np.zeros(values.shape[1:], dtype=bool)
        if not self.may_hold_nodata and np.asarray(values).dtype.kind not in "fc":
            return mask
        for index, nodata in enumerate(self.nodata):
            mask |= nodata_mask(values[index], nodata)
        return mask


def gdal_array_dtype(gdal_type: int) -> np.dtype:
    from osgeo import gdal_array

    return np.dtype(gdal_array.GDALTypeCodeToNumericTypeCode(gdal_type))


def numpy_to_gdal_type(dtype: np.dtype) -> int:
    from osgeo import gdal_array

    code = gdal_array.NumericTypeCodeToGDALTypeCode(np.dtype(dtype))
    if code is None:
        raise PatchFlowError(f"data type {dtype} cannot be written to GeoTIFF")
    return code
