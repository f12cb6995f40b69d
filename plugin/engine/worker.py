"""The worker process: reads one job line on stdin, runs it, answers in protocol lines on stdout.

Anything else that writes to stdout (a library's print, GDAL) is sent to stderr instead, so the
protocol stream stays clean. SIGTERM, SIGINT or stdin closing cancel the run; staged outputs are
then deleted.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from typing import Any, TextIO

from .. import protocol
from .errors import Cancelled, PatchFlowError
from .params import Params, RunContext
from .reporting import JsonLinesReporter, Reporter
from .staging import OutputStaging


def run_job(job: protocol.Job, reporter: Reporter, cancel_event: threading.Event | None = None) -> dict[str, Any]:
    """Run one job in this process (no protocol): the engine's entry point for scripts and tests."""
    from .operations import OPERATIONS

    operation = OPERATIONS.get(job.operation)
    if operation is None:
        raise PatchFlowError(f"unknown operation '{job.operation}'; known: {', '.join(sorted(OPERATIONS))}.")
    context = RunContext(job.job_id, reporter, OutputStaging(job.job_id), cancel_event or threading.Event())
    with context.staging:
        outputs = operation(Params(job.parameters), context)
        if context.cancelled():
            raise Cancelled()
    return outputs


def _protocol_stream() -> TextIO:
    """A private copy of stdout for protocol lines; fd 1 itself now goes to stderr."""
    sys.stdout.flush()
    stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


def _watch_cancel(cancel_event: threading.Event) -> None:
    def on_signal(signum, frame):  # noqa: ARG001
        cancel_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def watch_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "cancel":
                break
        cancel_event.set()

    threading.Thread(target=watch_stdin, daemon=True).start()


def main() -> int:
    out = _protocol_stream()
    line = sys.stdin.readline()
    if not line.strip():
        protocol.send(out, protocol.error("no job received on standard input"))
        return 2
    cancel_event = threading.Event()
    _watch_cancel(cancel_event)
    try:
        job = protocol.Job.from_line(line)
        outputs = run_job(job, JsonLinesReporter(out), cancel_event)
    except Cancelled:
        protocol.send(out, protocol.error("cancelled", None))
        return 3
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
