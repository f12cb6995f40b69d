"""Extract patches on Dask (EXECUTION local or scheduler; scale/extracting.py): on the NC scene, with points on a
dense grid, a class field and the label raster, the patches-images, the labels image, the positions and the
manifest's counts and statistics are the one-process run's; so with a second source 2x coarser, and with label
polygons; a worker killed mid-run still gives the same dataset; a scheduler that stops, and cancel, leave nothing.
CHUNK is made small (in this process: the client cuts the chunks and the windows) so the 489 x 443 px scene has
many rows of chunks, in both runs."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
from dask_cluster import DaskCluster
from osgeo import gdal, ogr, osr

from patchflow.plugin import protocol
from patchflow.plugin.engine.data import patches
from patchflow.plugin.engine.errors import Cancelled, PatchFlowError
from patchflow.plugin.engine.reporting import Reporter
from patchflow.plugin.engine.scale.extracting import row_windows, rows_per_window
from patchflow.plugin.engine.worker import run_job

CHUNK = 32  # 14 rows of chunks on NC


class Hook(Reporter):
    """Records the stages; calls ``action`` once, when a window is done (none before it)."""

    def __init__(self, action=None) -> None:
        super().__init__()
        self.stages: list[str] = []
        self.action, self.fired = action, None

    def stage(self, text, percent=None, until=None, log=True) -> None:
        super().stage(text, percent, until, log)
        self.stages.append(text)
        if self.action is not None and self.fired is None and text.startswith("windows ") \
                and not text.startswith("windows 0/"):
            self.fired = text
            self.action()


def grid_points(image: str, path: str, step: int = 5) -> str:
    """A point every ``step`` pixels over the whole raster (those at its edges: patches outside), with a class."""
    ds = gdal.Open(image)
    x0, dx, _, y0, _, dy = ds.GetGeoTransform()
    srs = osr.SpatialReference(wkt=ds.GetProjection())
    out = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    layer = out.CreateLayer("points", srs, ogr.wkbPoint)
    layer.CreateField(ogr.FieldDefn("label", ogr.OFTInteger))
    for row in range(0, ds.RasterYSize, step):
        for col in range(0, ds.RasterXSize, step):
            feature = ogr.Feature(layer.GetLayerDefn())
            feature.SetField("label", 1 + (col // step + 2 * (row // step)) % 4)
            point = ogr.Geometry(ogr.wkbPoint)
            point.AddPoint_2D(x0 + (col + 0.5) * dx, y0 + (row + 0.5) * dy)
            feature.SetGeometry(point)
            layer.CreateFeature(feature)
    out = None
    return path


@pytest.fixture(scope="module")
def inputs(nc, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask_extraction")
    image = str(nc / "landsat_multiband.tif")
    coarse = str(folder / "coarse.tif")
    gdal.Translate(coarse, image, xRes=57.0, yRes=57.0, resampleAlg="average")
    return {"image": image, "labels": str(nc / "landsat96_labelled_pixels.tif"), "coarse": coarse,
            "points": grid_points(image, str(folder / "points.gpkg"))}


def job(inputs, output, **more) -> dict:
    return {"INPUT": inputs["points"], "SOURCE1": [inputs["image"]], "PATCH_SIZE1": 16, "CLASS_FIELD": "label",
            "LABEL_RASTER": inputs["labels"], "OUTPUT": str(output), **more}


def extract(values: dict, name: str, reporter=None, cancel=None) -> dict:
    return run_job(protocol.Job("extract_patches", values, name), reporter or Reporter(), cancel)


def assert_same_dataset(one: dict, dask: dict) -> None:
    """Every raster output equal pixel for pixel (band names, nodata), the counts and the positions equal, the
    manifest equal but its statistics within 1e-9 relative (summed in another order) and its date."""
    for key in ("COUNT", "DROPPED_NODATA", "DROPPED_OUTSIDE"):
        assert one[key] == dask[key]
    rasters = [key for key in ("PATCHES1", "PATCHES2", "PATCHES3", "LABEL_PATCHES", "LABELS") if one.get(key)]
    assert rasters == [key for key in ("PATCHES1", "PATCHES2", "PATCHES3", "LABEL_PATCHES", "LABELS")
                       if dask.get(key)]
    for key in rasters:
        a, b = gdal.Open(one[key]), gdal.Open(dask[key])
        assert (a.RasterXSize, a.RasterYSize, a.RasterCount) == (b.RasterXSize, b.RasterYSize, b.RasterCount)
        assert np.array_equal(a.ReadAsArray(), b.ReadAsArray()), key
        for index in range(1, a.RasterCount + 1):
            band_a, band_b = a.GetRasterBand(index), b.GetRasterBand(index)
            assert (band_a.GetDescription(), band_a.GetNoDataValue(), band_a.DataType) == (
                band_b.GetDescription(), band_b.GetNoDataValue(), band_b.DataType)
        assert a.GetGeoTransform(can_return_null=True) == b.GetGeoTransform(can_return_null=True)
    manifests = [json.loads(open(r["OUTPUT"], encoding="utf-8").read()) for r in (one, dask)]
    stats = []
    for manifest in manifests:
        manifest.pop("created")
        stats.append([source.pop("bands") for source in manifest["sources"]])
    assert manifests[0] == manifests[1]
    for bands_a, bands_b in zip(*stats):
        for band_a, band_b in zip(bands_a, bands_b):
            assert band_a.keys() == band_b.keys()
            for name, value in band_a.items():
                if isinstance(value, float):
                    assert band_b[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
                else:
                    assert band_b[name] == value, name
    folder_a, folder_b = os.path.dirname(one["OUTPUT"]), os.path.dirname(dask["OUTPUT"])
    assert sorted(os.listdir(folder_a)) == sorted(os.listdir(folder_b))  # no part left, nothing else
    for name in os.listdir(folder_a):
        if name.endswith("_positions.csv"):
            with open(os.path.join(folder_a, name), "rb") as a, open(os.path.join(folder_b, name), "rb") as b:
                assert a.read() == b.read(), name


def test_windows_are_whole_rows_of_chunks_in_chunk_order(monkeypatch):
    monkeypatch.setattr(patches, "CHUNK", 10)
    rows = np.array([5, 31, 12, 2, 48, 19, 33, 44])
    cols = np.array([3, 7, 25, 40, 1, 9, 30, 2])
    origins = [(cols, rows)]
    order = np.arange(len(rows))[patches.chunk_order(cols, rows)]
    windows = row_windows(origins, order, 2)  # rows of chunks 0, 1, 3 and 4: 2 points each
    assert [list(w) for w in windows] == [list(order[:4]), list(order[4:])]
    assert [sorted(set((rows[w] // 10).tolist())) for w in windows] == [[0, 1], [3, 4]]
    assert rows_per_window(origins, order, 0, 2) == 1 and rows_per_window(origins, order, 3, 2) == 3
    assert rows_per_window(origins, order, 0, 1) == 2  # 4 rows of chunks, about 3 windows a worker
    assert row_windows(origins, order[:0], 2) == []


@pytest.mark.slow
def test_a_local_cluster_extracts_the_one_process_dataset(inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(patches, "CHUNK", CHUNK)
    (tmp_path / "one").mkdir()
    (tmp_path / "dask").mkdir()
    one = extract(job(inputs, tmp_path / "one" / "train.json"), "one")
    reporter = Hook()
    dask = extract(job(inputs, tmp_path / "dask" / "train.json", EXECUTION="local", WORKERS=2), "dask", reporter)
    windows = [text for text in reporter.stages if text.startswith("windows ")]
    assert windows[-1] == "windows 5/5"  # 14 rows of chunks, about 3 windows a worker: 3 rows a window
    assert one["COUNT"] > 5000 and one["DROPPED_OUTSIDE"] > 0
    assert_same_dataset(one, dask)


@pytest.mark.slow
def test_two_sources_and_no_class_field_on_a_local_cluster(inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(patches, "CHUNK", CHUNK)
    results = {}
    for name, extra in (("one", {}), ("dask", {"EXECUTION": "local", "WORKERS": 2, "WINDOW_TILES": 1})):
        (tmp_path / name).mkdir()
        values = job(inputs, tmp_path / name / "pair.json", SOURCE2=[inputs["coarse"]], **extra)
        values.pop("CLASS_FIELD")
        values.pop("LABEL_RASTER")
        results[name] = extract(values, name)
    assert results["one"]["PATCHES2"] and gdal.Open(results["one"]["PATCHES2"]).RasterXSize == 8
    assert results["one"]["LABELS"] is None
    assert_same_dataset(results["one"], results["dask"])


@pytest.mark.slow
def test_a_worker_killed_mid_run_still_gives_the_one_process_dataset(inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(patches, "CHUNK", CHUNK // 2)  # 27 windows of one row of chunks: many left at the kill
    (tmp_path / "one").mkdir()
    (tmp_path / "dask").mkdir()
    (tmp_path / "logs").mkdir()
    one = extract(job(inputs, tmp_path / "one" / "train.json"), "one")
    cluster = DaskCluster(tmp_path / "logs")
    try:
        reporter = Hook(lambda: cluster.kill(cluster.workers[1]))
        dask = extract(job(inputs, tmp_path / "dask" / "train.json", EXECUTION="scheduler",
                           SCHEDULER=cluster.address, WINDOW_TILES=1), "dask", reporter)
        done, total = map(int, reporter.fired.split()[1].split("/"))
        assert done < total == 27 and cluster.workers[1].poll() is not None  # killed with windows left to do
    finally:
        cluster.close()
    assert_same_dataset(one, dask)


@pytest.mark.slow
def test_a_scheduler_that_stops_mid_run_is_a_clear_error_and_leaves_nothing(inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(patches, "CHUNK", CHUNK // 2)
    (tmp_path / "out").mkdir()
    (tmp_path / "logs").mkdir()
    cluster = DaskCluster(tmp_path / "logs")
    try:
        reporter = Hook(lambda: cluster.kill(cluster.scheduler))
        with pytest.raises(PatchFlowError) as error:
            extract(job(inputs, tmp_path / "out" / "train.json", EXECUTION="scheduler", SCHEDULER=cluster.address,
                        WINDOW_TILES=1), "stopped", reporter)
    finally:
        cluster.close()
    assert reporter.fired is not None and error.value.parameter == "SCHEDULER"
    assert f"the Dask scheduler at {cluster.address} stopped answering" in error.value.message
    assert os.listdir(tmp_path / "out") == []  # no dataset, no part, no staging folder


@pytest.mark.slow
def test_cancel_cancels_the_windows_and_leaves_nothing(inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(patches, "CHUNK", CHUNK)
    (tmp_path / "out").mkdir()
    cancel = threading.Event()
    reporter = Hook(cancel.set)
    with pytest.raises(Cancelled):
        extract(job(inputs, tmp_path / "out" / "train.json", EXECUTION="local", WORKERS=2, WINDOW_TILES=1),
                "cancel", reporter, cancel)
    assert reporter.fired is not None and os.listdir(tmp_path / "out") == []


@pytest.mark.slow
def test_label_polygons_burnt_on_each_worker_give_the_one_process_label_patches(inputs, nc, tmp_path, monkeypatch):
    monkeypatch.setattr(patches, "CHUNK", CHUNK)
    results = {}
    for name, extra in (("one", {}), ("dask", {"EXECUTION": "local", "WORKERS": 2})):
        (tmp_path / name).mkdir()
        values = job(inputs, tmp_path / name / "seg.json", LABEL_POLYGONS=str(nc / "landsat96_polygons.shp"),
                     LABEL_FIELD="label", SKIP_NODATA=False, **extra)
        values.pop("LABEL_RASTER")
        results[name] = extract(values, name)
    assert results["one"]["LABEL_PATCHES"] and results["one"]["DROPPED_NODATA"] == 0
    assert_same_dataset(results["one"], results["dask"])
