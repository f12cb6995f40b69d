"""Engine tests: helpers to run operations in-process (no QGIS involved), and the GDAL/OGR helpers
of tests/helpers.py (synthetic rasters and point layers in tmp_path, outputs read back) as ``gd``."""

from __future__ import annotations

import gc
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from patchflow.tests.helpers import (
    EPSG,
    geotransform,
    read_points,
    read_raster,
    srs_wkt,
    to_pixels,
    write_points,
    write_raster,
)


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


def folder_entries(folder) -> list[str]:
    """Every name in ``folder`` (hidden ones included), sorted."""
    return sorted(p.name for p in Path(folder).iterdir())


@pytest.fixture(scope="session")
def gd() -> SimpleNamespace:
    """The GDAL helpers (tests/helpers.py): gd.write_raster, gd.write_points, gd.read_points, gd.read_raster,
    gd.geotransform, gd.to_pixels, gd.folder_entries, gd.srs_wkt."""
    return SimpleNamespace(
        write_raster=write_raster, write_points=write_points, read_points=read_points,
        read_raster=read_raster, geotransform=geotransform, to_pixels=to_pixels,
        folder_entries=folder_entries, srs_wkt=srs_wkt, EPSG=EPSG)
