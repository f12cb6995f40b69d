"""Apply model on a local Dask cluster (EXECUTION local, two worker processes on 127.0.0.1): on the real NC
Landsat scene its class map is the one-process run's, byte for byte, and its probabilities are within 1e-6; a
worker killed in the middle of the run is started again by its nanny and its windows computed again, and the
output is still the same; nothing but the output and its style is left in the folder."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from dask_cluster import nc_fcnn
from osgeo import gdal

from patchflow.plugin import protocol
from patchflow.plugin.engine.reporting import Reporter
from patchflow.plugin.engine.worker import run_job

pytestmark = pytest.mark.slow


class Hook(Reporter):
    """A reporter that calls ``action(windows done, windows)`` once, at the first 'windows i/N' with i >= 1."""

    def __init__(self, action) -> None:
        super().__init__()
        self.action, self.fired, self.stages = action, None, []

    def stage(self, text, percent=None, until=None, log=True) -> None:
        super().stage(text, percent, until, log)
        self.stages.append(text)
        if self.fired is None and text.startswith("windows ") and not text.startswith("windows 0/"):
            done, total = map(int, text.split()[1].split("/"))
            self.fired = (done, total)
            self.action(done, total)


@pytest.fixture(scope="module")
def served(nc, tmp_path_factory):
    """The model, the scene and the one-process outputs (class map and probabilities)."""
    folder = tmp_path_factory.mktemp("dask_local")
    model = nc_fcnn(folder)
    image = str(nc / "landsat_multiband.tif")
    outputs = {}
    for kind in ("class", "probabilities"):
        outputs[kind] = run_job(protocol.Job("apply_model", job(model, image, folder / f"one_{kind}.tif", kind),
                                             "one"), Reporter())["OUTPUT"]
    return model, image, outputs


def job(model, image, output, kind="class", **more) -> dict:
    return {"MODEL": model, "SOURCE1": [image], "TILE_SIZE": 64, "OUTPUT": str(output),
            **({"OUTPUTS": "probabilities"} if kind == "probabilities" else {}), **more}


def describe(path) -> tuple:
    ds = gdal.Open(str(path))
    band = ds.GetRasterBand(1)
    table = band.GetColorTable()
    return (ds.GetGeoTransform(), ds.GetProjection(), ds.RasterCount, band.GetNoDataValue(), band.GetDescription(),
            None if table is None else [table.GetColorEntry(i) for i in range(table.GetCount())],
            band.GetCategoryNames(), band.GetBlockSize(), ds.GetMetadata("IMAGE_STRUCTURE"))


def pixels(path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


def test_a_local_cluster_gives_the_one_process_output(served, tmp_path):
    model, image, one = served
    reporter = Hook(lambda done, total: None)
    result = run_job(protocol.Job("apply_model", job(model, image, tmp_path / "map.tif", EXECUTION="local", WORKERS=2,
                                                     WINDOW_TILES=2), "local"), reporter)
    assert np.array_equal(pixels(result["OUTPUT"]), pixels(one["class"]))
    assert describe(result["OUTPUT"]) == describe(one["class"])
    assert open(result["OUTPUT"], "rb").read() == open(one["class"], "rb").read()  # the same file, in fact
    assert open(result["STYLE"]).read() == open(one["class"][:-4] + ".qml").read()
    assert reporter.fired is not None and reporter.fired[1] == 16  # 8 x 7 tiles of 64 px, 2 x 2 tiles a window
    assert "windows 16/16" in reporter.stages
    assert sorted(os.listdir(tmp_path)) == ["map.qml", "map.tif", "map.tif.aux.xml"]
    probabilities = run_job(protocol.Job("apply_model", job(model, image, tmp_path / "p.tif", "probabilities",
                                                            EXECUTION="local", WORKERS=2, WINDOW_TILES=3), "p"),
                            Reporter())["OUTPUT"]
    a, b = pixels(probabilities), pixels(one["probabilities"])
    assert a.shape == b.shape == (3, 443, 489) and np.abs(a - b).max() <= 1e-6
    assert describe(probabilities) == describe(one["probabilities"])


def dask_worker_processes() -> list:
    import psutil

    return [child for child in psutil.Process().children(recursive=True)
            if "spawn_main" in " ".join(child.cmdline()) and child.is_running()]


def test_a_worker_killed_mid_run_is_replaced_and_its_windows_computed_again(served, tmp_path):
    model, image, one = served
    killed = []

    def kill(done, total):
        victims = dask_worker_processes()
        assert len(victims) >= 2, victims
        os.kill(victims[0].pid, signal.SIGKILL)
        killed.append(victims[0].pid)

    reporter = Hook(kill)
    result = run_job(protocol.Job("apply_model", job(model, image, tmp_path / "map.tif", EXECUTION="local", WORKERS=2,
                                                     WINDOW_TILES=1), "killed"), reporter)
    assert killed and reporter.fired[0] < reporter.fired[1] == 56  # killed with windows left to do
    assert np.array_equal(pixels(result["OUTPUT"]), pixels(one["class"]))
    assert describe(result["OUTPUT"]) == describe(one["class"])
    assert sorted(os.listdir(tmp_path)) == ["map.qml", "map.tif", "map.tif.aux.xml"]


def test_patch_based_serving_on_a_local_cluster_is_served_in_whole_strips(gd, tmp_path):
    """A patch CNN every 4th pixel of a wide scene: strips of 256 output rows, 3 windows of whole strips."""
    from patchflow.plugin.engine.models.modelcard import InputSpec, Normalization
    from patchflow.plugin.engine.models.zoo import build_model, export_model

    rng = np.random.default_rng(3)
    rows, cols = np.mgrid[0:2100, 0:4096]
    data = np.stack([100 + 40 * np.sin(rows / 23 + b) * np.cos(cols / 31) + rng.normal(0, 10, rows.shape)
                     for b in range(3)]).astype(np.int16)
    image = gd.write_raster(tmp_path / "wide.tif", data)
    model, card = build_model("patch_cnn", [InputSpec("x1", 3, 16, "source1", Normalization("standard", [100.0] * 3,
                                                                                          [30.0] * 3))],
                              [{"id": 1, "name": "a", "color": "#ff0000"}, {"id": 2, "name": "b", "color": "#00ff00"}],
                              width=4, seed=2)
    export_model(model, card, str(tmp_path / "cnn"))
    base = {"MODEL": str(tmp_path / "cnn"), "SOURCE1": [image], "MODE": "patch", "STRIDE": 4}
    (tmp_path / "one").mkdir()
    (tmp_path / "dask").mkdir()
    one = run_job(protocol.Job("apply_model", {**base, "OUTPUT": str(tmp_path / "one" / "map.tif")}, "one"),
                  Reporter())
    reporter = Hook(lambda done, total: None)
    dask = run_job(protocol.Job("apply_model", {**base, "OUTPUT": str(tmp_path / "dask" / "map.tif"),
                                                "EXECUTION": "local", "WORKERS": 2}, "dask"), reporter)
    assert reporter.fired[1] == 3 and (dask["WIDTH"], dask["HEIGHT"]) == (1024, 525)
    assert np.array_equal(pixels(dask["OUTPUT"]), pixels(one["OUTPUT"]))
    assert describe(dask["OUTPUT"]) == describe(one["OUTPUT"])
    assert sorted(os.listdir(tmp_path / "dask")) == sorted(os.listdir(tmp_path / "one"))
