"""Synthetic rasters and point layers for the tests and the benchmark, written and read with GDAL/OGR.

One copy for tests/engine (the ``gd`` fixture), tests/qgis (``make_raster``/``make_points``, with
that suite's defaults) and bench/run.py. Import it as the checkout's package does elsewhere:
``from patchflow.tests import helpers`` (tests/conftest.py and bench/run.py link the checkout as
``patchflow``). GDAL is imported inside each function, so importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

EPSG = 32631  # WGS 84 / UTM 31N: the CRS of synthetic data unless a test says otherwise
ORIGIN = (500000.0, 5800000.0)


def srs_wkt(epsg: int = EPSG) -> str:
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def create_raster(path, cols: int, rows: int, bands: int, gdal_type: int, options: Sequence[str] = (),
                  origin: tuple[float, float] = ORIGIN, pixel: float = 1.0, epsg: int | None = EPSG) -> Any:
    """An empty north-up GeoTIFF (the open gdal.Dataset), ``pixel`` map units square, its top-left
    corner at ``origin``, in EPSG:``epsg`` (no CRS when None)."""
    from osgeo import gdal

    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, bands, gdal_type, list(options))
    ds.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    if epsg:
        ds.SetProjection(srs_wkt(epsg))
    return ds


def write_raster(
    path,
    array: np.ndarray,
    nodata: float | None = None,
    origin: tuple[float, float] = ORIGIN,
    pixel: float = 1.0,
    epsg: int | None = EPSG,
    options: Sequence[str] | None = None,
    color_table: dict[int, tuple[int, int, int, int]] | None = None,
    category_names: list[str] | None = None,
) -> str:
    """A GeoTIFF of ``array`` ((rows, cols) or (bands, rows, cols)), its numpy dtype kept."""
    from osgeo import gdal

    from patchflow.plugin.engine.geodata.raster import numpy_to_gdal_type

    data = array[np.newaxis] if array.ndim == 2 else array
    bands, rows, cols = data.shape
    ds = create_raster(path, cols, rows, bands, numpy_to_gdal_type(data.dtype), options or (), origin, pixel, epsg)
    for index in range(bands):
        band = ds.GetRasterBand(index + 1)
        band.WriteArray(data[index])
        if nodata is not None:
            band.SetNoDataValue(nodata)
    if color_table is not None:
        table = gdal.ColorTable()
        for value, entry in color_table.items():
            table.SetColorEntry(value, entry)
        ds.GetRasterBand(1).SetRasterColorTable(table)
    if category_names is not None:
        ds.GetRasterBand(1).SetCategoryNames(category_names)
    ds.FlushCache()
    ds = None
    return str(path)


def write_points(path, xs, ys, fields: dict[str, list] | None = None, epsg: int | None = EPSG,
                 layer_name: str | None = None) -> str:
    """A point layer (format from the extension); integer, real or text fields from the values;
    the layer is named ``layer_name`` (default: the file's stem)."""
    from osgeo import ogr, osr

    from patchflow.plugin.engine.geodata.vector import DRIVERS

    path = str(path)
    driver = ogr.GetDriverByName(DRIVERS[Path(path).suffix.lower()])
    ds = driver.CreateDataSource(path)
    srs = None
    if epsg:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
    layer = ds.CreateLayer(layer_name or Path(path).stem, srs, ogr.wkbPoint)
    fields = fields or {}
    for name, values in fields.items():
        sample = next((v for v in values if v is not None), 0)
        kind = ogr.OFTString if isinstance(sample, str) else (
            ogr.OFTReal if isinstance(sample, float) else ogr.OFTInteger)
        layer.CreateField(ogr.FieldDefn(name, kind))
    definition = layer.GetLayerDefn()
    layer.StartTransaction()
    for i, (x, y) in enumerate(zip(xs, ys)):
        feature = ogr.Feature(definition)
        for name, values in fields.items():
            value = values[i]
            if value is not None:
                feature.SetField(name, value.item() if hasattr(value, "item") else value)
        point = ogr.Geometry(ogr.wkbPoint)
        point.AddPoint_2D(float(x), float(y))
        feature.SetGeometry(point)
        layer.CreateFeature(feature)
    layer.CommitTransaction()
    layer = None
    ds = None
    return path


def read_points(path) -> tuple[np.ndarray, np.ndarray, dict[str, list], str]:
    """xs, ys, {field: values} and the layer's CRS WKT of a point layer."""
    from osgeo import ogr

    ds = ogr.Open(str(path))
    layer = ds.GetLayer(0)
    definition = layer.GetLayerDefn()
    names = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
    xs: list[float] = []
    ys: list[float] = []
    fields: dict[str, list] = {name: [] for name in names}
    for feature in layer:
        x, y = feature.GetGeometryRef().GetPoint_2D()
        xs.append(x)
        ys.append(y)
        for name in names:
            fields[name].append(feature.GetField(name))
    srs = layer.GetSpatialRef()
    wkt = srs.ExportToWkt() if srs is not None else ""
    layer = None
    ds = None
    return np.asarray(xs), np.asarray(ys), fields, wkt


def read_raster(path) -> np.ndarray:
    from osgeo import gdal

    ds = gdal.Open(str(path))
    return ds.ReadAsArray()


def geotransform(path) -> tuple[float, ...]:
    from osgeo import gdal

    ds = gdal.Open(str(path))
    return ds.GetGeoTransform()


def to_pixels(path, xs, ys) -> tuple[np.ndarray, np.ndarray]:
    """Column and row (floored) of map coordinates in the raster at ``path``."""
    gt = geotransform(path)
    return (np.floor((np.asarray(xs) - gt[0]) / gt[1]).astype(np.int64),
            np.floor((np.asarray(ys) - gt[3]) / gt[5]).astype(np.int64))
