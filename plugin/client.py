"""Runs a job in the worker process and turns its protocol lines into Processing feedback.

Cancel (the dialog's button, or Ctrl-C under qgis_process) terminates the worker; one that does
not stop within the grace period is killed, and its staged outputs are deleted here.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import protocol
from .settings import PLUGIN_ROOT, worker_python
from .workerlog import WorkerLog

GRACE_SECONDS = 1.5
POLL_SECONDS = 0.05
FIX_HINT = (
    "Fix: run 'make setup' in the plugin folder (it makes .venv with GDAL, numpy and TensorFlow), or "
    "point Settings > Options > Processing > Providers > PatchFlow > 'Python interpreter for the worker' "
    "(or the PATCHFLOW_PYTHON environment variable) at a Python that has them."
)


class WorkerError(Exception):
    """The job failed; ``parameter`` names the parameter at fault when the worker knows it."""

    def __init__(self, message: str, parameter: str | None = None, details: str = "") -> None:
        super().__init__(message)
        self.parameter = parameter
        self.details = details


class WorkerCancelled(Exception):
    pass


def worker_command(python: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that start the engine's worker."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGIN_ROOT.parent), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    if env.pop("PATCHFLOW_QGIS_PAM_OFF", None):  # PAM was turned off for QGIS alone (scripts/qgis_process.sh)
        env.pop("GDAL_PAM_ENABLED", None)
    return [python, "-m", f"{PLUGIN_ROOT.name}.plugin.engine", "worker"], env


def remove_staging(job_id: str, output_paths: Iterable[str]) -> None:
    for path in output_paths:
        if path:
            shutil.rmtree(Path(path).absolute().parent / f"{protocol.STAGING_PREFIX}{job_id}", ignore_errors=True)


def _pump(stream, sink: queue.Queue, tag: str) -> None:
    for line in iter(stream.readline, ""):
        sink.put((tag, line.rstrip("\n")))
    sink.put((tag, None))


class WorkerClient:
    """One job, one worker process. ``feedback`` is a QgsProcessingFeedback (or anything with
    setProgress, pushInfo, pushWarning, pushDebugInfo, isCanceled)."""

    def __init__(self, python: str | None = None) -> None:
        if python:
            self.python, self.python_source = python, "the caller"
        else:
            self.python, self.python_source = worker_python()

    def run(self, operation: str, parameters: dict[str, Any], feedback, output_paths: Iterable[str] = (),
            labels: dict[str, str] | None = None) -> dict:
        job = protocol.Job(operation, parameters, uuid.uuid4().hex[:12], labels=dict(labels or {}))
        outputs = list(output_paths)
        command, env = worker_command(self.python)
        feedback.pushDebugInfo(f"PatchFlow worker: {' '.join(command)} ({self.python_source})")
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, encoding="utf-8", errors="replace", env=env, bufsize=1,
            )
        except OSError as exc:
            raise WorkerError(
                f"cannot start the PatchFlow worker with {self.python} (from {self.python_source}): "
                f"{exc.strerror or exc}. {FIX_HINT}"
            ) from None
        try:
            return self._converse(process, job, feedback)
        except BaseException:
            self._stop(process)
            remove_staging(job.job_id, outputs)
            raise
        finally:
            for stream in (process.stdin, process.stdout, process.stderr):
                try:
                    stream.close()
                except OSError:
                    pass

    def _converse(self, process: subprocess.Popen, job: protocol.Job, feedback) -> dict:
        lines: queue.Queue = queue.Queue()
        for stream, tag in ((process.stdout, "out"), (process.stderr, "err")):
            threading.Thread(target=_pump, args=(stream, lines, tag), daemon=True).start()
        try:
            process.stdin.write(job.to_line() + "\n")
            process.stdin.flush()
        except OSError:
            pass  # the worker died at start; its exit status and stderr tell why
        stderr_tail: deque[str] = deque(maxlen=30)
        stderr_log = WorkerLog(feedback, job.job_id)  # TensorFlow's chatter to a debug file, each line once
        result: dict | None = None
        failure: protocol.Message | None = None
        open_streams = 2
        while open_streams:
            if feedback.isCanceled():
                raise WorkerCancelled()
            try:
                tag, line = lines.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if line is None:
                open_streams -= 1
            elif tag == "err":
                stderr_tail.append(line)
                stderr_log.line(line)
            else:
                message = protocol.Message.from_line(line)
                if message is None:
                    feedback.pushDebugInfo(line)
                elif message.kind == protocol.RESULT:
                    result = message.payload["outputs"]
                elif message.kind == protocol.ERROR:
                    failure = message
                else:
                    _forward(message, feedback)
        code = process.wait()
        if result is not None and code == 0:
            feedback.setProgress(100)
            return result
        if failure is not None:
            if failure.payload.get("traceback"):
                feedback.pushDebugInfo(failure.payload["traceback"])
            message = failure.payload["message"]
            if "No module named" in message or message.startswith("ImportError"):
                message = (f"the Python interpreter {self.python} (chosen from {self.python_source}) cannot run "
                           f"the PatchFlow engine: {message}. {FIX_HINT}")
            raise WorkerError(message, failure.payload.get("parameter"))
        raise WorkerError(self._death_message(code, stderr_tail), details="\n".join(stderr_tail))

    def _death_message(self, code: int, tail: deque[str]) -> str:
        last = "\n".join(list(tail)[-12:]) or "(nothing)"
        if any("ModuleNotFoundError" in line or "ImportError" in line for line in tail):
            return (f"the Python interpreter {self.python} (chosen from {self.python_source}) cannot run the "
                    f"PatchFlow engine: {tail[-1]}. {FIX_HINT}")
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        hint = " It may have run out of memory: try fewer samples or smaller patches." if code in (-9, 137) else ""
        return f"the PatchFlow worker stopped unexpectedly ({how}).{hint} Its last lines:\n{last}"

    @staticmethod
    def _stop(process: subprocess.Popen) -> None:
        if process.poll() is not None:
            return
        process.terminate()
        deadline = time.monotonic() + GRACE_SECONDS
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        if process.poll() is None:
            process.kill()
            process.wait()


def _forward(message: protocol.Message, feedback) -> None:
    if message.kind == protocol.PROGRESS:
        feedback.setProgress(float(message.payload.get("value", 0)))
    elif message.kind == protocol.LOG:
        feedback.pushInfo(message.payload.get("text", ""))
    elif message.kind == protocol.WARNING:
        feedback.pushWarning(message.payload.get("text", ""))
