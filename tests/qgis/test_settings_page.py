"""PatchFlow's page in Settings > Options: the interpreter in effect and why, and a check of it (its
Python, numpy, GDAL, TensorFlow, GPUs), built offscreen in a subprocess (the test session's QGIS has
no widgets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from patchflow.plugin import settings

ROOT = Path(__file__).resolve().parents[2]
PAGE = r"""
import json, sys
from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QApplication
app = QgsApplication([], True)
app.initQgis()
sys.path.insert(0, sys.argv[1])
from patchflow.plugin.settingspage import PatchFlowOptionsFactory
page = PatchFlowOptionsFactory().createWidget()
shown = {"empty": page.effective.text()}
page.python.setFilePath(sys.argv[2])
shown["chosen"] = page.effective.text()
page.check_button.click()
while page.process is not None:
    QApplication.processEvents()
    if page.process is not None:
        page.process.waitForFinished(100)
shown["check"] = page.result.toPlainText()
shown["enabled"] = page.check_button.isEnabled()
shown["execution"] = page.execution_values()
page.execution.setCurrentIndex(page.execution.findData("scheduler"))
page.scheduler.setText(" tcp://head:8786 ")
page.workers.setValue(5)
shown["chosen_execution"] = page.execution_values()
print("PAGE " + json.dumps(shown))
"""


def bare_python(folder: Path) -> Path:
    """An interpreter without site-packages (no numpy, GDAL or TensorFlow): starts in a blink."""
    path = folder / "bare-python"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "$@"\n', encoding="utf-8")
    path.chmod(0o755)
    return path


def test_check_says_what_an_interpreter_lacks(tmp_path):
    found = settings.check_interpreter(str(bare_python(tmp_path)))
    assert found["python"] == ".".join(map(str, sys.version_info[:3])) and not found["ok"]
    assert found["numpy"] is None and found["tensorflow"] is None
    text = settings.describe_check(found)
    assert "TensorFlow MISSING" in text and "No module named 'tensorflow'" in text and "Not usable" in text


def test_check_of_an_interpreter_that_cannot_run(tmp_path):
    found = settings.check_interpreter(str(tmp_path / "no-such-python"))
    assert not found["ok"] and "cannot run" in found["error"]
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\necho 'error: no python here' >&2\nexit 3\n", encoding="utf-8")
    broken.chmod(0o755)
    found = settings.check_interpreter(str(broken))
    assert not found["ok"] and "exit code 3" in found["error"] and "no python here" in found["error"]


@pytest.mark.slow
def test_check_of_the_worker_s_interpreter_finds_tensorflow():
    """The interpreter the tests' worker runs (PATCHFLOW_PYTHON: the .venv) has all the worker needs."""
    python, source = settings.worker_python()
    assert source == f"the environment variable {settings.PYTHON_ENV}"
    found = settings.check_interpreter(python, timeout=300)
    assert found["ok"], found
    import numpy
    from osgeo import gdal

    assert found["numpy"] == numpy.__version__ and found["gdal"] == gdal.__version__
    assert isinstance(found["gpus"], list) and found["tensorflow"]


def test_settings_page_shows_the_interpreter_in_effect_and_checks_it(tmp_path):
    chosen = bare_python(tmp_path)
    env = {key: value for key, value in os.environ.items() if key not in settings.EXECUTION_SETTINGS.values()}
    env.update({"QT_QPA_PLATFORM": "offscreen", settings.PYTHON_ENV: "/opt/from-env/python3"})
    done = subprocess.run([sys.executable, "-c", PAGE, str(ROOT / ".cache" / "plugins"), str(chosen)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("PAGE "))
    shown = json.loads(line[len("PAGE "):])
    # no setting saved: the environment variable is in effect, and the page says so
    assert "/opt/from-env/python3" in shown["empty"] and settings.PYTHON_ENV in shown["empty"]
    assert str(chosen) in shown["chosen"] and "Processing setting" in shown["chosen"]
    assert shown["check"].startswith(f"Python {'.'.join(map(str, sys.version_info[:3]))}")
    assert "TensorFlow MISSING" in shown["check"] and "numpy MISSING" in shown["check"] and shown["enabled"]
    # where Apply model runs: the setting's default (this process), then what the page is given
    assert shown["execution"] == {"EXECUTION": "process", "WORKERS": 2, "SCHEDULER": "", "CLUSTER_CONFIG": ""}
    assert shown["chosen_execution"] == {"EXECUTION": "scheduler", "WORKERS": 5, "SCHEDULER": "tcp://head:8786",
                                         "CLUSTER_CONFIG": ""}


def test_the_plugin_registers_its_options_page_in_the_desktop(qgis_app, qgis_processing):
    import patchflow

    class Interface:
        def __init__(self) -> None:
            self.factories: list = []

        def registerOptionsWidgetFactory(self, factory) -> None:  # noqa: N802
            self.factories.append(factory)

        def unregisterOptionsWidgetFactory(self, factory) -> None:  # noqa: N802
            self.factories.remove(factory)

    from qgis.core import QgsApplication

    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("patchflow")
    if existing is not None:
        registry.removeProvider(existing)
    iface = Interface()
    plugin = patchflow.classFactory(iface)
    plugin.initGui()
    assert [factory.title() for factory in iface.factories] == ["PatchFlow"]
    plugin.unload()
    assert iface.factories == [] and registry.providerById("patchflow") is None
