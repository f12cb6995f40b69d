"""The execution choice (EXECUTION, WORKERS, SCHEDULER, CLUSTER_CONFIG; "setting": the PatchFlow setting, which
the QGIS side puts in the job, and a script through the environment variables of the same names) and the Dask
client it gives: a local cluster of worker processes, an existing scheduler, or SLURM/PBS jobs. The worker process
is the client; what the client started (a cluster, its jobs) is closed when the run ends."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...declarations import EXECUTION_SETTINGS, EXECUTIONS
from ..errors import PatchFlowError
from ..params import Params
from ..reporting import Reporter
from .clusterconfig import ClusterConfig, make_cluster, read_config

MODES = tuple(value for value, _ in EXECUTIONS if value != "setting")
ENVIRONMENT = EXECUTION_SETTINGS  # the setting's names: Processing settings in QGIS, environment variables here
ADDRESS = re.compile(r"^(tcp|tls|ucx|inproc)://[^\s/:]+(:\d+)?/?$")
CONNECT_SECONDS = 20  # to reach a scheduler
CLOSE_SECONDS = 10
WORKER_WAIT_SECONDS = 60  # for a first worker at a scheduler (jobs of a batch queue: not waited for)
PLUGIN_PARENT = str(Path(__file__).absolute().parents[4])  # the folder holding the plugin's package


@dataclass(frozen=True)
class Execution:
    mode: str  # process, local, scheduler, jobqueue
    workers: int = 1
    scheduler: str = ""
    cluster: ClusterConfig | None = None

    @property
    def distributed(self) -> bool:
        return self.mode != "process"


def _from_environment() -> dict[str, Any]:
    """The setting's values, from the environment variables of its names (those set)."""
    values: dict[str, Any] = {}
    for key, variable in ENVIRONMENT.items():
        text = os.environ.get(variable, "").strip()
        if text:
            values[key] = text
    if "WORKERS" in values:
        try:
            values["WORKERS"] = int(values["WORKERS"])
        except ValueError:
            raise PatchFlowError(f"the setting {ENVIRONMENT['WORKERS']}={values['WORKERS']!r} is not a whole "
                                 "number. Fix the PatchFlow setting.", "WORKERS") from None
    return values


def execution_of(params: Params) -> Execution:
    """The run's execution, checked (a bad address, cluster file or count names its parameter)."""
    mode = params.choice("EXECUTION")
    workers, scheduler = params.integer("WORKERS"), params.string("SCHEDULER") or ""
    config = params.string("CLUSTER_CONFIG") or ""
    if mode == "setting":  # the setting's values as a whole (none set: this process)
        setting = _from_environment()
        mode = str(setting.get("EXECUTION", "process")).lower()
        if mode not in MODES:
            raise PatchFlowError(f"the PatchFlow setting {ENVIRONMENT['EXECUTION']} is {mode!r}; it must be one of "
                                 f"{', '.join(MODES)}.", "EXECUTION")
        declared = params.declared("WORKERS")
        workers = int(setting.get("WORKERS", declared.default if declared is not None else 1))
        scheduler, config = str(setting.get("SCHEDULER", "")), str(setting.get("CLUSTER_CONFIG", ""))
    if mode == "process":
        return Execution("process")
    if mode == "local":
        if workers < 1:
            raise PatchFlowError(f"a local Dask cluster needs 1 worker or more (got {workers}).", "WORKERS")
        return Execution("local", workers)
    if mode == "scheduler":
        if not ADDRESS.match(scheduler.strip()):
            raise PatchFlowError(f"{scheduler.strip() or 'nothing'} is not a Dask scheduler address. Give one like "
                                 "tcp://host:8786 (EXECUTION scheduler).", "SCHEDULER")
        return Execution("scheduler", scheduler=scheduler.strip())
    cluster = read_config(config)
    return Execution("jobqueue", cluster.jobs * cluster.processes, cluster=cluster)


def share_the_gpu() -> None:
    """TensorFlow takes GPU memory as it needs it, not all of it at once: in this process (the client, which
    probes the model) and in the local workers it starts, which share this computer's GPUs. Set before
    TensorFlow starts; an explicit TF_FORCE_GPU_ALLOW_GROWTH is left as it is."""
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")


def _local_cluster(workers: int):
    from distributed import LocalCluster

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the workers' TensorFlow as quiet as this process's
    share_the_gpu()
    # worker processes with a nanny (a killed worker is started again), one thread each, no memory limit
    # (no nanny kills a worker that TensorFlow makes large), no dashboard, only this computer
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=None, memory_limit=0, silence_logs=logging.ERROR)


def _connect(address: str, reporter: Reporter):
    from distributed import Client

    reporter.stage(f"connecting to the Dask scheduler at {address}", log=True)
    try:
        client = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise PatchFlowError(f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}: {exc}). Check that "
                             "it runs and that this computer can reach it.", "SCHEDULER") from None
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
    except (OSError, TimeoutError):
        client.close()
        raise PatchFlowError(f"no Dask worker joined the scheduler at {address} within {WORKER_WAIT_SECONDS} s. "
                             "Start workers (dask worker ADDRESS) with PatchFlow on their PYTHONPATH.",
                             "SCHEDULER") from None
    return client


@contextmanager
def dask_client(execution: Execution, reporter: Reporter) -> Iterator[Any]:
    """A connected Client for ``execution``; the cluster it started, if any, closed afterwards."""
    from distributed import Client

    cluster = None
    if execution.mode == "local":
        reporter.stage(f"starting a local Dask cluster of {execution.workers} worker(s)", log=True)
        cluster = _local_cluster(execution.workers)
        client = Client(cluster, set_as_default=False)
    elif execution.mode == "scheduler":
        client = _connect(execution.scheduler, reporter)
    else:
        assert execution.cluster is not None
        config = execution.cluster
        reporter.stage(f"submitting {config.jobs} {config.system.upper()} job(s) to {config.queue}", log=True)
        cluster = make_cluster(config, PLUGIN_PARENT)
        cluster.scale(jobs=config.jobs)
        client = Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        try:
            client.close(timeout=CLOSE_SECONDS)
        except (OSError, TimeoutError):  # a scheduler gone: nothing to close there
            pass
        finally:
            if cluster is not None:
                cluster.close()
