"""Cancel midway: the worker stops within 2 s and no output is left behind."""

from __future__ import annotations

import time

import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback


class CancelAt(QgsProcessingFeedback):
    """Cancels once progress passes ``percent``; remembers when."""

    def __init__(self, percent: float) -> None:
        super().__init__()
        self.percent = percent
        self.cancelled_at: float | None = None
        self.progressChanged.connect(self._check)

    def _check(self, value: float) -> None:
        if value >= self.percent and self.cancelled_at is None:
            self.cancelled_at = time.monotonic()
            self.cancel()


@pytest.mark.slow
def test_cancel_long_extraction_leaves_no_file(run_alg, long_scene, tmp_path):
    raster, points = long_scene
    out = tmp_path / "out"
    out.mkdir()
    feedback = CancelAt(10.0)
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run_alg("extractpatches", feedback=feedback, INPUT=str(points), SOURCE1=[str(raster)], PATCH_SIZE1=32,
                OUTPUT=str(out / "dataset.json"))
    stopped = time.monotonic()
    assert feedback.cancelled_at is not None
    assert stopped - feedback.cancelled_at < 2.0
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_long_extraction_completes_when_not_cancelled(run_alg, long_scene, tmp_path):
    """The same job runs to the end: the cancel test above really cancelled midway."""
    raster, points = long_scene
    feedback = QgsProcessingFeedback()
    started = time.monotonic()
    result = run_alg("extractpatches", feedback=feedback, INPUT=str(points), SOURCE1=[str(raster)],
                     PATCH_SIZE1=32, OUTPUT=str(tmp_path / "dataset.json"))
    assert result["COUNT"] == 40000
    assert time.monotonic() - started > 1.0


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


@pytest.mark.slow
def test_cancel_serving_midway_stops_within_2_s_and_leaves_no_file(run_alg, long_serving, tmp_path):
    raster, model = long_serving
    out = tmp_path / "out"
    out.mkdir()
    feedback = CancelAt(5.0)
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run_alg("applymodel", feedback=feedback, MODEL=str(model), SOURCE1=[str(raster)], OUTPUTS="probabilities",
                OUTPUT=str(out / "map.tif"))
    stopped = time.monotonic()
    assert feedback.cancelled_at is not None, "serving ended before it was cancelled"
    assert stopped - feedback.cancelled_at < 2.0
    assert list(out.iterdir()) == []
