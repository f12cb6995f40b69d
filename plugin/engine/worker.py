"""The worker process: reads one job line on stdin, runs it, answers in protocol lines on stdout.

Anything else that writes to stdout (a library's print, GDAL) is sent to stderr instead, so the
protocol stream stays clean. SIGTERM, SIGINT, a "cancel" line or stdin closing cancel the run;
staged outputs are then deleted. The run gets CANCEL_GRACE_SECONDS to stop by itself (at its next
check between blocks, batches or epochs); past that, while TensorFlow is still inside a long call,
a watchdog thread deletes the staged outputs and ends the process. Signals reach that thread
through a wakeup pipe, so they are seen at once even while the main thread is busy in C code.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, TextIO

from .. import protocol
from ..declarations import OPERATIONS as DECLARATIONS
from .errors import Cancelled, PatchFlowError
from .locks import OutputLocks
from .overlap import check_outputs_apart, check_outputs_hold_nothing_else, outputs_of
from .params import Params, RunContext
from .reporting import JsonLinesReporter, Reporter
from .staging import OutputStaging

CANCEL_GRACE_SECONDS = 1.0
CANCELLED_EXIT = 3
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
        with OutputLocks(outputs_of(job.parameters)), context.staging:
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


def _watch_cancel(cancel_event: threading.Event, out: TextIO) -> None:
    """Cancel on SIGTERM/SIGINT, on a "cancel" line or when stdin closes; end the process
    CANCEL_GRACE_SECONDS later if the run has not stopped by then."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end)  # the C-level handler writes here at once, whatever the main thread does
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: cancel_event.set())

    def watch_signals() -> None:
        os.read(read_end, 1)
        cancel_event.set()

    def watch_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "cancel":
                break
        cancel_event.set()

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


def main() -> int:
    out = _protocol_stream()
    line = sys.stdin.readline()
    if not line.strip():
        protocol.send(out, protocol.error("no job received on standard input"))
        return 2
    cancel_event = threading.Event()
    _watch_cancel(cancel_event, out)
    try:
        job = protocol.Job.from_line(line)
        outputs = run_job(job, JsonLinesReporter(out), cancel_event)
    except Cancelled:  # staged outputs are gone; end now, not after TensorFlow's and the threads' teardown
        protocol.send(out, protocol.error("cancelled", None))
        out.flush()
        os._exit(CANCELLED_EXIT)
    except PatchFlowError as exc:  # the user's to fix: the message alone (a traceback would repeat it)
        protocol.send(out, protocol.error(str(exc), exc.parameter))
        return 1
    except MemoryError:
        protocol.send(out, protocol.error("the worker ran out of memory", None, traceback.format_exc()))
        return 1
    except Exception as exc:  # a bug, not bad input: report it with its traceback
        protocol.send(out, protocol.error(f"{type(exc).__name__}: {exc}", None, traceback.format_exc()))
        return 1
    protocol.send(out, protocol.result(outputs))
    return 0
