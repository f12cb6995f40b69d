"""How engine operations report progress, logs and warnings, whoever listens."""

from __future__ import annotations

import sys
from typing import TextIO

from .. import protocol


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


class JsonLinesReporter(Reporter):
    """Writes protocol messages (the worker's stdout); progress only when it moved."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.last_sent = 0.0

    def progress(self, percent: float) -> None:
        # measured from the last value sent, so that many small steps still report
        if abs(percent - self.last_sent) >= 0.5 or percent >= 100:
            protocol.send(self.stream, protocol.progress(percent))
            self.last_sent = percent
        super().progress(percent)

    def log(self, text: str) -> None:
        super().log(text)
        protocol.send(self.stream, protocol.log(text))

    def warning(self, text: str) -> None:
        super().warning(text)
        protocol.send(self.stream, protocol.warning(text))


class ConsoleReporter(Reporter):
    """For the CLI: logs and warnings on stderr."""

    def log(self, text: str) -> None:
        super().log(text)
        print(text, file=sys.stderr)

    def warning(self, text: str) -> None:
        super().warning(text)
        print(f"WARNING: {text}", file=sys.stderr)
