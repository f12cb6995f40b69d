"""The warm worker (``worker --serve``): job after job in one process, ending when stdin closes or
after its idle time; its model cache (unchanged files, the same trust decision); the stages and
heartbeat of the JSON-lines reporter."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from malicious_models import malicious_saved_model

from patchflow.plugin import protocol
from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.models import modelcache
from patchflow.plugin.engine.models.modelio import InferenceModel
from patchflow.plugin.engine.reporting import HEARTBEAT_SECONDS, JsonLinesReporter, Reporter

ROOT = Path(__file__).resolve().parents[2]


def start(*arguments: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT / ".cache" / "plugins"))
    env.pop("PYTHONSTARTUP", None)
    return subprocess.Popen([sys.executable, "-m", "patchflow.plugin.engine", "worker", *arguments],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env, cwd=str(ROOT.parent))


@pytest.fixture
def warm():
    started: list[subprocess.Popen] = []

    def run(*arguments: str) -> subprocess.Popen:
        started.append(start("--serve", *arguments))
        return started[-1]

    yield run
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            stream.close()


def final_message(process: subprocess.Popen) -> protocol.Message:
    """The job's result or error line (the other lines skipped)."""
    while True:
        line = process.stdout.readline()
        assert line, "the worker ended before answering"
        message = protocol.Message.from_line(line)
        if message is not None and message.kind in (protocol.RESULT, protocol.ERROR):
            return message


def sample_job(nc, out: Path, job_id: str) -> str:
    return protocol.Job("sample_label_raster", {"INPUT": str(nc / "landsat96_labelled_pixels.tif"), "NUMBER": 5,
                                                "OUTPUT": str(out)}, job_id).to_line() + "\n"


def test_a_warm_worker_runs_job_after_job_then_ends_when_stdin_closes(warm, nc, tmp_path):
    process = warm()
    answers = []
    for index in range(2):
        process.stdin.write(sample_job(nc, tmp_path / f"s{index}.gpkg", f"j{index}"))
        process.stdin.flush()
        answers.append(final_message(process))
    assert [a.kind for a in answers] == [protocol.RESULT, protocol.RESULT]
    assert [a.payload["outputs"]["COUNT"] for a in answers] == [35, 35]
    assert {a.payload["worker"]["pid"] for a in answers} == {process.pid}
    assert all(a.payload["worker"]["continues"] and a.payload["worker"]["rss_mib"] > 10 for a in answers)
    # a bad input is an error line; the worker takes the next job
    missing = {"INPUT": str(tmp_path / "missing.tif"), "OUTPUT": str(tmp_path / "x.gpkg")}
    bad = protocol.Job("sample_label_raster", missing, "bad")
    process.stdin.write(bad.to_line() + "\n")
    process.stdin.flush()
    error = final_message(process)
    assert error.kind == protocol.ERROR and error.payload["parameter"] == "INPUT"
    assert error.payload["worker"]["continues"] is True
    process.stdin.close()
    assert process.wait(timeout=10) == 0


def test_a_warm_worker_ends_after_its_idle_time(warm, nc, tmp_path):
    process = warm("--idle", "1")
    process.stdin.write(sample_job(nc, tmp_path / "s.gpkg", "j"))
    process.stdin.flush()
    assert final_message(process).kind == protocol.RESULT
    answered = time.monotonic()
    assert process.wait(timeout=15) == 0
    assert 0.8 < time.monotonic() - answered < 10


def test_a_warm_worker_waiting_for_a_job_ends_at_once_on_sigterm(warm, nc, tmp_path):
    process = warm()
    process.stdin.write(sample_job(nc, tmp_path / "s.gpkg", "j"))
    process.stdin.flush()
    assert final_message(process).kind == protocol.RESULT
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert time.monotonic() - started < 3


# ---- the model cache ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fcnn(tmp_path_factory) -> Path:
    from patchflow.plugin.engine.worker import run_job

    model = tmp_path_factory.mktemp("cache") / "fcnn"
    run_job(protocol.Job("create_model", {"ARCHITECTURE": "fcnn", "BANDS": 3, "PATCH_SIZE": 16, "N_CLASSES": 2,
                                          "WIDTH": 2, "SEED": 1, "OUTPUT": str(model)}, "t"), Reporter())
    return model


