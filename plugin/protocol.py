"""The one protocol between the QGIS side and the worker process.

The client writes one JSON line (the job) to the worker's stdin and keeps stdin open:
when it closes, the worker stops. The worker answers with JSON lines on stdout, one
message each: progress, log, warning, stage (what it is doing now: a progress text, and a log
line unless "log" is false), result or error. A warm worker (``worker --serve``) then waits for
the next job line, each job ending with its result or error line, whose "worker" entry says
its pid, its resident memory and whether it takes another job; it stops when stdin closes, on a
"cancel" line or SIGTERM (cancelling a running job, see the engine's worker.py), or after
``--idle`` seconds without a job. This module imports nothing beyond the standard library, so
both sides can use it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, TextIO

PROTOCOL_VERSION = 1

PROGRESS = "progress"
LOG = "log"
WARNING = "warning"
STAGE = "stage"
RESULT = "result"
ERROR = "error"
MESSAGE_TYPES = (PROGRESS, LOG, WARNING, STAGE, RESULT, ERROR)
CANCEL = "cancel"  # the line that cancels the running job (and ends the worker)
# operations that change the worker process for good (TensorFlow's devices, op determinism):
# each runs in a worker of its own, which ends with it
ONE_SHOT_OPERATIONS = frozenset({"train_model"})

# Temporary outputs live in a folder named with this prefix and the job id, next to
# the final output, so whoever outlives a dead worker can remove them.
STAGING_PREFIX = ".patchflow-staging-"


def finite(value: Any) -> Any:
    """``value`` made for strict JSON: every NaN or infinite number becomes None (null), numpy scalars
    and arrays become Python numbers and lists, tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    if not isinstance(value, (str, bytes, int)) and callable(getattr(value, "tolist", None)):  # numpy
        return finite(value.tolist())
    return value


def strict_dumps(value: Any, **options: Any) -> str:
    """JSON text without NaN/Infinity (which strict parsers reject): non-finite numbers are null."""
    return json.dumps(finite(value), allow_nan=False, **options)


def strict_dump(value: Any, handle: TextIO, **options: Any) -> None:
    json.dump(finite(value), handle, allow_nan=False, **options)


@dataclass
class Job:
    """What one algorithm run asks of the worker: an operation and JSON-able parameters."""

    operation: str
    parameters: dict[str, Any]
    job_id: str
    version: int = PROTOCOL_VERSION
    labels: dict[str, str] = field(default_factory=dict)  # parameter name -> what the dialog calls it

    def to_line(self) -> str:
        return strict_dumps(
            {
                "version": self.version,
                "operation": self.operation,
                "parameters": self.parameters,
                "job_id": self.job_id,
                "labels": self.labels,
            }
        )

    @classmethod
    def from_line(cls, line: str) -> Job:
        data = json.loads(line)
        return cls(
            operation=data["operation"],
            parameters=data.get("parameters", {}),
            job_id=data.get("job_id", "cli"),
            version=data.get("version", PROTOCOL_VERSION),
            labels=dict(data.get("labels") or {}),
        )


@dataclass
class Message:
    """One line the worker writes: ``kind`` is one of MESSAGE_TYPES."""

    kind: str
    payload: dict[str, Any] = field(default_factory=dict)

    def to_line(self) -> str:
        return strict_dumps({"type": self.kind, **self.payload}, default=str)

    @classmethod
    def from_line(cls, line: str) -> Message | None:
        """Parse a worker line; None when the line is not a protocol message."""
        try:
            data = json.loads(line)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("type") not in MESSAGE_TYPES:
            return None
        kind = data.pop("type")
        return cls(kind, data)


def progress(percent: float) -> Message:
    return Message(PROGRESS, {"value": round(float(percent), 2)})


def log(text: str) -> Message:
    return Message(LOG, {"text": text})


def warning(text: str) -> Message:
    return Message(WARNING, {"text": text})


def stage(text: str, log: bool = True) -> Message:
    return Message(STAGE, {"text": text, "log": log})


def result(outputs: dict[str, Any], worker: dict[str, Any] | None = None) -> Message:
    return Message(RESULT, {"outputs": outputs, **({"worker": worker} if worker else {})})


def error(message: str, parameter: str | None = None, traceback: str = "",
          worker: dict[str, Any] | None = None) -> Message:
    return Message(ERROR, {"message": message, "parameter": parameter, "traceback": traceback,
                           **({"worker": worker} if worker else {})})


def send(stream: TextIO, message: Message) -> None:
    stream.write(message.to_line() + "\n")
    stream.flush()
