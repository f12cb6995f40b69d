"""The worker client: interpreter choice, missing dependencies, a worker that dies, protocol."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from qgis.core import QgsProcessingFeedback

from patchflow.plugin import settings
from patchflow.plugin.client import WorkerClient, WorkerError


def fake_python(folder: Path, body: str) -> str:
    script = folder / "python3"
    script.write_text("#!/bin/bash\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


class Recorder(QgsProcessingFeedback):
    def __init__(self) -> None:
        super().__init__()
        self.infos: list[str] = []
        self.warnings: list[str] = []
        self.progress_values: list[float] = []
        self.progressChanged.connect(self.progress_values.append)

    def pushInfo(self, info: str) -> None:  # noqa: N802
        self.infos.append(info)

    def pushWarning(self, warning: str) -> None:  # noqa: N802
        self.warnings.append(warning)


def test_worker_streams_progress_logs_and_result(nc, tmp_path):
    feedback = Recorder()
    result = WorkerClient().run("sample_label_raster", {
        "INPUT": str(nc / "landsat96_labelled_pixels.tif"), "NUMBER": 5, "OUTPUT": str(tmp_path / "s.gpkg"),
    }, feedback, [str(tmp_path / "s.gpkg")])
    assert result["COUNT"] == 35
    assert any("class statistics" in line for line in feedback.infos)
    assert any("floating point" in line for line in feedback.warnings)
    assert feedback.progress_values and feedback.progress_values[-1] == 100
    assert feedback.progress_values == sorted(feedback.progress_values)


def test_engine_error_names_the_parameter(tmp_path):
    with pytest.raises(WorkerError) as caught:
        WorkerClient().run("sample_label_raster", {"INPUT": str(tmp_path / "missing.tif"),
                                                   "OUTPUT": str(tmp_path / "s.gpkg")}, QgsProcessingFeedback())
    assert caught.value.parameter == "INPUT"
    assert "raster file not found" in str(caught.value)


def test_interpreter_that_does_not_exist(tmp_path):
    with pytest.raises(WorkerError, match=r"cannot start the PatchFlow worker with /nonexistent/python.*make setup"):
        WorkerClient("/nonexistent/python").run("sample_label_raster", {}, QgsProcessingFeedback())


def test_interpreter_without_the_engine_dependencies(tmp_path):
    # -S: no site-packages, so neither numpy nor GDAL can be imported
    python = fake_python(tmp_path, 'exec /usr/bin/python3 -S "$@"')
    with pytest.raises(WorkerError) as caught:
        WorkerClient(python).run("sample_label_raster", {"INPUT": "x", "OUTPUT": str(tmp_path / "s.gpkg")},
                                 QgsProcessingFeedback())
    message = str(caught.value)
    assert python in message and "No module named" in message and "PATCHFLOW_PYTHON" in message


def test_worker_killed_becomes_a_clear_error(tmp_path):
    python = fake_python(tmp_path, 'echo "loading something big" >&2\nkill -9 $$')
    with pytest.raises(WorkerError) as caught:
        WorkerClient(python).run("sample_label_raster", {}, QgsProcessingFeedback())
    message = str(caught.value)
    assert "stopped unexpectedly (signal SIGKILL)" in message
    assert "run out of memory" in message and "loading something big" in message


def test_worker_crash_removes_staged_outputs(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # a worker that stages a partial output under its job id, then dies
    python = fake_python(tmp_path, f"""read line
id=$(echo "$line" | sed 's/.*"job_id": "\\([^"]*\\)".*/\\1/')
mkdir -p {out}/.patchflow-staging-$id && echo partial > {out}/.patchflow-staging-$id/out.gpkg
touch {tmp_path}/staged-$id
exit 3""")
    with pytest.raises(WorkerError, match="exit status 3"):
        WorkerClient(python).run("sample_label_raster", {}, QgsProcessingFeedback(), [str(out / "out.gpkg")])
    assert len(list(tmp_path.glob("staged-*"))) == 1
    assert list(out.iterdir()) == []


def test_interpreter_choice_order(monkeypatch, tmp_path):
    monkeypatch.setenv(settings.PYTHON_ENV, "/opt/custom/python3")
    assert settings.worker_python() == ("/opt/custom/python3", f"the environment variable {settings.PYTHON_ENV}")
    monkeypatch.delenv(settings.PYTHON_ENV)
    python, source = settings.worker_python()
    if (settings.PLUGIN_ROOT / ".venv" / "bin" / "python").exists():
        assert source == "the plugin's .venv" and python.endswith(os.path.join(".venv", "bin", "python"))
    monkeypatch.setattr(settings, "_venv_python", lambda: None)
    python, source = settings.worker_python()
    assert source.startswith("QGIS's own Python") and Path(python).name.startswith("python")


def test_the_worker_gets_pam_back_when_only_qgis_had_it_off(monkeypatch):
    """scripts/qgis_process.sh turns GDAL's .aux.xml off for QGIS; the worker reads the inputs' own."""
    from patchflow.plugin.client import worker_command

    monkeypatch.setenv("GDAL_PAM_ENABLED", "NO")
    monkeypatch.setenv("PATCHFLOW_QGIS_PAM_OFF", "1")
    _, env = worker_command("python")
    assert "GDAL_PAM_ENABLED" not in env and "PATCHFLOW_QGIS_PAM_OFF" not in env
    monkeypatch.delenv("PATCHFLOW_QGIS_PAM_OFF")
    _, env = worker_command("python")
    assert env["GDAL_PAM_ENABLED"] == "NO"  # the user's own setting is kept
