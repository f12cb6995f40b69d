"""Create model says what it is doing: importing TensorFlow (the first time in the worker), building the model
(a long call whose progress a heartbeat moves), exporting it; progress only rises. Real data: a model for the
NC Landsat-7 patches, and the SR generator for the SPOT-6 super-resolution dataset."""

from __future__ import annotations

import sys

from patchflow.tests.engine.stagerecorder import rising, run, said_in_order

EXPORT = "exporting the SavedModel, model.keras and the model card"


def test_create_model_builds_then_exports(nc, tmp_path):
    extracted, _ = run("extract_patches", INPUT=str(nc / "landsat96_points.shp"),
                       SOURCE1=str(nc / "landsat_multiband.tif"), PATCH_SIZE1=16, CLASS_FIELD="label",
                       OUTPUT=str(tmp_path / "patches.json"))
    first = "tensorflow" not in sys.modules
    out, reporter = run("create_model", ARCHITECTURE="patch_cnn", DATASET=extracted["OUTPUT"], WIDTH=4,
                        OUTPUT=str(tmp_path / "cnn"))
    assert out["PARAMETERS"] > 0
    said_in_order(reporter.logged, ["importing TensorFlow"] * first + ["building the patch_cnn model", EXPORT])
    long_calls = [(percent, until) for text, percent, until in reporter.stages
                  if text.startswith(("building", "exporting"))]
    assert long_calls == [(30, 45), (45, 98)]  # the heartbeat moves progress towards the end of each long call
    rising(reporter)


def test_create_sr_generator_builds_then_exports(spot6, tmp_path):
    dataset, _ = run("build_sr_dataset", HR=[str(spot6 / "fake_spot6.jp2")], SCALE=4, PATCH_SIZE=16, VALID=0,
                     OUTPUT_TRAIN=str(tmp_path / "sr.json"))
    out, reporter = run("create_model", ARCHITECTURE="sr_generator", DATASET=dataset["OUTPUT_TRAIN"], WIDTH=8,
                        OUTPUT=str(tmp_path / "generator"))
    assert out["PARAMETERS"] > 0
    said_in_order(reporter.logged, ["building the sr_generator model", EXPORT])
    rising(reporter)
