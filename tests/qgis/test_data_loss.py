"""Nothing the user made is lost, through Processing: an output that is, lies inside or contains an
input is refused for every algorithm; OVERWRITE never deletes a folder PatchFlow did not write; two
runs on one output cannot run at once; inputs are left byte-identical, without an .aux.xml beside."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException

from patchflow.plugin import protocol
from patchflow.plugin.engine.locks import lock_path
from patchflow.plugin.engine.reporting import Reporter
from patchflow.plugin.engine.worker import run_job

ROOT = Path(__file__).resolve().parents[2]


def _run_engine(operation, **parameters):
    return run_job(protocol.Job(operation, parameters, "t"), Reporter())


def hashes(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def data(nc, tmp_path_factory) -> Path:
    """The user's folder: copies of the NC scene, its labels, points and polygons, a dataset manifest
    with its patches-images, a model, an accuracy report (made by the engine, then all writable)."""
    folder = tmp_path_factory.mktemp("user-data")
    for name in ("landsat_multiband.tif", "landsat96_labelled_pixels.tif"):
        shutil.copy(nc / name, folder / name)
    for stem in ("landsat96_points", "landsat96_polygons"):
        for extension in (".shp", ".shx", ".dbf", ".prj"):
            shutil.copy(nc / (stem + extension), folder / (stem + extension))
    image = str(folder / "landsat_multiband.tif")
    patches = folder / "patches"
    _run_engine("extract_patches", INPUT=str(folder / "landsat96_points.shp"), SOURCE1=[image], PATCH_SIZE1=16,
                CLASS_FIELD="id", OUTPUT=str(patches / "train.json"))
    _run_engine("create_model", ARCHITECTURE="patch_cnn", DATASET=str(patches / "train.json"), WIDTH=2, SEED=1,
                OUTPUT=str(folder / "cnn"))
    _run_engine("assess_accuracy", INPUT=str(folder / "landsat96_labelled_pixels.tif"),
                REFERENCE=str(folder / "landsat96_points.shp"), CLASS_FIELD="id",
                OUTPUT_CSV=str(folder / "scores.csv"), OUTPUT_HTML=str(folder / "scores.html"))
    _run_engine("train_classifier", DATASET=str(patches / "train.json"), N_TREES=5, OUTPUT=str(folder / "rf"))
    for path in folder.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    return folder


def _classifier(folder: Path) -> str:
    """The classifier train_classifier wrote (its extension says its format)."""
    return next((str(p) for p in sorted(folder.glob("rf.*")) if p.suffix != ".json"), str(folder / "rf.skops"))


def _cases(d: Path) -> dict[str, tuple[dict, str, str]]:
    """algorithm -> (parameters with an output over an input, the output's key, the input's key)."""
    image, labels = str(d / "landsat_multiband.tif"), str(d / "landsat96_labelled_pixels.tif")
    points, polygons = str(d / "landsat96_points.shp"), str(d / "landsat96_polygons.shp")
    manifest, model = str(d / "patches" / "train.json"), str(d / "cnn")
    return {
        "applymodel": ({"MODEL": model, "SOURCE1": [image], "OUTPUT": image}, "OUTPUT", "SOURCE1"),
        "assessaccuracy": ({"INPUT": labels, "REFERENCE": points, "CLASS_FIELD": "id", "OUTPUT_CSV": str(
            d / "out.csv"), "OUTPUT_HTML": labels}, "OUTPUT_HTML", "INPUT"),
        "assessimagequality": ({"INPUT": [image], "REFERENCE": [image], "OUTPUT_CSV": image,
                                "OUTPUT_HTML": str(d / "q.html")}, "OUTPUT_CSV", "INPUT"),
        "buildsrdataset": ({"HR": [image], "SCALE": 2, "PATCH_SIZE": 8, "OUTPUT_TRAIN": str(d / "sr.json"),
                            "OUTPUT_LR": image}, "OUTPUT_LR", "HR"),
        "classify": ({"INPUT": [image], "CLASSIFIER": _classifier(d), "OUTPUT": image}, "OUTPUT", "INPUT"),
        "compareaccuracy": ({"REPORTS": [str(d / "scores.csv")], "OUTPUT_CSV": str(d / "scores.csv")},
                            "OUTPUT_CSV", "REPORTS"),
        "comparesr": ({"HR": image, "LABELS": labels, "OUTPUT": str(d)}, "OUTPUT", "HR"),
        "createmodel": ({"ARCHITECTURE": 0, "DATASET": manifest, "OUTPUT": str(d / "patches")}, "OUTPUT", "DATASET"),
        "describepatches": ({"PATCHES": [str(d / "patches" / "train_source1.tif")], "OUTPUT": str(d / "patches")},
                            "OUTPUT", "PATCHES"),
        "extractpatches": ({"INPUT": points, "SOURCE1": [image], "PATCH_SIZE1": 16, "OUTPUT": image}, "OUTPUT",
                           "SOURCE1"),
        "gridsplit": ({"INPUT": image, "SAMPLES": points, "CLASS_FIELD": "id", "OUTPUT_TRAIN": points},
                      "OUTPUT_TRAIN", "SAMPLES"),
        "samplefromlabelraster": ({"INPUT": labels, "OUTPUT": str(d / "landsat96_labelled_pixels.gpkg")}, "OUTPUT",
                                  None),
        "samplefromvector": ({"INPUT": polygons, "FIELD": "id", "RASTER": image, "OUTPUT": polygons}, "OUTPUT",
                             "INPUT"),
        "trainclassifier": ({"DATASET": manifest, "OUTPUT": manifest}, "OUTPUT", "DATASET"),
        "trainmodel": ({"TRAIN": manifest, "EPOCHS": 1, "OUTPUT": str(d)}, "OUTPUT", "TRAIN"),
    }


def test_every_algorithm_has_an_output_over_input_case(provider, data):
    assert set(_cases(data)) == {algorithm.name() for algorithm in provider.algorithms()}


@pytest.mark.parametrize("name", sorted(_cases(Path("/d"))))
def test_an_output_over_an_input_is_refused_and_the_input_is_untouched(run_alg, provider, data, name):
    parameters, output_key, input_key = _cases(data)[name]
    if input_key is None:  # its only input is a raster, its output a vector layer: the output is in the input's place
        shutil.copy(data / "landsat96_labelled_pixels.tif", data / "landsat96_labelled_pixels.gpkg")
        parameters = {**parameters, "INPUT": str(data / "landsat96_labelled_pixels.gpkg")}
        input_key = "INPUT"
    before = hashes(data)
    algorithm = provider.algorithm(name)
    with pytest.raises(QgsProcessingException) as caught:
        run_alg(name, **parameters)
    message = str(caught.value)
    for key in (output_key, input_key):
        assert f"{algorithm.parameterDefinition(key).description()} ({key})" in message, message
    assert hashes(data) == before, "an input changed, or something was written beside the inputs"
    assert not list(data.rglob(f"{protocol.STAGING_PREFIX}*"))
    (data / "landsat96_labelled_pixels.gpkg").unlink(missing_ok=True)


@pytest.mark.parametrize("name, parameters", [
    ("trainmodel", {"EPOCHS": 1}),
    ("createmodel", {"ARCHITECTURE": 0, "WIDTH": 2}),
])
def test_overwrite_never_deletes_a_folder_patchflow_did_not_write(run_alg, data, tmp_path, name, parameters):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "thesis.txt").write_text("four years of work")
    dataset_key = "TRAIN" if name == "trainmodel" else "DATASET"
    with pytest.raises(QgsProcessingException, match=r"\(OUTPUT\).*not written by PatchFlow"):
        run_alg(name, **parameters, **{dataset_key: str(data / "patches" / "train.json")}, OVERWRITE=True,
                OUTPUT=str(folder))
    assert (folder / "thesis.txt").read_text() == "four years of work"
    assert sorted(os.listdir(folder)) == ["thesis.txt"]


def _start_engine_run(operation: str, parameters: dict, output: str) -> subprocess.Popen:
    """The first run, in its own worker process, once it holds its output's lock."""
    import json

    env = dict(os.environ, PYTHONPATH=str(ROOT / ".cache" / "plugins"))
    job = protocol.Job(operation, parameters, "first").to_line()
    process = subprocess.Popen([sys.executable, "-m", "patchflow.plugin.engine", "worker"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    process.stdin.write(job + "\n")
    process.stdin.flush()
    deadline = time.monotonic() + 60
    while not lock_path(output).exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert lock_path(output).exists(), "the first run never started: " + json.dumps(process.poll())
    return process


def _finish(process: subprocess.Popen) -> dict:
    """The first run's result (or error) line; its stdin stays open until then (closing it cancels)."""
    try:
        for line in process.stdout:
            message = protocol.Message.from_line(line)
            if message is not None and message.kind in (protocol.RESULT, protocol.ERROR):
                return message.payload
        return {"message": "no result line"}
    finally:
        process.stdin.close()
        process.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["trainmodel", "applymodel"])
def test_a_second_run_on_the_same_output_is_refused_and_the_first_completes(run_alg, data, tmp_path, name):
    manifest, image = str(data / "patches" / "train.json"), str(data / "landsat_multiband.tif")
    if name == "trainmodel":
        output = str(tmp_path / "model")
        first = {"TRAIN": manifest, "EPOCHS": 40, "OUTPUT": output}
        second = {"TRAIN": manifest, "EPOCHS": 1, "OUTPUT": output}
        engine = ("train_model", {**first, "WIDTH": 2})
    else:
        output = str(tmp_path / "map.tif")
        first = {"MODEL": str(data / "cnn"), "SOURCE1": [image], "TILE_SIZE": 64, "OUTPUT": output}
        second = first
        engine = ("apply_model", first)
    process = _start_engine_run(*engine, output)
    try:
        with pytest.raises(QgsProcessingException, match=rf"\(OUTPUT\).*another PatchFlow run \(pid {process.pid}\)"):
            run_alg(name, **second)
    finally:
        payload = _finish(process)
    assert "outputs" in payload, payload  # the first run was not disturbed
    assert os.path.exists(output)
    assert not list(tmp_path.glob(f"{protocol.STAGING_PREFIX}*"))


def test_a_geopackage_holding_the_users_layers_is_not_replaced(run_alg, data, tmp_path):
    from osgeo import ogr

    project = tmp_path / "project.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(project))
    ds.CreateLayer("roads", None, ogr.wkbLineString)
    ds = None
    before = hashes(tmp_path)
    with pytest.raises(QgsProcessingException, match=r"Samples \(OUTPUT\).*other layers \(roads\)"):
        run_alg("samplefromlabelraster", INPUT=str(data / "landsat96_labelled_pixels.tif"), NUMBER=5,
                OUTPUT=str(project))
    assert hashes(tmp_path) == before
