"""In Processing, the algorithms without a model say what they are doing too: each stage a line of the log and
the progress bar's text, each window of a long pass (windows i/N) the progress bar's text, with progress that
only rises. Real data: the NC Landsat-7 scene, its labelled points and label raster, through processing.run
with a line-recording feedback."""

from __future__ import annotations

import re

import pytest
from qgis.core import QgsProcessingContext

from patchflow.tests.qgis.feedback import LineRecorder


class StageRecorder(LineRecorder):
    """The lines of the log, and apart from them the progress bar's texts and values as the worker's client
    sets them."""

    def __init__(self) -> None:
        super().__init__()
        self.progress_texts: list[str] = []
        self.progress_values: list[float] = []

    def setProgressText(self, text: str) -> None:  # noqa: N802
        self.progress_texts.append(text)

    def setProgress(self, progress: float) -> None:  # noqa: N802
        self.progress_values.append(progress)
        super().setProgress(progress)

RUNS = {  # algorithm: (parameters, stages logged in order, the progress texts of one pass, i/N)
    "samplefromlabelraster": (
        {"INPUT": "landsat96_labelled_pixels.tif", "NUMBER": 20, "OUTPUT": "samples.gpkg"},
        [r"reading the label raster landsat96_labelled_pixels\.tif, band 1",
         "counting the labelled pixels of each class", "drawing the samples", r"writing the \d+ points"],
        "counting: windows"),
    "gridsplit": (
        {"INPUT": "landsat_multiband.tif", "LABELS": "strata.tif", "PATCH_SIZE": 16, "OUTPUT_TRAIN": "train.gpkg",
         "OUTPUT_VALID": "valid.gpkg", "OUTPUT_TEST": "test.gpkg"},
        ["finding the patches free of nodata", "reading the labels at the patch centres",
         r"assigning the blocks to the sets \(split\)", "writing the train points", "writing the test points"],
        "nodata: grid rows"),
    "assessaccuracy": (
        {"INPUT": "landsat96_labelled_pixels.tif", "REFERENCE": "landsat96_points.shp", "CLASS_FIELD": "id",
         "OUTPUT_CSV": "scores.csv", "OUTPUT_HTML": "report.html"},
        ["reading the reference points of landsat96_points", "computing the confusion matrix and the scores",
         "writing the reports"],
        "reading the map at the points: windows"),
}


@pytest.mark.parametrize("algorithm", sorted(RUNS))
def test_stages_are_logged_in_order_and_progress_rises(algorithm, provider, nc, tmp_path):
    import processing

    given, logged, steps = RUNS[algorithm]
    parameters = {name: value if not isinstance(value, str) or name in ("CLASS_FIELD",) else
                  str((tmp_path if name.startswith("OUTPUT") else nc) / value) for name, value in given.items()}
    feedback = StageRecorder()
    processing.run(f"patchflow:{algorithm}", parameters, context=QgsProcessingContext(), feedback=feedback)
    infos = [text for kind, text in feedback.lines if kind == "info"]
    position = 0
    for pattern in logged:
        found = [i for i in range(position, len(infos)) if re.fullmatch(pattern, infos[i])]
        assert found, f"{pattern!r} not logged after {infos[position - 1] if position else 'the start'}: {infos}"
        assert found[0] == found[-1], f"{pattern!r} logged twice"
        position = found[0] + 1
    for pattern in logged:  # each stage is the progress bar's text too
        assert any(re.fullmatch(pattern, text) for text in feedback.progress_texts), pattern
    passes = [text for text in feedback.progress_texts if re.fullmatch(steps + r" \d+/\d+", text)]
    assert passes and re.search(r" (\d+)/\1$", passes[-1]), feedback.progress_texts
    values = feedback.progress_values
    assert len(values) >= 3 and values == sorted(values) and values[-1] == 100, values