@pytest.fixture
def cache():
    modelcache.enable(4)
    yield modelcache
    modelcache.enable(0)


def test_models_are_reused_while_their_files_are_unchanged(cache, fcnn):
    first = InferenceModel.load(str(fcnn))
    reporter = Reporter()
    assert InferenceModel.load(str(fcnn), reporter=reporter) is first
    assert any("kept loaded" in line for line in reporter.logs)
    later = time.time() + 5
    os.utime(fcnn / "saved_model.pb", (later, later))  # the model written again
    second = InferenceModel.load(str(fcnn))
    assert second is not first
    assert InferenceModel.load(str(fcnn)) is second
    os.utime(fcnn / "patchflow_card.json", (later + 5, later + 5))  # its card changed: reloaded too
    assert InferenceModel.load(str(fcnn)) is not second


def test_the_cache_is_off_unless_enabled(fcnn):
    assert InferenceModel.load(str(fcnn)) is not InferenceModel.load(str(fcnn))


def test_a_model_is_not_shared_across_trust_decisions(cache, fcnn):
    untrusted = InferenceModel.load(str(fcnn), trusted=False)
    trusted = InferenceModel.load(str(fcnn), trusted=True)
    assert trusted is not untrusted
    assert InferenceModel.load(str(fcnn), trusted=True) is trusted
    assert InferenceModel.load(str(fcnn), trusted=False) is untrusted


def test_trusting_a_model_once_does_not_let_a_later_untrusted_job_use_it(cache, tmp_path):
    model = malicious_saved_model(tmp_path / "reads", "ReadFile", tmp_path / "marker")
    assert InferenceModel.load(model, trusted=True) is not None
    with pytest.raises(PatchFlowError, match="ReadFile") as caught:
        InferenceModel.load(model, trusted=False)
    assert caught.value.parameter == "MODEL"
    assert InferenceModel.load(model, trusted=True) is not None  # still there for trusting jobs


# ---- stages and heartbeat --------------------------------------------------------------------------------


def messages(stream: io.StringIO) -> list[protocol.Message]:
    return [m for m in map(protocol.Message.from_line, stream.getvalue().splitlines()) if m is not None]


def test_a_long_stage_moves_progress_every_heartbeat_and_never_back():
    stream = io.StringIO()
    reporter = JsonLinesReporter(stream)
    reporter.stage("importing TensorFlow", 1, 4)
    time.sleep(3.6 * HEARTBEAT_SECONDS)  # one long call that reports nothing
    reporter.progress(2)  # below what the heartbeat sent: not sent
    reporter.stage("tiles 0/2", 10, log=False)
    reporter.progress(50)
    reporter.close()
    sent = messages(stream)
    assert sent[0].kind == protocol.STAGE and sent[0].payload == {"text": "importing TensorFlow", "log": True}
    values = [m.payload["value"] for m in sent if m.kind == protocol.PROGRESS]
    beats = [v for v in values if 1 < v < 4]
    assert len(beats) >= 3, values
    assert values == sorted(values) and values[0] == 1 and values[-1] == 50
    assert {"text": "tiles 0/2", "log": False} in [m.payload for m in sent if m.kind == protocol.STAGE]
    time.sleep(1.5 * HEARTBEAT_SECONDS)  # closed: nothing more
    assert len(messages(stream)) == len(sent)


def test_progress_that_creeps_is_still_sent_every_heartbeat():
    stream = io.StringIO()
    reporter = JsonLinesReporter(stream)
    reporter.progress(10)
    time.sleep(HEARTBEAT_SECONDS * 1.1)
    reporter.progress(10.1)  # less than half a percent, but a heartbeat since the last one
    reporter.progress(10.2)  # not yet
    values = [m.payload["value"] for m in messages(stream) if m.kind == protocol.PROGRESS]
    assert values == [10, 10.1]
