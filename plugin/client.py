"""Runs a job in a worker process and turns its protocol lines into Processing feedback.

The worker stays warm: after a job it waits for the next one (``worker --serve``), its TensorFlow
and loaded models ready, and is reused by the next job of this QGIS session (a model run, a
batch, a script) while it has the same interpreter and environment. It ends after an idle time
(Processing setting PATCHFLOW_WORKER_IDLE, 0: a new worker for every job), is not reused when
its resident memory passed PATCHFLOW_WORKER_MAX_MIB or after a job that failed on a bug, and
is replaced when it died. Jobs running at once (algorithms in background threads) get a worker
each. Training (protocol.ONE_SHOT_OPERATIONS) runs in a worker of its own.

Cancel (the dialog's button, or Ctrl-C under qgis_process) terminates the worker; one that does
not stop within the grace period is killed, and its staged outputs are deleted here. The next
job starts a new worker.
"""

from __future__ import annotations

import atexit
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
from .settings import PLUGIN_ROOT, worker_idle_seconds, worker_max_mib, worker_python
from .workerlog import WorkerLog

GRACE_SECONDS = 1.5
POLL_SECONDS = 0.05
STOP_SECONDS = 3.0  # a worker asked to end (stdin closed) that is still there after this is killed
IDLE_SLACK_SECONDS = 60.0  # a warm worker ends by itself this long after the client should have ended it
MAX_IDLE_WORKERS = 2  # warm workers kept per session (more ran at once: the extra ones end)
VOLATILE_ENV = frozenset({"PYTEST_CURRENT_TEST"})  # changes that do not call for another worker
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


def worker_command(python: str, idle_seconds: float = 0.0) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that start the engine's worker: a warm one (``--serve``)
    when ``idle_seconds`` > 0, ending by itself IDLE_SLACK_SECONDS after that without a job."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGIN_ROOT.parent), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    if env.pop("PATCHFLOW_QGIS_PAM_OFF", None):  # PAM was turned off for QGIS alone (scripts/qgis_process.sh)
        env.pop("GDAL_PAM_ENABLED", None)
    command = [python, "-m", f"{PLUGIN_ROOT.name}.plugin.engine", "worker"]
    if idle_seconds > 0:
        command += ["--serve", "--idle", f"{idle_seconds + IDLE_SLACK_SECONDS:g}"]
    return command, env


def remove_staging(job_id: str, output_paths: Iterable[str]) -> None:
    for path in output_paths:
        if path:
            shutil.rmtree(Path(path).absolute().parent / f"{protocol.STAGING_PREFIX}{job_id}", ignore_errors=True)


def _pump(stream, sink: queue.Queue, tag: str) -> None:
    for line in iter(stream.readline, ""):
        sink.put((tag, line.rstrip("\n")))
    sink.put((tag, None))


class Worker:
    """One worker process and the lines it writes (stdout and stderr, tagged "out" and "err")."""

    def __init__(self, command: list[str], env: dict[str, str], key: tuple) -> None:
        self.key = key
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", errors="replace", env=env, bufsize=1,
        )
        self.pid = self.process.pid
        assert self.process.stdin is not None and self.process.stdout is not None  # PIPE
        self.stdin = self.process.stdin
        self.lines: queue.Queue = queue.Queue()
        self.stderr_tail: deque[str] = deque(maxlen=30)
        self.open_streams = 2
        self.jobs = 0
        self.idle_since = 0.0
        self.heard = False  # whether it sent a protocol line for the job it runs
        for stream, tag in ((self.process.stdout, "out"), (self.process.stderr, "err")):
            threading.Thread(target=_pump, args=(stream, self.lines, tag), daemon=True).start()

    def alive(self) -> bool:
        return self.process.poll() is None and self.open_streams == 2

    def send(self, line: str) -> None:
        try:
            self.stdin.write(line + "\n")
            self.stdin.flush()
        except (OSError, ValueError):
            pass  # the worker died; its exit status and stderr tell why

    def close(self, wait: bool = False) -> None:
        """Ask the worker to end (stdin closed); killed if still there after STOP_SECONDS. ``wait``:
        return once it has ended, else it is reaped in the background."""
        try:
            self.stdin.close()
        except OSError:
            pass
        if wait:
            self._reap()
        else:
            threading.Thread(target=self._reap, daemon=True).start()

    def _reap(self) -> None:
        try:
            self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._close_streams()

    def kill(self) -> None:
        """Terminate now (the worker cancels its job and deletes its staged outputs), kill after GRACE_SECONDS."""
        if self.process.poll() is None:
            self.process.terminate()
            deadline = time.monotonic() + GRACE_SECONDS
            while self.process.poll() is None and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self._close_streams()

    def _close_streams(self) -> None:
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                if stream is not None:
                    stream.close()
            except (OSError, ValueError):
                pass


