"""The worker process as QGIS starts it: one JSON job line on stdin, JSON lines on stdout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from patchflow.plugin import protocol

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / ".cache" / "plugins"


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PLUGINS)
    env.pop("PYTHONSTARTUP", None)
    return env


class Worker:
    """A running worker: send the job, read protocol messages, end it."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "patchflow.plugin.engine", "worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=worker_env(), cwd=str(ROOT.parent))
        self.messages: list[protocol.Message] = []
        self.other_lines: list[str] = []

    def send(self, text: str) -> None:
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def next_message(self) -> protocol.Message | None:
        """The next protocol message (None at end of output); non-protocol lines are recorded."""
        while True:
            line = self.process.stdout.readline()
            if not line:
                return None
            message = protocol.Message.from_line(line)
            if message is None:
                self.other_lines.append(line)
                continue
            self.messages.append(message)
            return message

    def until_done(self) -> list[protocol.Message]:
        """Messages until the result or error (stdin stays open meanwhile), then the exit."""
        while True:
            message = self.next_message()
            if message is None or message.kind in (protocol.RESULT, protocol.ERROR):
                break
        self.finish()
        return self.messages

    def finish(self, timeout: float = 30) -> int:
        if not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        rest = self.process.stdout.read()
        for line in rest.splitlines():
            message = protocol.Message.from_line(line)
            (self.messages.append(message) if message else self.other_lines.append(line))
        self.stderr = self.process.stderr.read()
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def worker():
    started: list[Worker] = []

    def start() -> Worker:
        started.append(Worker())
        return started[-1]

    yield start
    for running in started:
        running.kill()
        for stream in (running.process.stdin, running.process.stdout, running.process.stderr):
            if not stream.closed:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass


def test_job_reports_progress_then_one_result(worker, nc, tmp_path):
    run = worker()
    output = tmp_path / "samples.gpkg"
    run.send(protocol.Job("sample_label_raster", {"INPUT": str(nc / "landsat96_labelled_pixels.tif"), "NUMBER": 20,
                                                  "OUTPUT": str(output)}, "w1").to_line() + "\n")
    messages = run.until_done()
    assert run.process.returncode == 0, run.stderr
    assert run.other_lines == [], "stdout must hold protocol lines only"
    kinds = [m.kind for m in messages]
    assert kinds[-1] == protocol.RESULT and kinds.count(protocol.RESULT) == 1
    assert protocol.ERROR not in kinds
    progress = [m.payload["value"] for m in messages if m.kind == protocol.PROGRESS]
    assert len(progress) >= 2
    assert progress == sorted(progress) and progress[-1] == 100
    assert all(0 <= value <= 100 for value in progress)
    outputs = messages[-1].payload["outputs"]
    assert outputs["COUNT"] == 140 and outputs["OUTPUT"] == str(output)
    assert any(m.kind == protocol.LOG for m in messages)
    assert any(m.kind == protocol.WARNING and "floating point" in m.payload["text"] for m in messages)
    assert output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.gpkg", "samples.qml"]  # samples, style


def test_bad_input_gives_an_error_line_naming_the_parameter(worker, tmp_path):
    run = worker()
    run.send(protocol.Job("sample_label_raster", {"INPUT": str(tmp_path / "missing.tif"),
                                                  "OUTPUT": str(tmp_path / "s.gpkg")}, "w2").to_line() + "\n")
    messages = run.until_done()
    assert run.process.returncode == 1
    assert run.other_lines == []
    error = messages[-1]
    assert error.kind == protocol.ERROR
    assert error.payload["parameter"] == "INPUT"
    assert "missing.tif" in error.payload["message"]
    assert not any(m.kind == protocol.RESULT for m in messages)
    assert list(tmp_path.iterdir()) == []


