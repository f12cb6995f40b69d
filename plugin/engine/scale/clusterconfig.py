"""CLUSTER_CONFIG: the small JSON or YAML file that says which batch jobs run the Dask workers (dask-jobqueue):
system (slurm or pbs), queue, cores, memory, walltime, gpus per job, jobs, and optionally account, processes
(workers per job), python, prologue (shell lines run before the worker starts) and directives (extra #SBATCH or
#PBS options). Validated before anything runs; every error names CLUSTER_CONFIG."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from ..errors import PatchFlowError

PARAMETER = "CLUSTER_CONFIG"
SYSTEMS = ("slurm", "pbs")
REQUIRED = ("system", "queue", "cores", "memory", "walltime")
KNOWN = REQUIRED + ("gpus", "jobs", "account", "processes", "python", "prologue", "directives")
MEMORY = re.compile(r"^\d+(\.\d+)?\s*(B|[KMGT]i?B)$", re.IGNORECASE)
WALLTIME = re.compile(r"^(\d+-)?\d{1,3}:\d{2}(:\d{2})?$")


@dataclass(frozen=True)
class ClusterConfig:
    system: str
    queue: str
    cores: int
    memory: str
    walltime: str
    gpus: int = 0
    jobs: int = 1
    account: str = ""
    processes: int = 1
    python: str = ""
    prologue: tuple[str, ...] = ()
    directives: tuple[str, ...] = field(default_factory=tuple)


def _fail(path: str, why: str) -> PatchFlowError:
    return PatchFlowError(f"{path}: {why} See docs/scaling.md for an example.", PARAMETER)


def _parse(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise PatchFlowError(f"cannot read {path} ({exc.strerror or exc}). Choose the cluster file.",
                             PARAMETER) from None
    if path.lower().endswith((".yaml", ".yml")):
        import yaml  # type: ignore[import-untyped]

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise _fail(path, f"not valid YAML ({str(exc).splitlines()[0]}).") from None
    try:
        return json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    except ValueError as exc:
        raise _fail(path, f"not valid JSON ({exc}).") from None


def _integer(path: str, data: dict, key: str, default: int, minimum: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(path, f"'{key}' must be a whole number of at least {minimum} (got {value!r}).")
    return value


def _text(path: str, data: dict, key: str, pattern: re.Pattern | None = None, example: str = "") -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or (key in REQUIRED and not value.strip()):
        raise _fail(path, f"'{key}' must be text{', e.g. ' + example if example else ''} (got {value!r}).")
    if pattern is not None and not pattern.match(value.strip()):
        raise _fail(path, f"'{key}' {value!r} is not of the form {example}.")
    return value.strip()


def _lines(path: str, data: dict, key: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(line, str) for line in value):
        raise _fail(path, f"'{key}' must be a list of text lines (got {value!r}).")
    return tuple(value)


def read_config(path: str) -> ClusterConfig:
    """The cluster file checked: every required key there, of its type; no unknown key (a typo)."""
    if not path or not os.path.isfile(path):
        raise PatchFlowError(f"the cluster file {path or '(none)'} does not exist. EXECUTION jobqueue needs a JSON or "
                             "YAML file saying the system, queue, cores, memory and walltime of the jobs.", PARAMETER)
    data = _parse(path)
    if not isinstance(data, dict):
        raise _fail(path, "the file must hold one object of keys and values.")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise _fail(path, f"missing {', '.join(missing)} (needed: {', '.join(REQUIRED)}).")
    unknown = sorted(set(data) - set(KNOWN))
    if unknown:
        raise _fail(path, f"unknown key(s) {', '.join(map(str, unknown))} (known: {', '.join(KNOWN)}).")
    system = _text(path, data, "system").lower()
    if system not in SYSTEMS:
        raise _fail(path, f"'system' must be slurm or pbs (got {system!r}).")
    return ClusterConfig(system, _text(path, data, "queue"), _integer(path, data, "cores", 1, 1),
                         _text(path, data, "memory", MEMORY, "16GB"),
                         _text(path, data, "walltime", WALLTIME, "02:00:00"),
                         _integer(path, data, "gpus", 0, 0), _integer(path, data, "jobs", 1, 1),
                         _text(path, data, "account"), _integer(path, data, "processes", 1, 1),
                         _text(path, data, "python"), _lines(path, data, "prologue"), _lines(path, data, "directives"))


def cluster_arguments(config: ClusterConfig, plugin_parent: str) -> dict[str, Any]:
    """dask-jobqueue's arguments: one job gives ``processes`` workers sharing ``cores`` and ``memory``; its
    workers import PatchFlow from ``plugin_parent`` (the folder holding the plugin, on the shared file system)."""
    directives = list(config.directives)
    arguments: dict[str, Any] = {
        "queue": config.queue, "cores": config.cores, "memory": config.memory, "walltime": config.walltime,
        "processes": config.processes, "python": config.python or sys.executable,
        "job_script_prologue": [f"export PYTHONPATH={plugin_parent}${{PYTHONPATH:+:$PYTHONPATH}}",
                                *config.prologue],
        "scheduler_options": {"dashboard_address": None},
    }
    if config.account:
        arguments["account"] = config.account
    if config.gpus:
        if config.system == "slurm":
            directives.append(f"--gres=gpu:{config.gpus}")
        else:
            arguments["resource_spec"] = (f"select=1:ncpus={config.cores}:ngpus={config.gpus}:"
                                          f"mem={config.memory.replace(' ', '')}")
    arguments["job_extra_directives"] = directives
    return arguments


def make_cluster(config: ClusterConfig, plugin_parent: str):
    """A SLURMCluster or PBSCluster (its scheduler in this process), no job submitted yet."""
    try:
        from dask_jobqueue import PBSCluster, SLURMCluster  # type: ignore[attr-defined]
    except ImportError as exc:
        raise PatchFlowError(f"dask-jobqueue is not installed in the worker's Python ({exc}). Install it "
                             "(requirements.txt) or choose another EXECUTION.", PARAMETER) from None
    kind = SLURMCluster if config.system == "slurm" else PBSCluster
    return kind(**cluster_arguments(config, plugin_parent))