class WorkerPool:
    """The warm workers waiting for a job in this session; a reaper thread ends those idle too long."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._idle: list[tuple[Worker, float]] = []  # (worker, idle limit in seconds)
        self._reaper: threading.Thread | None = None

    def take(self, key: tuple) -> Worker | None:
        """An idle live worker started with ``key``; idle ones of another key (interpreter, settings or
        environment changed) or dead are ended."""
        with self._lock:
            now = time.monotonic()
            for entry in list(self._idle):
                worker, limit = entry
                if worker.key != key or now - worker.idle_since >= limit or not worker.alive():
                    self._idle.remove(entry)
                    worker.close()
            mine = [entry for entry in self._idle if entry[0].key == key]
            if not mine:
                return None
            self._idle.remove(mine[-1])  # the most recently used
            return mine[-1][0]

    def give_back(self, worker: Worker, idle_seconds: float) -> None:
        with self._lock:
            worker.idle_since = time.monotonic()
            self._idle.append((worker, idle_seconds))
            while len(self._idle) > MAX_IDLE_WORKERS:
                self._idle.pop(0)[0].close()
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, daemon=True)
                self._reaper.start()
            self._lock.notify_all()

    def _reap(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                for worker, limit in list(self._idle):
                    if now - worker.idle_since >= limit or not worker.alive():
                        self._idle.remove((worker, limit))
                        worker.close()
                ends = [worker.idle_since + limit - now for worker, limit in self._idle]
                self._lock.wait(min(ends) if ends else None)

    def pids(self) -> list[int]:
        """The idle warm workers' process ids."""
        with self._lock:
            return [worker.pid for worker, _ in self._idle]

    def shutdown(self) -> None:
        """End every idle worker and wait for them (QGIS unloading the plugin, the interpreter exiting)."""
        with self._lock:
            workers = [worker for worker, _ in self._idle]
            self._idle.clear()
            self._lock.notify_all()
        for worker in workers:
            worker.close()  # all asked at once, then waited for
        for worker in workers:
            worker.close(wait=True)


POOL = WorkerPool()
atexit.register(POOL.shutdown)


def _pool_key(command: list[str], env: dict[str, str]) -> tuple:
    return tuple(command), tuple(sorted((k, v) for k, v in env.items() if k not in VOLATILE_ENV))


