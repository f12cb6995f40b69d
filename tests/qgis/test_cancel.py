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
    print(f"cancel time, extraction: {stopped - feedback.cancelled_at:.2f} s")
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
    print(f"cancel time, serving: {stopped - feedback.cancelled_at:.2f} s")
    assert stopped - feedback.cancelled_at < 2.0
    assert list(out.iterdir()) == []
