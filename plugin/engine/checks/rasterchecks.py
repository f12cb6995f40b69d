"""The checks of input rasters: each opens and the blocks at its end can be read (a truncated
GeoTIFF names its parameter), label rasters hold whole numbers (class ids), a raster without a
CRS gets a warning, and an EXTENT overlaps the image it cuts. Blocks and bands are sampled
(``SAMPLED_BLOCKS``, ``SAMPLED_BANDS``) so that a large raster is checked in a fraction of a second.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np

from ..errors import PatchFlowError
from ..params import Params
from ..reporting import Reporter

SAMPLED_BLOCKS = 32  # blocks per band whose place in a GeoTIFF is checked, and read for label checks
SAMPLED_BANDS = 16


def raster_paths(params: Params, name: str) -> list[str]:
    value = params.values.get(name)
    if value in (None, "", []):
        return []
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


def rasters(params: Params, *names: str, reporter: Reporter | None = None, labels: dict[str, str | None] | None = None,
            crs: bool = True) -> None:
    """Every raster of the parameters ``names`` opens and its blocks can be read. ``labels`` maps
    the label rasters among them to their band parameter (None: band 1): they must hold whole
    numbers (class ids). A raster without a CRS gets a warning (unless ``crs`` is False)."""
    labels = labels or {}
    for name in names:
        for path in raster_paths(params, name):
            ds = readable_raster(path, name)
            if crs and reporter is not None and not ds.GetProjection():
                reporter.warning(f"{name}: {path} has no CRS (coordinate reference system): its coordinates are used "
                                 "as they are, in the units of the other inputs. If it has one, assign it first "
                                 "(gdal_edit.py -a_srs EPSG:xxxx).")
            if name in labels:
                band_name = labels[name]
                band = params.values.get(band_name) if band_name else None
                integer_valued(ds, path, name, _band_number(band))


def _band_number(value) -> int:
    try:
        return max(1, int(value)) if value not in (None, "") else 1
    except (TypeError, ValueError):
        return 1  # the operation reports a bad band number


def readable_raster(path: str, parameter: str):
    """The opened dataset, after checking that the blocks at its end can be read: a truncated or
    damaged file fails here, naming ``parameter``, instead of halfway through a run."""
    from ..geodata.raster import open_raster

    ds = open_raster(path, parameter)
    size = os.path.getsize(path) if os.path.isfile(path) else None
    gtiff = ds.GetDriver().ShortName == "GTiff" and size is not None
    for index in _spread(ds.RasterCount, SAMPLED_BANDS, base=1):
        band = ds.GetRasterBand(index)
        bx, by = band.GetBlockSize()
        nx, ny = math.ceil(ds.RasterXSize / max(1, bx)), math.ceil(ds.RasterYSize / max(1, by))
        if gtiff and size is not None:
            for block in _spread(nx * ny, SAMPLED_BLOCKS):
                x, y = block % nx, block // nx
                offset = band.GetMetadataItem(f"BLOCK_OFFSET_{x}_{y}", "TIFF")
                length = band.GetMetadataItem(f"BLOCK_SIZE_{x}_{y}", "TIFF")
                if offset and length and int(offset) + int(length) > size:
                    raise PatchFlowError(
                        f"{path} is truncated: it is {size} bytes long but the data of its band {index} reaches byte "
                        f"{int(offset) + int(length)} (an interrupted copy or download?). Copy or write it again.",
                        parameter)
        x0, y0 = (nx - 1) * bx, (ny - 1) * by
        try:
            band.ReadRaster(x0, y0, min(bx, ds.RasterXSize - x0), min(by, ds.RasterYSize - y0))
        except RuntimeError as exc:
            raise PatchFlowError(f"{path} cannot be read ({str(exc).strip()}): the file is damaged or truncated. Copy "
                                 "or write it again.", parameter) from None
    return ds


def integer_valued(ds, path: str, parameter: str, band_index: int = 1) -> None:
    """A label raster holds class ids: an integer type passes at once; a float one passes when
    the blocks sampled hold whole numbers only (nodata and NaN aside)."""
    from ..geodata.raster import gdal_array_dtype

    if not 1 <= band_index <= ds.RasterCount:
        return  # the operation says which bands exist
    band = ds.GetRasterBand(band_index)
    dtype = gdal_array_dtype(band.DataType)
    if dtype.kind in "iub":
        return
    nodata = band.GetNoDataValue()
    bx, by = band.GetBlockSize()
    nx, ny = math.ceil(ds.RasterXSize / max(1, bx)), math.ceil(ds.RasterYSize / max(1, by))
    for block in _spread(nx * ny, SAMPLED_BLOCKS):
        x0, y0 = (block % nx) * bx, (block // nx) * by
        values = band.ReadAsArray(x0, y0, min(bx, ds.RasterXSize - x0), min(by, ds.RasterYSize - y0))
        if dtype.kind == "c":
            raise PatchFlowError(f"{path} holds complex numbers ({dtype.name}), not class ids. Give a raster of class "
                                 "ids (whole numbers).", parameter)
        values = values.astype(np.float64, copy=False)
        kept = np.isfinite(values)
        if nodata is not None and math.isfinite(nodata):
            kept &= values != nodata
        fractional = kept & (values != np.round(values))
        if fractional.any():
            value = float(values[fractional][0])
            raise PatchFlowError(
                f"{path} is not a label raster: band {band_index} ({dtype.name}) holds {value:.6g}, not a class id (a "
                "whole number). Is it an image (e.g. reflectances)? Give the raster of class ids.", parameter)


def _spread(count: int, most: int, base: int = 0) -> Iterator[int]:
    """Up to ``most`` indices from base..base+count-1, evenly spread, the last one included."""
    if count <= 0:
        return iter(())
    if count <= most:
        return iter(range(base, base + count))
    picks = sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})
    return iter(base + p for p in picks)


def extent_overlaps(params: Params, name: str = "SOURCE1") -> None:
    """EXTENT overlaps the first raster of ``name``."""
    from ..geodata.raster import Grid, open_raster, parse_extent

    text, paths = str(params.values.get("EXTENT") or ""), raster_paths(params, name)
    if not text.strip() or not paths:
        return
    grid = Grid.of(open_raster(paths[0], name), name)
    xmin, xmax, ymin, ymax = parse_extent(text, grid, f"{name}'s")
    gx0, gy0, gx1, gy1 = grid.extent
    if xmax <= gx0 or xmin >= gx1 or ymax <= gy0 or ymin >= gy1:
        raise PatchFlowError(f"the extent {xmin:g},{xmax:g},{ymin:g},{ymax:g} lies outside {name} ({gx0:g},{gx1:g},"
                             f"{gy0:g},{gy1:g}). Choose an extent that overlaps the image.", "EXTENT")
