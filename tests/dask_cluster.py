"""A real Dask scheduler and workers on 127.0.0.1 started with the ``dask`` command line (subprocesses, each
in its own process group so a test can kill one outright), and the NC Landsat FCNN the Dask serving tests
serve (tests/engine/test_dask_serving.py, test_dask_scheduler.py, tests/qgis/test_algorithms_dask.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASK = Path(sys.executable).with_name("dask")
CLASSES = [{"id": 3, "name": "water", "color": "#0000ff"}, {"id": 7, "name": "forest", "color": "#00ff00"},
           {"id": 9, "name": "urban", "color": "#ff0000"}]


def nc_fcnn(folder: Path) -> str:
    """A small untrained FCNN for the 5-band NC scene (seeded: the same weights every time)."""
    from patchflow.plugin.engine.models.modelcard import InputSpec, Normalization
    from patchflow.plugin.engine.models.zoo import build_model, export_model

    norm = Normalization("standard", [80.0, 70.0, 70.0, 60.0, 60.0], [20.0] * 5)
    model, card = build_model("fcnn", [InputSpec("x1", 5, 64, "source1", norm)], CLASSES, width=8, seed=1)
    path = str(folder / "nc_fcnn")
    export_model(model, card, path)
    return path


class DaskCluster:
    """``dask scheduler`` and ``workers`` x ``dask worker`` (one thread each, with a nanny) on loopback."""

    def __init__(self, folder: Path, workers: int = 2, patchflow: bool = True) -> None:
        """``patchflow``: with PatchFlow on the processes' PYTHONPATH (else they cannot import it)."""
        self.folder = folder
        self.env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        self.env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        if patchflow:
            self.env["PYTHONPATH"] = str(ROOT / ".cache" / "plugins")
        scheduler_file = folder / "scheduler.json"
        self.scheduler = self._start([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                      "--no-dashboard", "--scheduler-file", str(scheduler_file)], "scheduler")
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.address = json.loads(scheduler_file.read_text())["address"]
        self.workers = [self._start([str(DASK), "worker", self.address, "--nthreads", "1", "--nworkers", "1",
                                     "--memory-limit", "0", "--no-dashboard", "--host", "127.0.0.1"], f"worker{i}")
                        for i in range(workers)]
        self.wait_for_workers(workers)

    def _start(self, command: list[str], name: str) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_for_workers(self, count: int, timeout: float = 120) -> None:
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(count, timeout=timeout)

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL the process and its children (a worker and its nanny)."""
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)

    def close(self) -> None:
        for process in [*self.workers, self.scheduler]:
            if process.poll() is None:
                self.kill(process)