def test_unknown_operation_and_broken_job_lines(worker):
    run = worker()
    run.send(protocol.Job("train_everything", {}, "w3").to_line() + "\n")
    messages = run.until_done()
    assert run.process.returncode == 1
    assert messages[-1].kind == protocol.ERROR and "train_everything" in messages[-1].payload["message"]
    assert "extract_patches" in messages[-1].payload["message"]

    run = worker()
    run.send("this is not json\n")
    messages = run.until_done()
    assert run.process.returncode == 1
    assert [m.kind for m in messages] == [protocol.ERROR]
    assert messages[0].payload["traceback"]


def test_no_job_on_stdin(worker):
    run = worker()
    assert run.finish() == 2
    assert [m.kind for m in run.messages] == [protocol.ERROR]
    assert "no job" in run.messages[0].payload["message"]


@pytest.fixture
def long_job(tmp_path):
    """A label raster big enough that sampling it takes seconds (400 windows of 1 Mpx), tiny on disk."""
    from osgeo import gdal

    path = tmp_path / "sparse.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 20000, 20000, 1, gdal.GDT_Byte,
                                              ["TILED=YES", "BLOCKXSIZE=512", "BLOCKYSIZE=512", "SPARSE_OK=TRUE"])
    ds.SetGeoTransform((0.0, 1.0, 0.0, 20000.0, 0.0, -1.0))
    ds = None
    out = tmp_path / "out"
    out.mkdir()
    return protocol.Job("sample_label_raster", {"INPUT": str(path), "NUMBER": 10, "OUTPUT": str(out / "s.gpkg")},
                        "longjob1"), out


def cancel_midway(run: Worker, job: protocol.Job, out: Path, stop) -> list[protocol.Message]:
    """Start ``job``; at its first progress line check it is staging, then call ``stop``."""
    run.send(job.to_line() + "\n")
    staging = out / f"{protocol.STAGING_PREFIX}{job.job_id}"
    started = time.monotonic()
    while True:
        message = run.next_message()
        assert message is not None, run.finish() and run.stderr
        assert message.kind not in (protocol.RESULT, protocol.ERROR), message
        if message.kind == protocol.PROGRESS:
            break
    assert staging.is_dir(), "the job should be running with its outputs staged"
    stop()
    messages = run.until_done()
    assert time.monotonic() - started < 30
    return messages


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_midway_cancels_and_leaves_no_staging_folder(worker, long_job, sig):
    job, out = long_job
    run = worker()
    messages = cancel_midway(run, job, out, lambda: run.process.send_signal(sig))
    assert run.process.returncode == 3
    assert messages[-1].kind == protocol.ERROR and messages[-1].payload["message"] == "cancelled"
    assert not any(m.kind == protocol.RESULT for m in messages)
    progress = [m.payload["value"] for m in messages if m.kind == protocol.PROGRESS]
    assert progress[-1] < 50, "cancelled late: the job nearly finished"
    assert list(out.iterdir()) == []


def test_closing_stdin_or_a_cancel_line_cancels(worker, long_job):
    job, out = long_job
    run = worker()
    messages = cancel_midway(run, job, out, run.process.stdin.close)
    assert run.process.returncode == 3
    assert messages[-1].payload["message"] == "cancelled"
    assert list(out.iterdir()) == []

    run = worker()
    messages = cancel_midway(run, job, out, lambda: run.send("cancel\n"))
    assert run.process.returncode == 3
    assert messages[-1].payload["message"] == "cancelled"
    assert list(out.iterdir()) == []


def test_protocol_lines_are_valid_json_objects(worker, nc, tmp_path):
    run = worker()
    run.send(protocol.Job("grid_split", {"INPUT": str(nc / "landsat_multiband.tif"), "PATCH_SIZE": 32,
                                         "OUTPUT_TRAIN": str(tmp_path / "t.gpkg"),
                                         "OUTPUT_VALID": str(tmp_path / "v.gpkg")}, "w6").to_line() + "\n")
    messages = run.until_done()
    assert run.process.returncode == 0, run.stderr
    for message in messages:
        json.loads(message.to_line())
    result = messages[-1].payload["outputs"]
    assert result["OUTPUT_TRAIN"] == str(tmp_path / "t.gpkg") and result["COUNT_TRAIN"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.gpkg", "v.gpkg"]
