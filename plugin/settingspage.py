"""PatchFlow's page in QGIS's Settings > Options: the worker's interpreter (the Processing setting),
the one actually in effect and why, and a Check button that runs it (Python, numpy, GDAL,
TensorFlow versions, GPUs); where Apply model runs by default (this process, or Dask: its Processing
settings)."""

from __future__ import annotations

from qgis.gui import QgsFileWidget, QgsOptionsPageWidget, QgsOptionsWidgetFactory
from qgis.PyQt.QtCore import QCoreApplication, QProcess, Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from .declarations import EXECUTION_SETTINGS, EXECUTIONS
from .provider import ICON
from .settings import (
    CHECK_SCRIPT,
    EXECUTION_MODES,
    PYTHON_SETTING,
    _setting_value,
    describe_check,
    execution_setting,
    parse_check,
    worker_python,
)


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
        self.add_execution(layout)
        layout.addStretch(1)
        self.process: QProcess | None = None
        self.show_effective()

    def add_execution(self, layout: QVBoxLayout) -> None:
        """Where Apply model, Classify and Extract patches run when their EXECUTION is "the PatchFlow setting": this
        process, a local Dask cluster of N workers, a scheduler's address, or a SLURM/PBS cluster file."""
        current = execution_setting()
        title = QLabel(tr("Apply model, Classify and Extract patches run on (when their 'Run on' is the PatchFlow "
                          "setting; docs/scaling.md)"))
        title.setWordWrap(True)
        layout.addWidget(title)
        form = QFormLayout()
        self.execution = QComboBox()
        for value, label in EXECUTIONS:
            if value != "setting":
                self.execution.addItem(tr(label), value)
        self.execution.setCurrentIndex(max(0, self.execution.findData(current["EXECUTION"])))
        form.addRow(tr("Run on"), self.execution)
        self.workers = QSpinBox()
        self.workers.setRange(1, 256)
        self.workers.setValue(int(current["WORKERS"]))
        form.addRow(tr("Local Dask workers"), self.workers)
        self.scheduler = QLineEdit(current["SCHEDULER"])
        self.scheduler.setPlaceholderText("tcp://host:8786")
        form.addRow(tr("Dask scheduler address"), self.scheduler)
        self.cluster_config = QgsFileWidget()
        self.cluster_config.setStorageMode(QgsFileWidget.GetFile)
        self.cluster_config.setFilter("Cluster files (*.json *.yaml *.yml)")
        self.cluster_config.setFilePath(current["CLUSTER_CONFIG"])
        form.addRow(tr("SLURM/PBS cluster file"), self.cluster_config)
        layout.addLayout(form)

    def execution_values(self) -> dict:
        """The execution the page shows, as the job's EXECUTION, WORKERS, SCHEDULER and CLUSTER_CONFIG."""
        return {"EXECUTION": self.execution.currentData(), "WORKERS": self.workers.value(),
                "SCHEDULER": self.scheduler.text().strip(), "CLUSTER_CONFIG": self.cluster_config.filePath().strip()}

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
        values = self.execution_values()
        for key, name in EXECUTION_SETTINGS.items():
            if key == "EXECUTION":  # a selection is set by its index
                ProcessingConfig.setSettingValue(name, EXECUTION_MODES.index(values[key]))
            else:
                ProcessingConfig.setSettingValue(name, values[key])


class PatchFlowOptionsFactory(QgsOptionsWidgetFactory):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("PatchFlow")

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def createWidget(self, parent=None) -> PatchFlowOptionsPage:  # noqa: N802
        return PatchFlowOptionsPage(parent)
