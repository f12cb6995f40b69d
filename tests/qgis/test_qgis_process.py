"""The chain headless, through `qgis_process run` in subprocesses, and Ctrl-C there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QGIS_PROCESS = ROOT / "scripts" / "qgis_process.sh"


@pytest.fixture(scope="module")
def qgis_env(tmp_path_factory) -> dict[str, str]:
    env = dict(os.environ)
    env["QGIS_CUSTOM_CONFIG_PATH"] = str(tmp_path_factory.mktemp("qgis-config"))
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def qgis_process(env: dict, algorithm: str, **parameters) -> dict:
    arguments = []
    for key, value in parameters.items():
        for item in value if isinstance(value, list) else [value]:
            arguments.append(f"{key}={item}")
    completed = subprocess.run(
        ["bash", str(QGIS_PROCESS), "--json", "run", f"patchflow:{algorithm}", "--", *arguments],
        env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return json.loads(completed.stdout[completed.stdout.index("{"):])["results"]


@pytest.mark.slow
def test_chain_through_qgis_process(qgis_env, nc, tmp_path):
    image = str(nc / "landsat_multiband.tif")
    samples = qgis_process(qgis_env, "samplefromvector", INPUT=nc / "landsat96_polygons.shp", FIELD="label",
                           RASTER=image, STRATEGY=1, PATCH_SIZE=16, OUTPUT=tmp_path / "samples.gpkg")
    assert samples["COUNT"] > 1000
    assert (tmp_path / "samples.qml").exists()
    split = qgis_process(qgis_env, "gridsplit", INPUT=image, SAMPLES=samples["OUTPUT"], CLASS_FIELD="class",
                         PATCH_SIZE=16, BLOCK_SIZE=4, TRAIN=0.7, VALID=0.3, TEST=0,
                         OUTPUT_TRAIN=tmp_path / "train.gpkg", OUTPUT_VALID=tmp_path / "valid.gpkg")
    assert split["COUNT_TRAIN"] > 0 and split["COUNT_VALID"] > 0
    for name in ("train", "valid"):
        result = qgis_process(qgis_env, "extractpatches", INPUT=split[f"OUTPUT_{name.upper()}"], SOURCE1=image,
                              PATCH_SIZE1=16, CLASS_FIELD="class", OUTPUT=tmp_path / f"{name}.json")
        manifest = json.loads(Path(result["OUTPUT"]).read_text())
        assert manifest["n_patches"] == result["COUNT"] > 0
        assert {c["name"] for c in manifest["classes"]} <= {
            "agriculture", "developed", "forest", "herbaceous", "sediment", "shrubland", "water"}
        assert Path(result["PATCHES1"]).exists() and Path(result["LABELS"]).exists()
    trained = qgis_process(qgis_env, "trainmodel", TRAIN=tmp_path / "train.json", VALID=tmp_path / "valid.json",
                           EPOCHS=3, OUTPUT=tmp_path / "model")
    assert Path(trained["REPORT"]).exists() and (tmp_path / "model" / "saved_model.pb").exists()
    assert 0 < trained["KAPPA"] <= 1 and trained["EPOCHS_RUN"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("job", ["extraction", "serving"])
def test_ctrl_c_in_qgis_process_stops_and_leaves_nothing(qgis_env, long_scene, long_serving, tmp_path, job):
    raster, points = long_scene
    out = tmp_path / "out"
    out.mkdir()
    if job == "extraction":
        arguments = ["patchflow:extractpatches", "--", f"INPUT={points}", f"SOURCE1={raster}", "PATCH_SIZE1=32",
                     f"OUTPUT={out / 'dataset.json'}"]
    else:
        arguments = ["patchflow:applymodel", "--", f"MODEL={long_serving[1]}", f"SOURCE1={raster}",
                     "OUTPUTS=probabilities", f"OUTPUT={out / 'map.tif'}"]
    process = subprocess.Popen(
        ["bash", str(QGIS_PROCESS), "run", *arguments],
        env=qgis_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not any(out.iterdir()) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert any(out.iterdir()), f"the {job} never started writing: " + (process.stdout.read() or "")[-2000:]
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    interrupted = time.monotonic()
    process.wait(timeout=30)
    print(f"cancel time, Ctrl-C in qgis_process ({job}): {time.monotonic() - interrupted:.2f} s")
    assert time.monotonic() - interrupted < 2.0
    deadline = time.monotonic() + 2
    while any(out.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(out.iterdir()) == []
