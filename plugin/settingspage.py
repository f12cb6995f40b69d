"""PatchFlow's page in QGIS's Settings > Options: the worker's interpreter (the Processing setting),
the one actually in effect and why, and a Check button that runs it (Python, numpy, GDAL,
TensorFlow versions, GPUs)."""

from __future__ import annotations

from qgis.gui import QgsFileWidget, QgsOptionsPageWidget, QgsOptionsWidgetFactory
from qgis.PyQt.QtCore import QCoreApplication, QProcess, Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QLabel, QPlainTextEdit, QPushButton, QVBoxLayout

from .provider import ICON
from .settings import CHECK_SCRIPT, PYTHON_SETTING, _setting_value, describe_check, parse_check, worker_python


def tr(text: str) -> str:
    return QCoreApplication.translate("PatchFlow", text)


class PatchFlowOptionsPage(QgsOptionsPageWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        title = QLabel(tr("Python interpreter for the worker (empty: PATCHFLOW_PYTHON, else the plugin's .venv, "
                          "else QGIS's own Python)"))
        title.setWordWrap(True)
        layout.addWidget(title)
        self.python = QgsFileWidget()
        self.python.setStorageMode(QgsFileWidget.GetFile)
        self.python.setFilePath(_setting_value())
        self.python.fileChanged.connect(self.show_effective)
        layout.addWidget(self.python)
        self.effective = QLabel()
        self.effective.setWordWrap(True)
        self.effective.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.effective)
        self.check_button = QPushButton(tr("Check this interpreter"))
        self.check_button.clicked.connect(self.check)
        layout.addWidget(self.check_button)
        self.result = QPlainTextEdit()
        self.result.setReadOnly(True)
        layout.addWidget(self.result)
        layout.addStretch(1)
        self.process: QProcess | None = None
        self.show_effective()

    def interpreter(self) -> tuple[str, str]:
        """The interpreter the worker would use with the path in the field, and why."""
        return worker_python(self.python.filePath())

    def show_effective(self, *_) -> None:
        python, source = self.interpreter()
        self.effective.setText(tr("In effect: {python}\n(from {source})").format(python=python, source=source))

    def check(self) -> None:
        """Run the interpreter on the check script (in the background: importing TensorFlow takes seconds)."""
        if self.process is not None:
            return
        python, _ = self.interpreter()
        self.result.setPlainText(tr("Checking {python} (importing TensorFlow takes a few seconds)...").format(
            python=python))
        self.check_button.setEnabled(False)
        self.process = QProcess(self)
        self.process.finished.connect(self.checked)
        self.process.errorOccurred.connect(self.failed)
        self.process.start(python, ["-c", CHECK_SCRIPT])

    def checked(self, code: int = 0, *_) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        stdout = bytes(process.readAllStandardOutput()).decode("utf-8", "replace")
        stderr = bytes(process.readAllStandardError()).decode("utf-8", "replace")
        self.result.setPlainText(describe_check(parse_check(stdout, stderr, code)))
        self.check_button.setEnabled(True)

    def failed(self, error) -> None:
        if error == QProcess.FailedToStart and self.process is not None:
            python, _ = self.interpreter()
            self.process = None
            self.result.setPlainText(tr("Cannot run {python}: not found or not executable.").format(python=python))
            self.check_button.setEnabled(True)

    def apply(self) -> None:
        try:
            from processing.core.ProcessingConfig import ProcessingConfig
        except ImportError:
            return
        ProcessingConfig.setSettingValue(PYTHON_SETTING, self.python.filePath().strip())


class PatchFlowOptionsFactory(QgsOptionsWidgetFactory):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("PatchFlow")

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def createWidget(self, parent=None) -> PatchFlowOptionsPage:  # noqa: N802
        return PatchFlowOptionsPage(parent)
