"""QGIS-side fixtures: Processing with PatchFlow's provider, and a synthetic scene long enough to
cancel midway."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from patchflow.tests import helpers


@pytest.fixture(scope="session", autouse=True)
def warm_workers_end_with_the_session():
    """The warm workers the algorithms left running end with the test session (none left behind)."""
    yield
    from patchflow.plugin.client import POOL

    POOL.shutdown()


@pytest.fixture
def run_alg(provider):
    """run_alg(name, feedback=None, **parameters) -> results of processing.run('patchflow:name')."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    def run(name: str, feedback=None, context=None, **parameters):
        return processing.run(f"patchflow:{name}", parameters, context=context or QgsProcessingContext(),
                              feedback=feedback or QgsProcessingFeedback())

    return run


def write_raster(path: Path, array: np.ndarray, origin=(500000.0, 4500000.0), pixel=10.0, epsg=32631,
                 nodata=None, options=("TILED=YES", "COMPRESS=DEFLATE")) -> Path:
    """tests/helpers.py's write_raster with this suite's defaults (10 m pixels, tiled and deflated)."""
    helpers.write_raster(path, array, nodata, origin, pixel, epsg, options)
    return path


def write_points(path: Path, xs, ys, epsg=32631, classes=None) -> Path:
    """tests/helpers.py's write_points with an integer field "class" (``classes``, else 0, 1, 2, 0, ...)."""
    values = [int(classes[i]) if classes is not None else i % 3 for i in range(len(xs))]
    helpers.write_points(path, xs, ys, {"class": values}, epsg)
    return path


@pytest.fixture(scope="session")
def long_scene(tmp_path_factory):
    """A 4-band 4000x4000 deflate raster and 40 000 scattered points: extraction takes seconds."""
    folder = tmp_path_factory.mktemp("long")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 2000, size=(4, 4000, 4000), dtype=np.int16)
    raster = write_raster(folder / "scene.tif", image)
    xs = 500000.0 + rng.uniform(400, 39600, 40000)
    ys = 4500000.0 - rng.uniform(400, 39600, 40000)
    points = write_points(folder / "points.gpkg", xs, ys)
    return raster, points


@pytest.fixture(scope="module")
def long_serving(long_scene, tmp_path_factory):
    """A fully convolutional model for the 4-band long scene (made by the engine): serving the whole
    4000 x 4000 scene takes several seconds."""
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    model = tmp_path_factory.mktemp("long-model") / "fcnn"
    run_job(protocol.Job("create_model", {"ARCHITECTURE": "fcnn", "BANDS": 4, "PATCH_SIZE": 32, "N_CLASSES": 3,
                                          "WIDTH": 16, "SEED": 1, "OUTPUT": str(model)}, "t"), Reporter())
    return long_scene[0], model


@pytest.fixture
def make_points():
    return write_points


@pytest.fixture
def make_raster():
    return write_raster
