"""GeoTIFF outputs: every GeoTIFF the engine writes is created here, with the creation options its
case asks for (tiles or strips, DEFLATE, a predictor, threads); BigTIFF whenever the file may pass
4 GiB, always."""

from __future__ import annotations

import numpy as np
from osgeo import gdal

from ..errors import PatchFlowError
from .raster import numpy_to_gdal_type


def creation_options(*, tiled: bool = False, block: int | None = None, strip_rows: int | None = None,
                     deflate: bool = False, predictor: int | None = None, threads: int | None = None) -> list[str]:
    """GTiff creation options: ``block`` x ``block`` tiles (GDAL's 256 when ``tiled`` without a block),
    or strips of ``strip_rows`` rows; DEFLATE with ``predictor`` (2 integers, 3 floats); ``threads``
    compressing."""
    options = []
    if tiled:
        options.append("TILED=YES")
        if block:
            options += [f"BLOCKXSIZE={block}", f"BLOCKYSIZE={block}"]
    elif strip_rows:
        options.append(f"BLOCKYSIZE={strip_rows}")
    if deflate:
        options.append("COMPRESS=DEFLATE")
        if predictor:
            options.append(f"PREDICTOR={predictor}")
    options.append("BIGTIFF=IF_SAFER")
    if threads:
        options.append(f"NUM_THREADS={threads}")
    return options


def create_geotiff(path: str, width: int, height: int, bands: int, dtype: np.dtype, options: list[str],
                   parameter: str = "OUTPUT", geotransform: tuple[float, ...] | None = None,
                   crs_wkt: str | None = None) -> gdal.Dataset:
    """A new GeoTIFF at ``path`` (``options`` from ``creation_options``), georeferenced when given;
    a file GDAL cannot create names ``parameter``."""
    try:
        ds = gdal.GetDriverByName("GTiff").Create(path, width, height, bands, numpy_to_gdal_type(np.dtype(dtype)),
                                                  options)
    except RuntimeError as exc:  # GDAL's exceptions on
        ds, message = None, str(exc)
    else:
        message = gdal.GetLastErrorMsg()
    if ds is None:
        raise PatchFlowError(f"cannot create {path}: {message}. Choose a writable folder with free space.",
                             parameter)
    if geotransform is not None:
        ds.SetGeoTransform(geotransform)
    if crs_wkt is not None:
        ds.SetProjection(crs_wkt)
    return ds


def class_map_encoding(class_ids: list[int]) -> tuple[np.dtype, int]:
    """The one rule for class maps (served or classified): the smallest data type holding the class
    ids and a nodata value that is none of them (0, else 255, 65535, -1, else below the lowest id)."""
    ids = {int(i) for i in class_ids}
    nodata = next((v for v in (0, 255, 65535, -1) if v not in ids), min(ids, default=0) - 1)
    values = ids | {nodata}
    for dtype in (np.uint8, np.uint16, np.int16, np.int32):
        if np.iinfo(dtype).min <= min(values) and max(values) <= np.iinfo(dtype).max:
            return np.dtype(dtype), nodata
    return np.dtype(np.int64), nodata
