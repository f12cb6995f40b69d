"""The worker's stderr, sorted for the Processing log: TensorFlow's and absl's start-up chatter (the
"oneDNN custom operations are on" and cpu_feature_guard lines, "I0000 ..."/"W0000 ..." lines, absl's
"All log messages before absl::InitializeLog()", TensorFlow's and Keras's Python warnings) goes to a
debug file only, whose path the log gives once (at debug level); every other line reaches the log
once (a line said again is not repeated). Every line, chatter included, is in the debug file.

Nothing that tells of a failure is held back: errors and fatal lines ("E..."/"F..." in absl's format,
except the known start-up ones), Python tracebacks and anything unknown reach the log as before; and
a failed run's own error (with its traceback) comes through the protocol, not through here.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

LOG_FOLDER_NAME = "patchflow-worker-logs"
KEPT_LOGS = 50  # the newest debug files kept; older ones are removed when a new one starts

# absl/glog's format: severity, MMDD, time, thread id, file:line]
ABSL_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+\s+\S+:\d+\]")
CHATTER = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags"),
    re.compile(r"^(WARNING|INFO):(tensorflow|absl|keras):"),  # TensorFlow's and Keras's Python loggers
    re.compile(r"[/\\](tensorflow|keras|tf_keras|absl)[/\\].*:\d+: \w*Warning: "),  # their warnings.warn lines
)
# error-level lines TensorFlow writes at every start on some machines, which tell of no failure
STARTUP_ERRORS = re.compile(r"Unable to register (cuDNN|cuFFT|cuBLAS) factory|computation placer already registered|"
                            r"failed call to cuInit")


def log_folder() -> Path:
    return Path(tempfile.gettempdir()) / LOG_FOLDER_NAME


def is_chatter(line: str) -> bool:
    """A line of TensorFlow's (or absl's) start-up and informational chatter, not of a failure."""
    match = ABSL_LINE.match(line)
    if match:
        return match.group(1) in "IW" or bool(match.group(1) == "E" and STARTUP_ERRORS.search(line))
    return any(pattern.search(line) for pattern in CHATTER)


class WorkerLog:
    """Sorts one run's worker stderr lines between ``feedback`` (pushDebugInfo) and a debug file."""

    def __init__(self, feedback, job_id: str) -> None:
        self.feedback = feedback
        self.path = log_folder() / f"worker-{time.strftime('%Y%m%d-%H%M%S')}-{job_id}.log"
        self._started = False
        self._said: set[str] = set()
        self._told_path = False
        self._after_warning = False  # the source line Python prints under a warnings.warn line

    def line(self, text: str) -> None:
        written = self._write(text)
        after_warning, self._after_warning = self._after_warning, False
        if written and is_chatter(text):  # (without a debug file, nothing is held back)
            self._after_warning = bool(CHATTER[-1].search(text))
            if not self._told_path:
                self._told_path = True
                self.feedback.pushDebugInfo(f"TensorFlow's start-up messages, and all the worker said: {self.path}")
            return
        if after_warning and written and text.startswith("  "):
            return  # the source line of a chatter warning
        if not text.strip():
            return
        if text in self._said and not text.startswith((" ", "\t", "Traceback")):
            return  # said already (tracebacks' frames are kept whole)
        self._said.add(text)
        self.feedback.pushDebugInfo(text)

    def _write(self, text: str) -> bool:
        """Append ``text`` to the debug file (opened for each line: a run writes few, and nothing is left
        open whatever way the run ends); False when it cannot be written."""
        try:
            if not self._started:
                self._started = True
                self.path.parent.mkdir(parents=True, exist_ok=True)
                _prune(self.path.parent)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(text + "\n")
            return True
        except OSError:
            return False


def _prune(folder: Path) -> None:
    try:
        logs = sorted(folder.glob("worker-*.log"), key=lambda p: p.stat().st_mtime)
        for old in logs[:max(0, len(logs) - KEPT_LOGS + 1)]:
            os.remove(old)
    except OSError:
        pass
