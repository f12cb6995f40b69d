"""Apply model on an existing Dask scheduler (EXECUTION scheduler): a real ``dask scheduler`` and two ``dask
worker`` processes on 127.0.0.1. The output is the one-process run's; a worker killed outright in the middle of
the run has its windows computed by the other; a scheduler that stops mid-run is a clear error naming it and
leaves nothing; a model changed after the client checked and hashed it is refused by the workers; cancel
leaves nothing."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from dask_cluster import DaskCluster, nc_fcnn
from osgeo import gdal

from patchflow.plugin import protocol
from patchflow.plugin.engine.errors import Cancelled, PatchFlowError
from patchflow.plugin.engine.reporting import Reporter
from patchflow.plugin.engine.worker import run_job

pytestmark = pytest.mark.slow


class Hook(Reporter):
    """Calls ``action(text)`` once, at the first stage ``when(text)`` is true for."""

    def __init__(self, when, action) -> None:
        super().__init__()
        self.when, self.action, self.fired = when, action, None

    def stage(self, text, percent=None, until=None, log=True) -> None:
        super().stage(text, percent, until, log)
        if self.fired is None and self.when(text):
            self.fired = text
            self.action(text)


def after_a_window(text: str) -> bool:
    return text.startswith("windows ") and not text.startswith("windows 0/")


@pytest.fixture(scope="module")
def served(nc, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask_scheduler")
    model = nc_fcnn(folder)
    image = str(nc / "landsat_multiband.tif")
    one = run_job(protocol.Job("apply_model", job(model, image, folder / "one.tif"), "one"), Reporter())["OUTPUT"]
    return model, image, gdal.Open(one).ReadAsArray()


@pytest.fixture
def cluster(tmp_path):
    (tmp_path / "logs").mkdir()
    started = DaskCluster(tmp_path / "logs")
    yield started
    started.close()


def job(model, image, output, **more) -> dict:
    return {"MODEL": model, "SOURCE1": [image], "TILE_SIZE": 64, "OUTPUT": str(output), **more}


def run(model, image, output, reporter, cluster, **more) -> dict:
    return run_job(protocol.Job("apply_model", job(model, image, output, EXECUTION="scheduler",
                                                   SCHEDULER=cluster.address, WINDOW_TILES=1, **more), "dask"),
                   reporter)


def test_a_worker_killed_mid_run_leaves_its_windows_to_the_other(served, cluster, tmp_path):
    model, image, expected = served
    (tmp_path / "out").mkdir()
    reporter = Hook(after_a_window, lambda text: cluster.kill(cluster.workers[1]))
    result = run(model, image, tmp_path / "out" / "map.tif", reporter, cluster)
    done, total = map(int, reporter.fired.split()[1].split("/"))
    assert done < total == 56 and cluster.workers[1].poll() is not None  # killed with windows left to do
    assert np.array_equal(gdal.Open(result["OUTPUT"]).ReadAsArray(), expected)
    assert sorted(os.listdir(tmp_path / "out")) == ["map.qml", "map.tif", "map.tif.aux.xml"]


def test_a_scheduler_that_stops_mid_run_is_a_clear_error_and_leaves_nothing(served, cluster, tmp_path):
    model, image, _ = served
    (tmp_path / "out").mkdir()
    reporter = Hook(after_a_window, lambda text: cluster.kill(cluster.scheduler))
    with pytest.raises(PatchFlowError) as error:
        run(model, image, tmp_path / "out" / "map.tif", reporter, cluster)
    assert reporter.fired is not None
    assert error.value.parameter == "SCHEDULER"
    assert f"the Dask scheduler at {cluster.address} stopped answering" in error.value.message
    assert os.listdir(tmp_path / "out") == []  # no output, no part, no staging folder


def test_a_model_changed_after_the_client_hashed_it_is_refused_by_the_workers(served, cluster, tmp_path):
    model, image, _ = served
    changed = str(tmp_path / "changed_model")
    shutil.copytree(model, changed)
    (tmp_path / "out").mkdir()

    def change(text):  # the client has checked and hashed the model; now it connects to the scheduler
        with open(os.path.join(changed, "variables", "variables.data-00000-of-00001"), "r+b") as handle:
            handle.seek(0, 2)
            handle.write(b"\0")

    reporter = Hook(lambda text: text.startswith("connecting to the Dask scheduler"), change)
    with pytest.raises(PatchFlowError) as error:
        run(changed, image, tmp_path / "out" / "map.tif", reporter, cluster)
    assert reporter.fired is not None and error.value.parameter == "MODEL"
    assert "not the one checked before the run" in error.value.message and "refuses to load it" in error.value.message
    assert os.listdir(tmp_path / "out") == []


def test_cancel_cancels_the_windows_and_leaves_nothing(served, cluster, tmp_path):
    import threading

    model, image, _ = served
    (tmp_path / "out").mkdir()
    cancel = threading.Event()
    reporter = Hook(after_a_window, lambda text: cancel.set())
    with pytest.raises(Cancelled):
        run_job(protocol.Job("apply_model", job(model, image, tmp_path / "out" / "map.tif", EXECUTION="scheduler",
                                                SCHEDULER=cluster.address, WINDOW_TILES=1), "cancel"),
                reporter, cancel)
    assert reporter.fired is not None and os.listdir(tmp_path / "out") == []


def test_a_scheduler_that_cannot_import_patchflow_is_told_how_to_start_it(served, tmp_path):
    from patchflow.plugin.engine.scale.execution import PLUGIN_PARENT

    model, image, _ = served
    (tmp_path / "logs").mkdir()
    (tmp_path / "out").mkdir()
    bare = DaskCluster(tmp_path / "logs", workers=1, patchflow=False)
    try:
        with pytest.raises(PatchFlowError) as error:
            run(model, image, tmp_path / "out" / "map.tif", Reporter(), bare)
    finally:
        bare.close()
    assert error.value.parameter == "SCHEDULER" and "cannot import PatchFlow" in error.value.message
    assert f"PYTHONPATH={PLUGIN_PARENT}" in error.value.message
    assert os.listdir(tmp_path / "out") == []
