"""A Processing feedback that keeps every line a run reports, with its kind (info, debug, warning, command,
error): what the bad-input battery and the quiet-log tests read."""

from __future__ import annotations

from qgis.core import QgsProcessingFeedback


class LineRecorder(QgsProcessingFeedback):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, str]] = []

    def pushInfo(self, info: str) -> None:  # noqa: N802
        self.lines.append(("info", info))

    def pushDebugInfo(self, info: str) -> None:  # noqa: N802
        self.lines.append(("debug", info))

    def pushWarning(self, warning: str) -> None:  # noqa: N802
        self.lines.append(("warning", warning))

    def pushCommandInfo(self, info: str) -> None:  # noqa: N802
        self.lines.append(("command", info))

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802,N803
        self.lines.append(("error", error))

    def texts(self) -> list[str]:
        return [text for _, text in self.lines]
