"""Checks before the run: the algorithm's checkParameterValues runs the engine's cheap checks (band counts
against the model card or the classifier, patch sizes, CRS, extents) in QGIS's process, so that a bad input
is refused in the dialog, in well under a second, before any worker (and TensorFlow) starts."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

ROOT = Path(__file__).resolve().parents[2]
LIMIT_S = 1.0


def _engine(operation: str, **parameters) -> dict:
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    return run_job(protocol.Job(operation, parameters, "before-run"), Reporter())


@pytest.fixture(scope="module")
def inputs(nc, tmp_path_factory) -> dict[str, str]:
    """Real NC inputs: the 5-band image, one band of it, a reprojected band, a dataset of 16 px patches,
    models of 3 bands and of 32 px patches for it, a Random Forest trained on it."""
    from osgeo import gdal

    folder = tmp_path_factory.mktemp("before-run")
    image, band = str(nc / "landsat_multiband.tif"), str(nc / "lsat7_2000_10.tif")
    gdal.Warp(str(folder / "wgs84.tif"), band, dstSRS="EPSG:4326")
    dataset = str(folder / "train.json")
    _engine("extract_patches", INPUT=str(nc / "landsat96_points.shp"), SOURCE1=[image], PATCH_SIZE1=16,
            CLASS_FIELD="id", OUTPUT=dataset)
    _engine("extract_patches", INPUT=str(nc / "landsat96_points.shp"), SOURCE1=[band], PATCH_SIZE1=16,
            CLASS_FIELD="id", OUTPUT=str(folder / "oneband.json"))
    _engine("create_model", ARCHITECTURE="patch_cnn", BANDS=3, PATCH_SIZE=16, N_CLASSES=7, WIDTH=2,
            OUTPUT=str(folder / "cnn3"))
    _engine("create_model", ARCHITECTURE="fcnn", BANDS=5, PATCH_SIZE=32, N_CLASSES=7, WIDTH=2,
            OUTPUT=str(folder / "cnn32"))
    _engine("create_model", ARCHITECTURE="patch_cnn", BANDS=5, PATCH_SIZE=16, N_CLASSES=7, WIDTH=2,
            OUTPUT=str(folder / "cnn5"))
    _engine("train_classifier", DATASET=dataset, N_TREES=2, OUTPUT=str(folder / "rf.skops"))
    return {"image": image, "band": band, "wgs84": str(folder / "wgs84.tif"),
            "points": str(nc / "landsat96_points.shp"),
            "train": dataset, "oneband": str(folder / "oneband.json"),
            "cnn3": str(folder / "cnn3"), "cnn32": str(folder / "cnn32"),
            "cnn5": str(folder / "cnn5"), "rf": str(folder / "rf.skops")}


SOUND = {
    "applymodel": {"MODEL": "cnn5", "SOURCE1": ["image"], "OUTPUT": "@out/map.tif"},
    "trainmodel": {"TRAIN": "train", "EPOCHS": 1, "WIDTH": 2, "OUTPUT": "@out/model"},
    "extractpatches": {"INPUT": "points", "SOURCE1": ["image"], "PATCH_SIZE1": 16, "CLASS_FIELD": "id",
                       "OUTPUT": "@out/d.json"},
    "classify": {"INPUT": ["image"], "CLASSIFIER": "rf", "OUTPUT": "@out/classes.tif"},
    "trainclassifier": {"DATASET": "train", "N_TREES": 2, "OUTPUT": "@out/rf.skops"},
}
BAD = {  # algorithm, changes, the parameter named, a fragment of the message
    "apply-band-count": ("applymodel", {"SOURCE1": ["band"]}, "SOURCE1", "takes 5 bands"),
    "apply-extent-outside": ("applymodel", {"EXTENT": "0,1000,0,1000 [EPSG:3358]"}, "EXTENT", "lies outside"),
    "apply-two-sources": ("applymodel", {"SOURCE2": ["image"]}, "SOURCE1", "1 input(s)"),
    "apply-unknown-output": ("applymodel", {"OUTPUTS": "segmentation"}, "OUTPUTS", "no output segmentation"),
    "train-card-bands": ("trainmodel", {"MODEL": "cnn3"}, "MODEL", "takes 3 bands"),
    "train-card-patch-size": ("trainmodel", {"MODEL": "cnn32"}, "MODEL", "takes 32x32 px patches"),
    "extract-other-crs": ("extractpatches", {"SOURCE2": ["wgs84"], "PATCH_SIZE2": 16}, "SOURCE2", "share one CRS"),
    "extract-patch-too-big": ("extractpatches", {"PATCH_SIZE1": 600}, "PATCH_SIZE1", "bigger than the raster"),
    "extract-footprints-differ": ("extractpatches", {"SOURCE2": ["band"], "PATCH_SIZE2": 8}, "PATCH_SIZE2",
                                  "cover the same ground"),
    "classify-band-count": ("classify", {"INPUT": ["band"]}, "INPUT", "trained on 5 bands"),
    "classifier-valid-bands": ("trainclassifier", {"VALID": "oneband"}, "VALID", "has 1 bands"),
    "classifier-card-bands": ("trainclassifier", {"MODEL": "cnn3"}, "MODEL", "takes 3 bands"),
}


def resolve(given: dict, inputs: dict, out: Path) -> dict:
    def value(v):
        if isinstance(v, list):
            return [value(x) for x in v]
        if isinstance(v, str) and v.startswith("@out/"):
            return str(out / v[5:])
        return inputs.get(v, v) if isinstance(v, str) else v

    return {key: value(v) for key, v in given.items()}


@pytest.fixture
def worker_starts(monkeypatch) -> list:
    """Every process started meanwhile (the worker is one): none may start for a refused input."""
    started: list = []
    original = subprocess.Popen

    def counting(*args, **kwargs):
        started.append(args[0] if args else kwargs.get("args"))
        return original(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", counting)
    return started


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_before_any_worker_starts(case, inputs, provider, worker_starts, tmp_path):
    import processing

    algorithm, changes, key, fragment = BAD[case]
    parameters = resolve({**SOUND[algorithm], **changes}, inputs, tmp_path / "out")
    description = provider.algorithm(algorithm).parameterDefinition(key).description()
    started = time.monotonic()
    with pytest.raises(QgsProcessingException) as caught:
        processing.run(f"patchflow:{algorithm}", parameters, context=QgsProcessingContext(),
                       feedback=QgsProcessingFeedback())
    seconds = time.monotonic() - started
    message = str(caught.value)
    print(f"{case}: refused in {seconds:.3f} s: {message.splitlines()[-1][:160]}")
    assert f"{description} ({key}): " in message and fragment in message, message
    assert worker_starts == [], f"a process was started: {worker_starts}"
    assert seconds < LIMIT_S, f"{seconds:.2f} s to refuse"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("algorithm", list(SOUND))
def test_sound_inputs_pass_the_checks_before_the_run(algorithm, inputs, provider, worker_starts, tmp_path):
    alg = provider.algorithm(algorithm).create()
    parameters = resolve(SOUND[algorithm], inputs, tmp_path / "out")
    started = time.monotonic()
    ok, message = alg.checkParameterValues(parameters, QgsProcessingContext())
    assert ok, message
    assert time.monotonic() - started < LIMIT_S and worker_starts == []


def test_what_cannot_be_judged_here_is_left_to_the_worker(inputs, provider, tmp_path):
    """A model that does not exist yet (a batch or a model whose earlier step makes it): the dialog lets it
    through, the worker names it."""
    alg = provider.algorithm("applymodel").create()
    parameters = resolve({**SOUND["applymodel"], "MODEL": str(tmp_path / "made-later")}, inputs, tmp_path / "out")
    assert alg.checkParameterValues(parameters, QgsProcessingContext()) == (True, "")


GDAL_STATE = """
import sys
sys.path.insert(0, sys.argv[1])
from osgeo import gdal, ogr, osr
from patchflow.plugin.beforerun import gdal_exceptions
with gdal_exceptions():
    from patchflow.plugin.engine.geodata import raster, vector  # they turn exceptions on when imported
    inside = [m.GetUseExceptions() for m in (gdal, ogr, osr)]
print(inside, [m.GetUseExceptions() for m in (gdal, ogr, osr)], gdal.Open("/nonexistent.tif") is None)
"""


def test_the_checks_leave_gdal_exceptions_as_qgis_had_them():
    """The engine turns GDAL's exceptions on; QGIS and other plugins expect them off: restored after the checks."""
    done = subprocess.run([sys.executable, "-c", GDAL_STATE, str(ROOT / ".cache" / "plugins")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[1, 1, 1] [0, 0, 0] True", done.stdout
