"""Train classifier + Classify through processing.run on the North Carolina data (per-pixel Random Forest)."""

from __future__ import annotations

import json

import pytest
from qgis.core import (
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProject,
    QgsRasterLayer,
)


@pytest.fixture
def datasets(run_alg, nc, tmp_path) -> dict:
    image = str(nc / "landsat_multiband.tif")
    split = run_alg("gridsplit", INPUT=image, SAMPLES=str(nc / "landsat96_points.shp"), CLASS_FIELD="id",
                    PATCH_SIZE=16, BLOCK_SIZE=2, TRAIN=0.7, VALID=0.3, TEST=0,
                    OUTPUT_TRAIN=str(tmp_path / "train.gpkg"), OUTPUT_VALID=str(tmp_path / "valid.gpkg"))
    found = {"image": image}
    for name in ("train", "valid"):
        found[name] = run_alg("extractpatches", INPUT=split[f"OUTPUT_{name.upper()}"], SOURCE1=[image],
                              PATCH_SIZE1=16, CLASS_FIELD="class", OUTPUT=str(tmp_path / f"{name}.json"))["OUTPUT"]
    return found


def test_train_and_classify_pixels_real(run_alg, datasets, tmp_path):
    trained = run_alg("trainclassifier", DATASET=datasets["train"], VALID=datasets["valid"], CLASSIFIER=0,
                      TEST=datasets["valid"], N_TREES=30, SEED=2, OUTPUT=str(tmp_path / "rf.skops"))
    assert trained["OUTPUT"] == str(tmp_path / "rf.skops") and (tmp_path / "rf.skops").exists()
    assert 0.3 < trained["VALID_OA"] <= 1 and -1 <= trained["VALID_KAPPA"] <= 1
    # the same manifest as TEST: the same figures, in their own outputs
    assert trained["TEST_KAPPA"] == trained["VALID_KAPPA"] and trained["TEST_CSV"] == str(tmp_path / "rf_test.csv")
    assert trained["N_FEATURES"] == 5 and trained["COUNT"] > 100
    description = json.loads((tmp_path / "rf.json").read_text())
    assert description["kind"] == "pixels" and description["validation"]["kappa"] == trained["VALID_KAPPA"]
    assert (tmp_path / "rf_validation.csv").exists()

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    out = str(tmp_path / "map.tif")
    context.addLayerToLoadOnCompletion(out, QgsProcessingContext.LayerDetails("map", QgsProject.instance(), "OUTPUT"))
    result = run_alg("classify", context=context, INPUT=[datasets["image"]], CLASSIFIER=trained["OUTPUT"],
                     OUTPUT=out, OUTPUT_CONFIDENCE=str(tmp_path / "confidence.tif"))
    assert result["OUTPUT"] == out and result["STYLE"] == str(tmp_path / "map.qml")
    layer = QgsRasterLayer(out, "map")
    assert layer.isValid() and (layer.width(), layer.height()) == (489, 443)
    assert QgsRasterLayer(result["OUTPUT_CONFIDENCE"], "confidence").isValid()
    layer.loadNamedStyle(result["STYLE"])
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    classes = {c.value: (c.label, c.color.name()) for c in renderer.classes()}
    assert classes == {c["id"]: (c["name"], c["color"]) for c in description["classes"]}
    # the post-processor Processing runs when it loads the output applies the same style
    post = context.layerToLoadOnCompletionDetails(out).postProcessor()
    assert post is not None
    loaded = QgsRasterLayer(out, "loaded")
    post.postProcessLayer(loaded, context, None)
    assert isinstance(loaded.renderer(), QgsPalettedRasterRenderer)
    assert len(loaded.renderer().classes()) == len(description["classes"])


def test_classify_with_other_bands_names_the_input(run_alg, nc, datasets, tmp_path):
    trained = run_alg("trainclassifier", DATASET=datasets["train"], N_TREES=5, OUTPUT=str(tmp_path / "rf.skops"))
    with pytest.raises(QgsProcessingException, match=r"\(INPUT\).*5 bands"):
        run_alg("classify", INPUT=[str(nc / "lsat7_2000_10.tif")], CLASSIFIER=trained["OUTPUT"],
                OUTPUT=str(tmp_path / "out" / "map.tif"))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_contextual_rf_against_the_pixel_rf_through_processing(run_alg, nc, datasets, tmp_path):
    points = str(nc / "landsat96_points.shp")
    reports = []
    for name, features in (("pixels", 0), ("context", 1)):  # FEATURES: the enum's index
        trained = run_alg("trainclassifier", DATASET=datasets["train"], FEATURES=features, NEIGHBOURHOOD=3,
                          N_TREES=20, SEED=0, OUTPUT=str(tmp_path / f"{name}.skops"))
        description = json.loads((tmp_path / f"{name}.json").read_text())
        assert description["kind"] == ("pixels", "pixels_neighbourhood")[features]
        assert trained["N_FEATURES"] == (5, 15)[features]
        mapped = run_alg("classify", INPUT=[datasets["image"]], CLASSIFIER=trained["OUTPUT"],
                         OUTPUT=str(tmp_path / f"{name}.tif"))
        assessed = run_alg("assessaccuracy", INPUT=mapped["OUTPUT"], REFERENCE=points, CLASS_FIELD="id",
                           OUTPUT_CSV=str(tmp_path / f"{name}.csv"), OUTPUT_HTML=str(tmp_path / f"{name}.html"))
        assert assessed["PAIRS"] == str(tmp_path / f"{name}_pairs.csv")
        reports.append(assessed["OUTPUT_CSV"])
    compared = run_alg("compareaccuracy", REPORTS=reports, NAMES="pixel RF;contextual RF", RESAMPLES=200,
                       OUTPUT_CSV=str(tmp_path / "c.csv"), OUTPUT_HTML=str(tmp_path / "c.html"))
    assert 0 <= compared["MCNEMAR_P"] <= 1 and "McNemar p" in compared["SIGNIFICANCE"]
    assert compared["BEST_KAPPA_LOW"] < compared["BEST_KAPPA"] < compared["BEST_KAPPA_HIGH"]
    assert compared["SIGNIFICANCE_CSV"] == str(tmp_path / "c_significance.csv")
