"""How engine operations report progress, logs and warnings, whoever listens."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from .. import protocol

HEARTBEAT_SECONDS = 1.0  # progress is sent at least this often while it moves, and while a stage lasts
HEARTBEAT_SHARE = 0.2  # of the rest of a stage's span taken each heartbeat (it nears the end, never reaches it)


class Reporter:
    """Base reporter: collects warnings, prints nothing. Subclasses send the lines somewhere."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.logs: list[str] = []
        self.last_progress = 0.0

    def progress(self, percent: float) -> None:
        self.last_progress = percent

    def log(self, text: str) -> None:
        self.logs.append(text)

    def warning(self, text: str) -> None:
        self.warnings.append(text)

    def stage(self, text: str, percent: float | None = None, until: float | None = None, log: bool = True) -> None:
        """A stage of the run begins (importing TensorFlow, loading the model, tile 3/16): ``text`` as
        the progress text (and a log line when ``log``), progress at ``percent``; a reporter that can
        moves it towards ``until`` while the stage lasts (one long call that reports nothing)."""
        if percent is not None:
            self.progress(percent)

    def close(self) -> None:
        """The run has ended: nothing more is sent."""

    def span(self, start: float, end: float) -> SubReporter:
        """A reporter whose 0-100 maps onto start-end of this one."""
        return SubReporter(self, start, end)


class SubReporter(Reporter):
    def __init__(self, parent: Reporter, start: float, end: float) -> None:
        super().__init__()
        self.parent, self.start, self.end = parent, start, end

    def progress(self, percent: float) -> None:
        self.parent.progress(self.start + (self.end - self.start) * min(max(percent, 0.0), 100.0) / 100.0)

    def log(self, text: str) -> None:
        self.parent.log(text)

    def warning(self, text: str) -> None:
        self.parent.warning(text)

    def stage(self, text: str, percent: float | None = None, until: float | None = None, log: bool = True) -> None:
        def mapped(value: float | None) -> float | None:
            return None if value is None else self.start + (self.end - self.start) * min(max(value, 0.0), 100.0) / 100
        self.parent.stage(text, mapped(percent), mapped(until), log)


class JsonLinesReporter(Reporter):
    """Writes protocol messages (the worker's stdout): progress when it moved by half a percent, or at
    all after HEARTBEAT_SECONDS; during a stage with an end (``until``) a heartbeat thread moves it
    every HEARTBEAT_SECONDS, and a later value below what the heartbeat sent is not sent."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.last_sent = 0.0
        self.last_time = time.monotonic()
        self._lock = threading.Lock()  # the heartbeat thread writes too
        self._until: float | None = None  # the running stage's end, while the heartbeat moves progress
        self._floor = 0.0  # the highest value the heartbeat sent
        self._wake = threading.Condition(self._lock)
        self._heart: threading.Thread | None = None
        self._closed = False

    def _send(self, message: protocol.Message) -> None:  # with the lock held
        if not self._closed:
            protocol.send(self.stream, message)

    def _send_progress(self, percent: float) -> None:  # with the lock held
        self._send(protocol.progress(percent))
        self.last_sent, self.last_time = percent, time.monotonic()

    def progress(self, percent: float) -> None:
        with self._lock:
            self._until = None
            # measured from the last value sent, so that many small steps still report
            moved = percent - self.last_sent
            due = abs(moved) >= 0.5 or percent >= 100 or (
                moved > 0 and time.monotonic() - self.last_time >= HEARTBEAT_SECONDS)
            if due and (percent >= self._floor or percent >= 100):
                self._send_progress(percent)
        super().progress(percent)

    def stage(self, text: str, percent: float | None = None, until: float | None = None, log: bool = True) -> None:
        with self._lock:
            self._send(protocol.stage(text, log))
        if percent is not None:
            self.progress(percent)
        if until is not None:
            with self._lock:
                self._until = until
                if self._heart is None:
                    self._heart = threading.Thread(target=self._beat, daemon=True)
                    self._heart.start()
                self._wake.notify_all()

    def _beat(self) -> None:
        """While a stage with an end lasts: progress a share nearer its end every HEARTBEAT_SECONDS."""
        with self._lock:
            while not self._closed and self._until is not None:
                self._wake.wait(HEARTBEAT_SECONDS / 4)
                if self._until is None or self._closed or time.monotonic() - self.last_time < HEARTBEAT_SECONDS:
                    continue
                value = self.last_sent + (self._until - self.last_sent) * HEARTBEAT_SHARE
                if value > self.last_sent:
                    self._floor = value
                    self._send_progress(value)
            self._heart = None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._until = None
            self._wake.notify_all()
            heart = self._heart
        if heart is not None and heart is not threading.current_thread():
            heart.join()

    def log(self, text: str) -> None:
        super().log(text)
        with self._lock:
            self._send(protocol.log(text))

    def warning(self, text: str) -> None:
        super().warning(text)
        with self._lock:
            self._send(protocol.warning(text))


class ConsoleReporter(Reporter):
    """For the CLI: logs, stages and warnings on stderr."""

    def stage(self, text: str, percent: float | None = None, until: float | None = None, log: bool = True) -> None:
        if log:
            print(text, file=sys.stderr)
        super().stage(text, percent, until, log)

    def log(self, text: str) -> None:
        super().log(text)
        print(text, file=sys.stderr)

    def warning(self, text: str) -> None:
        super().warning(text)
        print(f"WARNING: {text}", file=sys.stderr)
