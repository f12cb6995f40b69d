"""The chain shipped as a graphical-modeler model (resources/patchflow_chain.model3): it loads in
Processing with PatchFlow's children, matches scripts/make_model3.py, and runs headless through
`qgis_process run <file>.model3`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL3 = ROOT / "resources" / "patchflow_chain.model3"
QGIS_PROCESS = ROOT / "scripts" / "qgis_process.sh"
CHILDREN = {
    "samples": "patchflow:samplefromvector",
    "split": "patchflow:gridsplit",
    "patches_train": "patchflow:extractpatches",
    "patches_valid": "patchflow:extractpatches",
    "patches_test": "patchflow:extractpatches",
    "train": "patchflow:trainmodel",
    "apply": "patchflow:applymodel",
    "assess": "patchflow:assessaccuracy",
}
NC_CLASSES = ("agriculture", "developed", "forest", "herbaceous", "sediment", "shrubland", "water")


def test_model3_loads_with_the_patchflow_chain(provider):
    from qgis.core import QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL3))
    model.initAlgorithm({})
    ok, errors = model.validate()
    assert ok, errors
    children = model.childAlgorithms()
    assert {child_id: child.algorithmId() for child_id, child in children.items()} == CHILDREN
    assert all(child.algorithm() is not None for child in children.values())
    assert model.dependsOnChildAlgorithms("assess") >= {"apply", "train", "split", "samples", "patches_train",
                                                        "patches_test"}
    # the map is assessed at the test points, which the training scored once and never chose by
    assess = children["assess"].parameterSources()["REFERENCE"][0]
    assert (assess.outputChildId(), assess.outputName()) == ("split", "OUTPUT_TEST")
    train = children["train"].parameterSources()
    assert train["TEST"][0].outputChildId() == "patches_test" and train["VALID"][0].outputChildId() == "patches_valid"
    names = {definition.name() for definition in model.parameterDefinitions()}
    assert names == {"image", "labels", "class_field", "patch_size", "epochs", "split_seed",
                     "apply:class_map", "train:model", "assess:accuracy_report"}
    assert {output.name() for output in model.outputDefinitions()} == {
        "apply:class_map", "train:model", "assess:accuracy_report"}


def test_model3_is_what_make_model3_writes(tmp_path):
    written = tmp_path / "chain.model3"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_model3.py"), "--output", str(written)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert written.read_text(encoding="utf-8") == MODEL3.read_text(encoding="utf-8"), (
        "resources/patchflow_chain.model3 is stale: run .venv/bin/python scripts/make_model3.py")


@pytest.mark.slow
def test_model3_runs_the_chain_through_qgis_process(nc, tmp_path):
    env = {**os.environ, "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "qgis-config"), "QT_QPA_PLATFORM": "offscreen"}
    class_map, model, report = tmp_path / "map" / "classes.tif", tmp_path / "model", tmp_path / "accuracy.html"
    class_map.parent.mkdir()
    arguments = [f"image={nc / 'landsat_multiband.tif'}", f"labels={nc / 'landsat96_polygons.shp'}",
                 "class_field=label", "epochs=2", "split_seed=3",  # patch size left out: the model's 16
                 f"apply:class_map={class_map}", f"train:model={model}", f"assess:accuracy_report={report}"]
    done = subprocess.run(["bash", str(QGIS_PROCESS), "--json", "run", str(MODEL3), "--", *arguments],
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    answer = json.loads(done.stdout[done.stdout.index("{"):])
    assert answer["results"] == {"apply:class_map": str(class_map), "train:model": str(model),
                                 "assess:accuracy_report": str(report)}

    from osgeo import gdal

    raster = gdal.Open(str(class_map))
    assert (raster.RasterXSize, raster.RasterYSize) == (489, 443)
    style = class_map.with_suffix(".qml").read_text(encoding="utf-8")
    assert all(name in style for name in NC_CLASSES)
    card = json.loads((model / "patchflow_card.json").read_text(encoding="utf-8"))
    assert card["inputs"][0]["patch_size"] == 16 and card["inputs"][0]["bands"] == 5
    assert (model / "report.html").exists() and (model / "saved_model.pb").exists()
    assert "kappa" in report.read_text(encoding="utf-8").lower()
    log = "\n".join(answer["log"]["info"])
    scores = re.search(r"(\d+) pairs: overall accuracy ([\d.]+), kappa ([-\d.]+)", log)
    assert scores is not None, log[-3000:]
    assert int(scores[1]) == 420  # the demo's test points: same samples, split and patch size
    assert float(scores[3]) > 0.2