class WorkerClient:
    """Runs jobs in worker processes (a warm one when there is). ``feedback`` is a
    QgsProcessingFeedback (or anything with setProgress, pushInfo, pushWarning, pushDebugInfo,
    isCanceled; setProgressText when it has it). ``idle_seconds`` and ``max_mib``: the settings'
    (settings.worker_idle_seconds, worker_max_mib) unless given."""

    def __init__(self, python: str | None = None, idle_seconds: float | None = None,
                 max_mib: float | None = None) -> None:
        if python:
            self.python, self.python_source = python, "the caller"
        else:
            self.python, self.python_source = worker_python()
        self.idle_seconds = worker_idle_seconds() if idle_seconds is None else max(0.0, idle_seconds)
        self.max_mib = worker_max_mib() if max_mib is None else max_mib
        self.pid: int | None = None  # the worker that ran the last job
        self.reused = False  # whether that worker was already running

    def run(self, operation: str, parameters: dict[str, Any], feedback, output_paths: Iterable[str] = (),
            labels: dict[str, str] | None = None) -> dict:
        job = protocol.Job(operation, parameters, uuid.uuid4().hex[:12], labels=dict(labels or {}))
        outputs = list(output_paths)
        warm = self.idle_seconds > 0 and operation not in protocol.ONE_SHOT_OPERATIONS
        command, env = worker_command(self.python, self.idle_seconds if warm else 0.0)
        key = _pool_key(command, env)
        worker = POOL.take(key) if warm else None
        while True:
            self.reused = worker is not None
            if worker is None:
                worker = self._start(command, env, key, feedback)
            else:
                _stage(feedback, f"PatchFlow worker ready (pid {worker.pid}, job {worker.jobs + 1})", log=False)
            self.pid = worker.pid
            try:
                final = self._converse(worker, job, feedback)
                break
            except WorkerError:
                worker.kill()
                if not (self.reused and not worker.heard):
                    remove_staging(job.job_id, outputs)
                    raise
                # a warm worker that had died while waiting (it said nothing of this job): a new one runs it
                feedback.pushDebugInfo(f"PatchFlow worker {worker.pid} had ended; starting a new one")
                worker = None
            except BaseException:
                worker.kill()
                remove_staging(job.job_id, outputs)
                raise
        worker.jobs += 1
        info = final.payload.get("worker") or {}
        rss = info.get("rss_mib")
        if warm and info.get("continues") and worker.alive() and not (self.max_mib and rss and rss > self.max_mib):
            POOL.give_back(worker, self.idle_seconds)
        else:
            if warm and rss and self.max_mib and rss > self.max_mib:
                feedback.pushDebugInfo(f"PatchFlow worker {worker.pid} uses {rss:.0f} MiB (over {self.max_mib:g} "
                                       "MiB): the next job starts a new one")
            worker.close()
        if final.kind == protocol.RESULT:
            feedback.setProgress(100)
            return final.payload["outputs"]
        remove_staging(job.job_id, outputs)
        if final.payload.get("traceback"):
            feedback.pushDebugInfo(final.payload["traceback"])
        message = final.payload["message"]
        if "No module named" in message or message.startswith("ImportError"):
            message = (f"the Python interpreter {self.python} (chosen from {self.python_source}) cannot run "
                       f"the PatchFlow engine: {message}. {FIX_HINT}")
        raise WorkerError(message, final.payload.get("parameter"))

    def _start(self, command: list[str], env: dict[str, str], key: tuple, feedback) -> Worker:
        _stage(feedback, "starting the PatchFlow worker", log=True)
        feedback.pushDebugInfo(f"PatchFlow worker: {' '.join(command)} ({self.python_source})")
        try:
            return Worker(command, env, key)
        except OSError as exc:
            raise WorkerError(
                f"cannot start the PatchFlow worker with {self.python} (from {self.python_source}): "
                f"{exc.strerror or exc}. {FIX_HINT}"
            ) from None

    def _converse(self, worker: Worker, job: protocol.Job, feedback) -> protocol.Message:
        """Send the job; forward its messages until its result or error (returned). Raises
        WorkerCancelled, or WorkerError when the worker dies first."""
        while True:  # lines written since the last job (a library's late stderr): debug output
            try:
                tag, line = worker.lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                worker.open_streams -= 1
            else:
                if tag == "err":
                    worker.stderr_tail.append(line)
                feedback.pushDebugInfo(line)
        worker.heard = False
        stderr_log = WorkerLog(feedback, job.job_id)  # TensorFlow's chatter to a debug file, each line once
        worker.send(job.to_line())
        while worker.open_streams == 2:  # until stdout or stderr closes: the worker is ending
            final = self._next_final(worker, feedback, stderr_log)
            if final is not None:
                return final
        return self._last_words(worker, feedback, stderr_log)

    @staticmethod
    def _next_final(worker: Worker, feedback, stderr_log: WorkerLog) -> protocol.Message | None:
        """One line of the worker handled (progress and logs forwarded, stderr to ``stderr_log``): the job's
        result or error when it is that, else None. Raises WorkerCancelled when the user cancelled."""
        if feedback.isCanceled():
            raise WorkerCancelled()
        try:
            tag, line = worker.lines.get(timeout=POLL_SECONDS)
        except queue.Empty:
            return None
        if line is None:
            worker.open_streams -= 1
        elif tag == "err":
            worker.stderr_tail.append(line)
            stderr_log.line(line)
        else:
            message = protocol.Message.from_line(line)
            worker.heard = worker.heard or message is not None
            if message is None:
                feedback.pushDebugInfo(line)
            elif message.kind in (protocol.RESULT, protocol.ERROR):
                return message
            else:
                _forward(message, feedback)
        return None

    def _last_words(self, worker: Worker, feedback, stderr_log: WorkerLog) -> protocol.Message:
        """The worker is ending: its last lines (a result or error it still sent), else why it died."""
        deadline = time.monotonic() + STOP_SECONDS
        final = None
        while worker.open_streams and time.monotonic() < deadline:
            final = final or self._next_final(worker, feedback, stderr_log)
        try:
            code = worker.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            worker.kill()
            code = worker.process.returncode
        if final is not None and (final.kind == protocol.ERROR or code == 0):
            return final
        tail = worker.stderr_tail
        raise WorkerError(self._death_message(code, tail), details="\n".join(tail))

    def _death_message(self, code: int, tail: deque[str]) -> str:
        last = "\n".join(list(tail)[-12:]) or "(nothing)"
        if any("ModuleNotFoundError" in line or "ImportError" in line for line in tail):
            return (f"the Python interpreter {self.python} (chosen from {self.python_source}) cannot run the "
                    f"PatchFlow engine: {tail[-1]}. {FIX_HINT}")
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        hint = " It may have run out of memory: try fewer samples or smaller patches." if code in (-9, 137) else ""
        return f"the PatchFlow worker stopped unexpectedly ({how}).{hint} Its last lines:\n{last}"


def _stage(feedback, text: str, log: bool) -> None:
    if hasattr(feedback, "setProgressText"):
        feedback.setProgressText(text)
    if log:
        feedback.pushInfo(text)


def _forward(message: protocol.Message, feedback) -> None:
    if message.kind == protocol.PROGRESS:
        feedback.setProgress(float(message.payload.get("value", 0)))
    elif message.kind == protocol.LOG:
        feedback.pushInfo(message.payload.get("text", ""))
    elif message.kind == protocol.WARNING:
        feedback.pushWarning(message.payload.get("text", ""))
    elif message.kind == protocol.STAGE:
        _stage(feedback, message.payload.get("text", ""), bool(message.payload.get("log", True)))
