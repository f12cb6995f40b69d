"""Engine tests: helpers to run operations in-process (no QGIS involved), and small GDAL/OGR
helpers to make synthetic rasters and point layers in tmp_path and read outputs back."""

from __future__ import annotations

import gc
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

EPSG = 32631  # WGS 84 / UTM 31N: the CRS of synthetic data unless a test says otherwise


@pytest.fixture(scope="session", autouse=True)
def _collect_gdal_objects_before_qgis_exits():
    """pytest-qgis calls exitQgis() when the session ends, which tears GDAL down; GDAL objects
    still held in reference cycles (tracebacks of expected errors keep engine frames alive) would
    then crash the final garbage collection. Collect them while GDAL is alive (pytest-qgis's
    session fixture is set up first, so it is torn down after this one). No engine test uses QGIS."""
    yield
    # a failed test's traceback (kept for post-mortem debugging) holds engine frames too
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        if hasattr(sys, name):
            setattr(sys, name, None)
    gc.collect()


@pytest.fixture
def run_op():
    """run_op(operation, **parameters) -> (outputs, reporter)."""
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    def run(operation: str, **parameters):
        reporter = Reporter()
        outputs = run_job(protocol.Job(operation, parameters, "test"), reporter)
        return outputs, reporter

    return run


@pytest.fixture
def run_cancelled():
    """run_cancelled(operation, after=N, **parameters): runs the operation and cancels it (as a
    signal would) at its N-th progress report; returns the exception the run raised."""
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    class CancellingReporter(Reporter):
        def __init__(self, event: threading.Event, after: int) -> None:
            super().__init__()
            self.event, self.after, self.calls = event, after, 0

        def progress(self, percent: float) -> None:
            super().progress(percent)
            self.calls += 1
            if self.calls >= self.after:
                self.event.set()

    def run(operation: str, after: int = 1, **parameters):
        event = threading.Event()
        reporter = CancellingReporter(event, after)
        with pytest.raises(BaseException) as caught:
            run_job(protocol.Job(operation, parameters, "cancel-test"), reporter, event)
        assert event.is_set(), "the run failed before it was cancelled"
        return caught.value

    return run


def srs_wkt(epsg: int = EPSG) -> str:
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def write_raster(
    path,
    array: np.ndarray,
    nodata: float | None = None,
    origin: tuple[float, float] = (500000.0, 5800000.0),
    pixel: float = 1.0,
    epsg: int | None = EPSG,
    options: list[str] | None = None,
    color_table: dict[int, tuple[int, int, int, int]] | None = None,
    category_names: list[str] | None = None,
) -> str:
    """A GeoTIFF of ``array`` ((rows, cols) or (bands, rows, cols)), its numpy dtype kept."""
    from osgeo import gdal

    from patchflow.plugin.engine.raster import numpy_to_gdal_type

    data = array[np.newaxis] if array.ndim == 2 else array
    bands, rows, cols = data.shape
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), cols, rows, bands, numpy_to_gdal_type(data.dtype), options or [])
    ds.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    if epsg:
        ds.SetProjection(srs_wkt(epsg))
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


def write_points(path, xs, ys, fields: dict[str, list] | None = None, epsg: int | None = EPSG) -> str:
    """A point layer (format from the extension); integer, real or text fields from the values."""
    from osgeo import ogr, osr

    from patchflow.plugin.engine.vector import DRIVERS

    path = str(path)
    driver = ogr.GetDriverByName(DRIVERS[Path(path).suffix.lower()])
    ds = driver.CreateDataSource(path)
    srs = None
    if epsg:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
    layer = ds.CreateLayer(Path(path).stem, srs, ogr.wkbPoint)
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
    xs, ys, fields = [], [], {name: [] for name in names}
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


def folder_entries(folder) -> list[str]:
    """Every name in ``folder`` (hidden ones included), sorted."""
    return sorted(p.name for p in Path(folder).iterdir())


@pytest.fixture(scope="session")
def gd() -> SimpleNamespace:
    """The GDAL helpers above: gd.write_raster, gd.write_points, gd.read_points, gd.read_raster,
    gd.geotransform, gd.to_pixels, gd.folder_entries, gd.srs_wkt."""
    return SimpleNamespace(
        write_raster=write_raster, write_points=write_points, read_points=read_points,
        read_raster=read_raster, geotransform=geotransform, to_pixels=to_pixels,
        folder_entries=folder_entries, srs_wkt=srs_wkt, EPSG=EPSG)
