"""Train classifier and Classify say what they are doing: a stage for loading the classifier, for fitting it
(a long call whose progress a heartbeat moves), and one per block of the map, with progress that only rises.
Real data: a Random Forest on the NC Landsat-7 pixels, the scene classified in small blocks."""

from __future__ import annotations

import pytest

from patchflow.tests.engine.stagerecorder import run


@pytest.fixture(scope="module")
def rf(nc, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("stages")
    image = str(nc / "landsat_multiband.tif")
    extracted = run("extract_patches", INPUT=str(nc / "landsat96_points.shp"), SOURCE1=image, PATCH_SIZE1=1,
                    CLASS_FIELD="label", OUTPUT=str(folder / "train.json"))[0]
    trained, reporter = run("train_classifier", DATASET=extracted["OUTPUT"], N_TREES=10,
                            OUTPUT=str(folder / "rf.skops"))
    fitting = [stage for stage in reporter.stages if stage[0].startswith("fitting the RandomForestClassifier")]
    assert fitting == [(f"fitting the RandomForestClassifier on {extracted['COUNT']} samples", 70, 85)]
    return trained["OUTPUT"]


def test_classify_reports_a_stage_per_block(nc, rf, tmp_path, monkeypatch):
    from patchflow.plugin.engine.classify import deepfeatures

    monkeypatch.setattr(deepfeatures, "PIXEL_BLOCK", 128 * 128)  # 489 x 443 px in blocks of about 128 x 128
    _, reporter = run("classify", INPUT=str(nc / "landsat_multiband.tif"), CLASSIFIER=rf,
                      OUTPUT=str(tmp_path / "map.tif"))
    texts = [text for text, _, _ in reporter.stages]
    assert texts[0] == f"loading the classifier {rf}"
    blocks = [(text, percent) for text, percent, _ in reporter.stages if text.startswith("blocks ")]
    assert len(blocks) >= 12 and blocks[-1][0] == f"blocks {len(blocks)}/{len(blocks)}"
    percents = [percent for _, percent in blocks]
    assert percents == sorted(percents) and percents[0] > deepfeatures.BLOCKS_START and percents[-1] == 99.0
    assert reporter.values == sorted(reporter.values) and reporter.values[-1] == 100
