"""Quiet logs: TensorFlow's start-up chatter kept out of the Processing log (in a debug file whose path
the log gives once), no line said twice, real errors still said; no setapi() warning from qgis_process."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from qgis.core import QgsProcessingContext

from patchflow.plugin import workerlog
from patchflow.plugin.workerlog import WorkerLog, is_chatter
from patchflow.tests.qgis.feedback import LineRecorder

ROOT = Path(__file__).resolve().parents[2]
QGIS_PROCESS = ROOT / "scripts" / "qgis_process.sh"
# what TensorFlow 2.21 wrote on this project's CPU machine, as it wrote it (the worker's stderr)
TF_START = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796144676.317651   21556 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders. To turn "
    "them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.",
    "I0000 00:00:1796144676.416332   21556 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other operations, rebuild "
    "TensorFlow with the appropriate compiler flags.",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796144678.425750   21556 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders. To turn "
    "them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.",
    "E0000 00:00:1796144678.5   21556 cuda_dnn.cc:8310] Unable to register cuDNN factory: Attempting to register "
    "factory for plugin cuDNN when one has already been registered",
    "W1201 17:04:36.416332   21556 op_level_cost_estimator.cc:699] Error in PredictCost() for the op: op: \"Softmax\"",
    "WARNING:tensorflow:5 out of the last 5 calls to <function f at 0x7f> triggered tf.function retracing.",
    "/venv/lib/python3.11/site-packages/keras/src/layers/core/input_layer.py:27: UserWarning: Argument `input_shape` "
    "is deprecated. Use `shape` instead.",
    "  warnings.warn(",
]
TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "/x/worker.py", line 3, in f',
    "    f()",
    '  File "/x/worker.py", line 3, in f',
    "    f()",
    "RecursionError: maximum recursion depth exceeded",
]
REAL_ERRORS = [
    "E0000 00:00:1796144678.6   21556 process_state.cc:123] Out of memory while trying to allocate 8589934592 bytes.",
    "F0000 00:00:1796144678.7   21556 tensor_shape.cc:44] Check failed: d >= 0 (-1 vs. 0)",
]
# lines of the log that are TensorFlow's chatter, however a future TensorFlow words them
CHATTER_IN_LOG = re.compile(r"^[IW]\d{4} \d\d:\d\d|oneDNN custom operations|cpu_feature_guard|absl::InitializeLog|"
                            r"To enable the following instructions")


def debug_file(lines: list[str]) -> Path:
    told = [line for line in lines if str(workerlog.log_folder()) in line]
    assert len(told) == 1, f"the debug file's path is said {len(told)} times: {told}"
    return Path(told[0].rsplit(": ", 1)[1])


def test_tensorflow_chatter_goes_to_the_debug_file_and_errors_to_the_log(tmp_path, monkeypatch):
    monkeypatch.setattr(workerlog, "log_folder", lambda: tmp_path / "logs")
    feedback = LineRecorder()
    log = WorkerLog(feedback, "job1")
    stderr = [*TF_START, "a line of the worker", *TRACEBACK, "a line of the worker", *REAL_ERRORS]
    for line in stderr:
        log.line(line)
    said = feedback.texts()
    assert not [line for line in said if line in TF_START], "TensorFlow's chatter reached the log"
    assert said.count("a line of the worker") == 1
    assert said[-len(REAL_ERRORS):] == REAL_ERRORS, "a real TensorFlow error was held back"
    start = said.index(TRACEBACK[0])
    assert said[start:start + len(TRACEBACK)] == TRACEBACK, "a traceback lost lines"
    path = debug_file(said)
    assert path.parent == tmp_path / "logs"
    assert path.read_text().splitlines() == stderr, "the debug file has every line, as written"
    assert all(is_chatter(line) for line in TF_START if not line.startswith("  "))


def test_without_a_debug_file_nothing_is_held_back(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("a file where the log folder would be")
    monkeypatch.setattr(workerlog, "log_folder", lambda: tmp_path / "file" / "logs")
    feedback = LineRecorder()
    log = WorkerLog(feedback, "job2")
    for line in TF_START[:3]:
        log.line(line)
    assert feedback.texts() == TF_START[:3]


@pytest.fixture(scope="module")
def small_scene(nc, tmp_path_factory) -> tuple[Path, Path]:
    """A 64 x 64 px crop of the NC scene and an untrained 5-band FCNN for it (made by the engine)."""
    from osgeo import gdal

    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    folder = tmp_path_factory.mktemp("quiet")
    crop = folder / "crop.tif"
    gdal.Translate(str(crop), str(nc / "landsat_multiband.tif"), srcWin=[100, 100, 64, 64])
    run_job(protocol.Job("create_model", {"ARCHITECTURE": "fcnn", "BANDS": 5, "PATCH_SIZE": 16, "N_CLASSES": 3,
                                          "WIDTH": 4, "SEED": 1, "OUTPUT": str(folder / "fcnn")}, "t"), Reporter())
    return crop, folder / "fcnn"


def test_apply_model_log_has_no_tensorflow_chatter_and_no_repeated_line(small_scene, provider, tmp_path):
    import processing

    crop, model = small_scene
    feedback = LineRecorder()
    processing.run("patchflow:applymodel", {"MODEL": str(model), "SOURCE1": [str(crop)],
                                            "OUTPUT": str(tmp_path / "map.tif")},
                   context=QgsProcessingContext(), feedback=feedback)
    said = [text for kind, text in feedback.lines if kind != "command"]
    assert (tmp_path / "map.tif").exists()
    assert not [line for line in said if CHATTER_IN_LOG.search(line)], "TensorFlow's chatter reached the log"
    repeated = {line for line in said if said.count(line) > 1 and line.strip()}
    assert not repeated, f"said more than once: {repeated}"
    kept = debug_file(said).read_text()
    assert "oneDNN custom operations" in kept or re.search(r"^[IW]\d{4} ", kept, re.M), kept[:2000]


def qgis_process(*arguments: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(QGIS_PROCESS), *arguments], env=env, capture_output=True, text=True,
                          timeout=300)


def test_qgis_process_says_no_setapi_warning_nor_tensorflow_chatter(small_scene, tmp_path):
    crop, model = small_scene
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "qgis-config"), QT_QPA_PLATFORM="offscreen")
    env.pop("PYTHONWARNINGS", None)
    done = qgis_process("run", "patchflow:applymodel", "--", f"MODEL={model}", f"SOURCE1={crop}",
                        f"OUTPUT={tmp_path / 'map.tif'}", env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "setapi" not in output, output[:2000]
    assert not [line for line in output.splitlines() if CHATTER_IN_LOG.search(line)], output[-3000:]
    assert (tmp_path / "map.tif").exists()
