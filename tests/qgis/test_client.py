"""The worker client: interpreter choice, missing dependencies, a worker that dies, protocol."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from pathlib import Path

import pytest
from qgis.core import QgsProcessingFeedback

from patchflow.plugin import settings
from patchflow.plugin.client import POOL, WorkerCancelled, WorkerClient, WorkerError


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
        self.texts: list[str] = []
        self.progressChanged.connect(self.progress_values.append)

    def setProgressText(self, text: str) -> None:  # noqa: N802
        self.texts.append(text)

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


# ---- the warm worker ---------------------------------------------------------------------------------


def gone(pid: int, within: float = 8.0) -> bool:
    """Whether process ``pid`` has ended (and been reaped) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def clients():
    """clients(**options) -> a WorkerClient; afterwards every worker they ran ends (none left behind)."""
    POOL.shutdown()
    made: list[WorkerClient] = []
    pids: list[int] = []

    def make(**options) -> WorkerClient:
        made.append(WorkerClient(**options))
        return made[-1]

    make.pids = pids  # type: ignore[attr-defined]
    yield make
    POOL.shutdown()
    left = [pid for pid in set(pids + [c.pid for c in made if c.pid]) if not gone(pid)]
    assert not left, f"workers left running: {left}"


def sample(client: WorkerClient, nc, folder: Path, feedback=None, pids=None) -> dict:
    out = folder / f"s-{time.monotonic_ns()}.gpkg"
    result = client.run("sample_label_raster", {"INPUT": str(nc / "landsat96_labelled_pixels.tif"), "NUMBER": 5,
                                                "OUTPUT": str(out)}, feedback or QgsProcessingFeedback(), [str(out)])
    if pids is not None:
        pids.append(client.pid)
    assert result["COUNT"] == 35
    return result


def test_two_jobs_run_in_one_warm_worker(clients, nc, tmp_path):
    client = clients(idle_seconds=60)
    first = Recorder()
    sample(client, nc, tmp_path, first)
    pid = client.pid
    assert not client.reused and "starting the PatchFlow worker" in first.infos
    assert POOL.pids() == [pid]
    second = Recorder()
    sample(client, nc, tmp_path, second)
    assert client.pid == pid and client.reused
    assert "starting the PatchFlow worker" not in second.infos
    assert any(f"pid {pid}" in text for text in second.texts)
    assert not gone(pid, 0.2)  # still there for the next job


def test_an_idle_worker_ends_after_the_idle_time(clients, nc, tmp_path):
    client = clients(idle_seconds=1)
    sample(client, nc, tmp_path, pids=clients.pids)
    assert POOL.pids() == [clients.pids[0]]
    assert gone(clients.pids[0], within=6)
    assert POOL.pids() == []
    sample(client, nc, tmp_path, pids=clients.pids)
    assert clients.pids[1] != clients.pids[0]


def test_a_worker_killed_between_jobs_is_replaced(clients, nc, tmp_path):
    client = clients(idle_seconds=60)
    sample(client, nc, tmp_path, pids=clients.pids)
    os.kill(clients.pids[0], signal.SIGKILL)
    sample(client, nc, tmp_path, pids=clients.pids)
    assert clients.pids[1] != clients.pids[0] and not client.reused


class KillsItsWorker(QgsProcessingFeedback):
    """Kills (or cancels) the client's worker at the job's first progress."""

    def __init__(self, client: WorkerClient, cancel: bool = False) -> None:
        super().__init__()
        self.client, self.cancel_it, self.done = client, cancel, False
        self.progressChanged.connect(self._act)

    def _act(self, value: float) -> None:
        if not self.done and 0 < value < 100:
            self.done = True
            self.cancel() if self.cancel_it else os.kill(self.client.pid, signal.SIGKILL)


def test_another_interpreter_or_idle_setting_gets_another_worker(clients, nc, tmp_path):
    venv = settings.PLUGIN_ROOT / ".venv" / "bin" / "python"
    sample(clients(python=str(venv), idle_seconds=60), nc, tmp_path, pids=clients.pids)
    wrapper = fake_python(tmp_path, f'exec {venv} "$@"')  # the setting now names another interpreter
    sample(clients(python=wrapper, idle_seconds=60), nc, tmp_path, pids=clients.pids)
    assert clients.pids[1] != clients.pids[0]
    assert gone(clients.pids[0], within=5)  # the old interpreter's worker ended
    sample(clients(python=wrapper, idle_seconds=30), nc, tmp_path, pids=clients.pids)
    assert clients.pids[2] != clients.pids[1] and POOL.pids() == [clients.pids[2]]


def test_a_worker_over_the_memory_cap_is_not_reused(clients, nc, tmp_path):
    client = clients(idle_seconds=60, max_mib=1)
    sample(client, nc, tmp_path, pids=clients.pids)
    assert POOL.pids() == []
    sample(client, nc, tmp_path, pids=clients.pids)
    assert clients.pids[1] != clients.pids[0]
    roomy = clients(idle_seconds=60, max_mib=100_000)
    sample(roomy, nc, tmp_path, pids=clients.pids)
    sample(roomy, nc, tmp_path, pids=clients.pids)
    assert clients.pids[3] == clients.pids[2]


def test_one_shot_operations_get_a_worker_of_their_own(clients, nc, tmp_path, monkeypatch):
    from patchflow.plugin import protocol

    monkeypatch.setattr(protocol, "ONE_SHOT_OPERATIONS", frozenset({"sample_label_raster"}))
    client = clients(idle_seconds=60)
    sample(client, nc, tmp_path, pids=clients.pids)
    sample(client, nc, tmp_path, pids=clients.pids)
    assert clients.pids[1] != clients.pids[0] and POOL.pids() == []


