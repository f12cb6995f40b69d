"""The checks before the run (plugin/engine/preflight.py), which QGIS's process runs in checkParameterValues:
in a fresh Python they refuse the bad inputs the worker would refuse, naming the same parameter, and import
neither TensorFlow, Keras nor scikit-learn (so that QGIS never loads them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from osgeo import gdal

from patchflow.plugin import protocol
from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.preflight import PREFLIGHTS, preflight
from patchflow.plugin.engine.reporting import Reporter
from patchflow.plugin.engine.worker import run_job

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("tensorflow", "keras", "sklearn", "joblib", "skops")


def engine(operation: str, **parameters) -> dict:
    return run_job(protocol.Job(operation, parameters, "t"), Reporter())


@pytest.fixture(scope="module")
def data(nc, tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("preflight")
    image, band = str(nc / "landsat_multiband.tif"), str(nc / "lsat7_2000_10.tif")
    gdal.Warp(str(folder / "wgs84.tif"), band, dstSRS="EPSG:4326")
    train = str(folder / "train.json")
    engine("extract_patches", INPUT=str(nc / "landsat96_points.shp"), SOURCE1=[image], PATCH_SIZE1=16,
           CLASS_FIELD="id", OUTPUT=train)
    engine("extract_patches", INPUT=str(nc / "landsat96_points.shp"), SOURCE1=[band], PATCH_SIZE1=16,
           CLASS_FIELD="id", OUTPUT=str(folder / "oneband.json"))
    engine("create_model", ARCHITECTURE="fcnn", BANDS=5, PATCH_SIZE=32, N_CLASSES=7, WIDTH=2,
           OUTPUT=str(folder / "fcnn32"))
    engine("train_classifier", DATASET=train, N_TREES=2, OUTPUT=str(folder / "rf.skops"))
    return {"image": image, "band": band, "wgs84": str(folder / "wgs84.tif"),
            "points": str(nc / "landsat96_points.shp"),
            "train": train, "oneband": str(folder / "oneband.json"),
            "fcnn32": str(folder / "fcnn32"), "rf": str(folder / "rf.skops"),
            "out": str(folder / "out")}


def cases(d: dict[str, str]) -> dict[str, tuple[str, dict, str | None]]:
    """name: (operation, parameters, the parameter named; None: the checks pass)."""
    out = d["out"]
    return {
        "apply-bands": ("apply_model", {"MODEL": d["fcnn32"], "SOURCE1": [d["band"]], "OUTPUT": f"{out}/m.tif"},
                        "SOURCE1"),
        "apply-extent": ("apply_model", {"MODEL": d["fcnn32"], "SOURCE1": [d["image"]], "EXTENT": "0,10,0,10",
                                         "OUTPUT": f"{out}/m.tif"}, "EXTENT"),
        "apply-sound": ("apply_model", {"MODEL": d["fcnn32"], "SOURCE1": [d["image"]], "OUTPUT": f"{out}/m.tif"},
                        None),
        "train-patch-size": ("train_model", {"TRAIN": d["train"], "MODEL": d["fcnn32"], "OUTPUT": f"{out}/model"},
                             "MODEL"),
        "train-sound": ("train_model", {"TRAIN": d["train"], "OUTPUT": f"{out}/model"}, None),
        "extract-crs": ("extract_patches", {"INPUT": d["points"], "SOURCE1": [d["image"]], "PATCH_SIZE1": 16,
                                            "SOURCE2": [d["wgs84"]], "PATCH_SIZE2": 16, "OUTPUT": f"{out}/d.json"},
                        "SOURCE2"),
        "extract-sound": ("extract_patches", {"INPUT": d["points"], "SOURCE1": [d["image"]], "PATCH_SIZE1": 16,
                                              "OUTPUT": f"{out}/d.json"}, None),
        "classify-bands": ("classify", {"INPUT": [d["band"]], "CLASSIFIER": d["rf"], "OUTPUT": f"{out}/c.tif"},
                           "INPUT"),
        "classifier-valid-bands": ("train_classifier", {"DATASET": d["train"], "VALID": d["oneband"],
                                                        "OUTPUT": f"{out}/rf.skops"}, "VALID"),
        "classifier-sound": ("train_classifier", {"DATASET": d["train"], "VALID": d["train"],
                                                  "OUTPUT": f"{out}/rf.skops"}, None),
        "classifier-card": ("train_classifier", {"DATASET": d["train"], "MODEL": d["fcnn32"],
                                                 "OUTPUT": f"{out}/rf.skops"}, "MODEL"),
    }


FRESH = """
import json, sys, time
from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.preflight import preflight
answers = {}
for name, (operation, parameters, _) in json.loads(sys.argv[1]).items():
    started = time.monotonic()
    try:
        preflight(operation, parameters)
        answers[name] = None
    except PatchFlowError as exc:
        answers[name] = exc.parameter
    answers[name] = [answers[name], time.monotonic() - started]
print(json.dumps({"answers": answers, "heavy": sorted(m for m in HEAVY if m in sys.modules)}))
""".replace("HEAVY", repr(HEAVY))


def test_checks_before_the_run_refuse_bad_inputs_without_tensorflow(data):
    given = cases(data)
    env = dict(os.environ, PYTHONPATH=str(ROOT / ".cache" / "plugins"))
    done = subprocess.run([sys.executable, "-c", FRESH, json.dumps(given)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    for name, (parameter, seconds) in answer["answers"].items():
        print(f"{name}: {parameter} in {seconds:.3f} s")
    assert {name: parameter for name, (parameter, _) in answer["answers"].items()} == {
        name: case[2] for name, case in given.items()}
    assert answer["heavy"] == [], f"imported {answer['heavy']}"
    assert not Path(data["out"]).exists(), "the checks wrote an output"


def test_the_worker_names_the_same_parameter(data):
    """The checks are the operation's own first ones: the worker refuses the same input the same way."""
    for name, (operation, parameters, parameter) in cases(data).items():
        if parameter is None:
            continue
        with pytest.raises(PatchFlowError) as before:
            preflight(operation, parameters)
        with pytest.raises(PatchFlowError) as run:
            engine(operation, **parameters)
        assert (before.value.parameter, before.value.message) == (run.value.parameter, run.value.message), name


def test_operations_without_checks_before_the_run_pass():
    assert set(PREFLIGHTS) == {"apply_model", "train_model", "extract_patches", "train_classifier", "classify"}
    preflight("grid_split", {"INPUT": "/nonexistent.tif"})  # left to the worker
