"""The worker process: reads one job line on stdin, runs it, answers in protocol lines on stdout; a warm
worker (``worker --serve``, what QGIS starts) then waits for the next job line, its loaded models kept
(models/modelcache.py), and ends when stdin closes, on a cancel, or after ``--idle`` seconds without a job.

Anything else that writes to stdout (a library's print, GDAL) is sent to stderr instead, so the
protocol stream stays clean. SIGTERM, SIGINT, a "cancel" line or stdin closing cancel the run;
staged outputs are then deleted. The run gets CANCEL_GRACE_SECONDS to stop by itself (at its next
check between blocks, batches or epochs); past that, while TensorFlow is still inside a long call,
a watchdog thread deletes the staged outputs and ends the process. Signals reach that thread
through a wakeup pipe, so they are seen at once even while the main thread is busy in C code.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
import traceback
from typing import Any, NoReturn, TextIO

from .. import protocol
from ..declarations import OPERATIONS as DECLARATIONS
from .errors import Cancelled, PatchFlowError
from .locks import OutputLocks
from .overlap import check_outputs_apart, check_outputs_hold_nothing_else, outputs_of
from .params import Params, RunContext
from .reporting import JsonLinesReporter, Reporter
from .staging import OutputStaging
from .train.multiworker import writes_outputs

CANCEL_GRACE_SECONDS = 1.0
CANCELLED_EXIT = 3
WARM_MODELS = 4  # models a warm worker keeps loaded between jobs (models/modelcache.py)
_ACTIVE: list[OutputStaging] = []  # the running job's staging, for the watchdog


def run_job(job: protocol.Job, reporter: Reporter, cancel_event: threading.Event | None = None) -> dict[str, Any]:
    """Run one job in this process (no protocol): the engine's entry point for scripts and tests."""
    from .operations import OPERATIONS

    operation = OPERATIONS.get(job.operation)
    if operation is None:
        raise PatchFlowError(f"unknown operation '{job.operation}'; known: {', '.join(sorted(OPERATIONS))}.")
    params = Params(job.parameters, job.labels, DECLARATIONS.get(job.operation))
    check_outputs_apart(job.parameters, params.describe)
    check_outputs_hold_nothing_else(job.parameters)
    context = RunContext(job.job_id, reporter, OutputStaging(job.job_id), cancel_event or threading.Event())
    _ACTIVE.append(context.staging)
    try:
        locked = outputs_of(job.parameters) if writes_outputs(job.operation, job.parameters) else []
        with OutputLocks(locked), context.staging:
            outputs = operation(params, context)
            if context.cancelled():
                raise Cancelled()
    finally:
        _ACTIVE.remove(context.staging)
    return outputs


def _protocol_stream() -> TextIO:
    """A private copy of stdout for protocol lines; fd 1 itself now goes to stderr."""
    sys.stdout.flush()
    stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


def _watch_cancel(cancel_event: threading.Event, out: TextIO, jobs: queue.Queue | None = None) -> None:
    """Cancel on SIGTERM/SIGINT, on a "cancel" line or when stdin closes; end the process
    CANCEL_GRACE_SECONDS later if the run has not stopped by then. With ``jobs`` (a warm worker),
    the other lines read are jobs, put there; None is put there once cancelled."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end)  # the C-level handler writes here at once, whatever the main thread does
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: cancel_event.set())

    def cancel() -> None:
        cancel_event.set()
        if jobs is not None:
            jobs.put(None)

    def watch_signals() -> None:
        os.read(read_end, 1)
        cancel()

    def watch_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == protocol.CANCEL:
                break
            if jobs is not None and line.strip():
                jobs.put(line)
        cancel()

    def watchdog() -> None:
        cancel_event.wait()
        time.sleep(CANCEL_GRACE_SECONDS)
        if not _ACTIVE:
            return  # the run stopped by itself (or had ended)
        for staging in list(_ACTIVE):  # still running: TensorFlow is inside a long call
            staging.abort()
        try:
            protocol.send(out, protocol.error("cancelled", None))
        finally:
            os._exit(CANCELLED_EXIT)

    for target in (watch_signals, watch_stdin, watchdog):
        threading.Thread(target=target, daemon=True).start()


def resident_mib() -> float | None:
    """This process's resident memory now (Linux), else its peak (other Unix), else None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
    except (ImportError, OSError):
        return None


def _run_line(line: str, out: TextIO, cancel_event: threading.Event, warm: bool) -> tuple[int, bool]:
    """Run one job line, answer its result or error; (exit status, whether this worker takes another job)."""

    def worker(continues: bool) -> dict[str, Any] | None:
        return {"pid": os.getpid(), "rss_mib": resident_mib(), "continues": continues} if warm else None

    reporter = JsonLinesReporter(out)
    try:
        job = protocol.Job.from_line(line)
        outputs = run_job(job, reporter, cancel_event)
    except Cancelled:  # staged outputs are gone; end now, not after TensorFlow's and the threads' teardown
        reporter.close()
        protocol.send(out, protocol.error("cancelled", None))
        out.flush()
        os._exit(CANCELLED_EXIT)
    except PatchFlowError as exc:  # the user's to fix: the message alone (a traceback would repeat it)
        reporter.close()
        protocol.send(out, protocol.error(str(exc), exc.parameter, worker=worker(True)))
        return 1, True
    except MemoryError:
        reporter.close()
        protocol.send(out, protocol.error("the worker ran out of memory", None, traceback.format_exc(), worker(False)))
        return 1, False
    except Exception as exc:  # a bug, not bad input: report it with its traceback; a fresh worker next time
        reporter.close()
        protocol.send(out, protocol.error(f"{type(exc).__name__}: {exc}", None, traceback.format_exc(), worker(False)))
        return 1, False
    reporter.close()
    protocol.send(out, protocol.result(outputs, worker(job.operation not in protocol.ONE_SHOT_OPERATIONS)))
    return 0, True


def _end(out: TextIO, status: int) -> NoReturn:
    """End a warm worker between jobs at once (not after TensorFlow's and the threads' teardown)."""
    for stream in (out, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def main(warm: bool = False, idle_seconds: float = 0.0) -> int:
    """One job (read from stdin), or with ``warm`` one job after another until stdin closes, a cancel,
    or ``idle_seconds`` (0: no limit) without a job; loaded models are then kept between jobs."""
    out = _protocol_stream()
    cancel_event = threading.Event()
    if not warm:
        line = sys.stdin.readline()
        if not line.strip():
            protocol.send(out, protocol.error("no job received on standard input"))
            return 2
        _watch_cancel(cancel_event, out)
        return _run_line(line, out, cancel_event, False)[0]
    from .models import modelcache

    modelcache.enable(WARM_MODELS)
    jobs: queue.Queue[str | None] = queue.Queue()
    _watch_cancel(cancel_event, out, jobs)
    while True:
        try:
            next_line = jobs.get(timeout=idle_seconds if idle_seconds > 0 else None)
        except queue.Empty:
            _end(out, 0)  # idle for too long
        if next_line is None or cancel_event.is_set():
            _end(out, 0)  # stdin closed or cancelled between jobs
        status, continues = _run_line(next_line, out, cancel_event, True)
        if not continues:
            _end(out, status)