class Holds(QgsProcessingFeedback):
    """Holds its job (and so its worker) for ``seconds`` at the first progress, once ``started`` is set."""

    def __init__(self, started: threading.Event, seconds: float) -> None:
        super().__init__()
        self.started, self.seconds, self.held = started, seconds, False
        self.progressChanged.connect(self._hold)

    def _hold(self, value: float) -> None:
        if not self.held and 0 < value < 100:
            self.held = True
            self.started.set()
            time.sleep(self.seconds)


def test_jobs_from_two_threads_never_share_a_worker(clients, nc, tmp_path):
    sample(clients(idle_seconds=60), nc, tmp_path, pids=clients.pids)  # one warm worker waiting
    started, errors = threading.Event(), []
    first, second = clients(idle_seconds=60), clients(idle_seconds=60)

    def hold() -> None:
        try:
            sample(first, nc, tmp_path, Holds(started, 2.0))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=hold)
    thread.start()
    assert started.wait(30)
    sample(second, nc, tmp_path)  # while the first holds the warm worker
    thread.join()
    assert errors == []
    assert first.pid == clients.pids[0] and first.reused
    assert second.pid != first.pid and not second.reused
    assert sorted(POOL.pids()) == sorted([first.pid, second.pid])


# ---- Apply model through a warm worker: the model cache, stages and progress ----------------------------


@pytest.fixture(scope="module")
def fcnn(tmp_path_factory) -> Path:
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    model = tmp_path_factory.mktemp("warm-model") / "fcnn"
    run_job(protocol.Job("create_model", {"ARCHITECTURE": "fcnn", "BANDS": 5, "PATCH_SIZE": 32, "N_CLASSES": 3,
                                          "WIDTH": 4, "SEED": 1, "OUTPUT": str(model)}, "t"), Reporter())
    return model


def apply(client: WorkerClient, nc, fcnn: Path, folder: Path, feedback=None, **extra) -> Recorder:
    feedback = feedback or Recorder()
    out = folder / f"map-{time.monotonic_ns()}.tif"
    client.run("apply_model", {"MODEL": str(fcnn), "SOURCE1": [str(nc / "landsat_multiband.tif")],
                               "OUTPUT": str(out), **extra}, feedback, [str(out)])
    assert out.exists()
    return feedback


def test_a_worker_that_crashes_during_a_job_is_replaced(clients, nc, fcnn, tmp_path):
    client = clients(idle_seconds=60)
    apply(client, nc, fcnn, tmp_path)
    pid = client.pid
    with pytest.raises(WorkerError, match="SIGKILL"):
        apply(client, nc, fcnn, tmp_path, KillsItsWorker(client))
    assert client.pid == pid and POOL.pids() == []  # the crash was in the warm worker, which is gone
    apply(client, nc, fcnn, tmp_path)
    assert client.pid != pid and not client.reused


def test_cancel_ends_the_worker_and_the_next_job_starts_a_new_one(clients, nc, fcnn, tmp_path):
    client = clients(idle_seconds=60)
    apply(client, nc, fcnn, tmp_path)
    pid = client.pid
    out = tmp_path / "cancelled"
    out.mkdir()
    with pytest.raises(WorkerCancelled):
        apply(client, nc, fcnn, out, KillsItsWorker(client, cancel=True))
    assert client.pid == pid and gone(pid, within=3) and POOL.pids() == []
    assert list(out.iterdir()) == []
    apply(client, nc, fcnn, tmp_path)
    assert client.pid != pid and not client.reused


def test_a_warm_worker_reuses_a_model_until_it_changes_and_per_trust_decision(clients, nc, fcnn, tmp_path):
    client = clients(idle_seconds=60)

    def kept(**extra) -> bool:
        return any("kept loaded" in line for line in apply(client, nc, fcnn, tmp_path, **extra).infos)

    assert not kept()
    pid = client.pid
    assert kept()
    later = time.time() + 10
    os.utime(fcnn / "saved_model.pb", (later, later))  # written again
    assert not kept()
    assert not kept(TRUST_MODEL=True)  # loaded apart for a job that trusts it
    assert kept(TRUST_MODEL=True) and kept()
    assert client.pid == pid


def test_apply_model_reports_its_stages_and_moves_over_the_tiles(clients, run_alg, nc, fcnn, tmp_path):
    feedback = Recorder()
    run_alg("applymodel", feedback=feedback, MODEL=str(fcnn / "saved_model.pb"),
            SOURCE1=[str(nc / "landsat_multiband.tif")], TILE_SIZE=64, OUTPUT=str(tmp_path / "map.tif"))
    texts = feedback.texts
    stages = ["starting the PatchFlow worker", "importing TensorFlow", "loading the model fcnn",
              "measuring the model's geometry and margin"]
    assert [text for text in texts if text in stages] == stages  # a cold worker: every stage, in order
    assert all(stage in feedback.infos for stage in stages)
    tiles = [text for text in texts if text.startswith("tiles ")]
    assert tiles[0] == "tiles 0/56" and tiles[-1] == "tiles 56/56" and len(tiles) == 57  # 8 x 7 tiles of 64 px
    before = [value for value in feedback.progress_values if value < 95]
    assert len(set(before)) >= 16 and before == sorted(before)
    assert feedback.progress_values[-1] == 100
    clients.pids.extend(POOL.pids())  # the warm worker Processing ran ends with the test
    again = Recorder()  # the next run, in the warm worker: no start-up stages
    run_alg("applymodel", feedback=again, MODEL=str(fcnn / "saved_model.pb"),
            SOURCE1=[str(nc / "landsat_multiband.tif")], TILE_SIZE=64, OUTPUT=str(tmp_path / "again.tif"))
    assert [text for text in again.texts if text in stages] == stages[2:]
    assert POOL.pids() == clients.pids[-1:]
