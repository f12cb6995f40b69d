"""Which Python runs the worker: the Processing setting, PATCHFLOW_PYTHON, the plugin's .venv,
else QGIS's own Python."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

PYTHON_SETTING = "PATCHFLOW_PYTHON"
PYTHON_ENV = "PATCHFLOW_PYTHON"
PLUGIN_ROOT = Path(__file__).absolute().parent.parent


def _setting_value() -> str:
    try:
        from processing.core.ProcessingConfig import ProcessingConfig
    except ImportError:
        return ""
    return (ProcessingConfig.getSetting(PYTHON_SETTING) or "").strip()


def _venv_python() -> Path | None:
    for relative in ("bin/python", "Scripts/python.exe"):
        candidate = PLUGIN_ROOT / ".venv" / relative
        if candidate.exists():
            return candidate
    return None


def qgis_python() -> str:
    """The interpreter QGIS itself embeds (sys.executable is QGIS's binary inside QGIS)."""
    if Path(sys.executable).name.lower().startswith("python"):
        return sys.executable
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    prefix = Path(sys.exec_prefix)
    for candidate in (prefix / "bin" / version, prefix / "bin" / "python3", prefix / "python.exe"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("python3") or "python3"


def worker_python() -> tuple[str, str]:
    """(interpreter, where that choice came from)."""
    setting = _setting_value()
    if setting:
        return setting, "the Processing setting 'PatchFlow: Python interpreter for the worker'"
    env = os.environ.get(PYTHON_ENV, "").strip()
    if env:
        return env, f"the environment variable {PYTHON_ENV}"
    venv = _venv_python()
    if venv is not None:
        return str(venv), "the plugin's .venv"
    return qgis_python(), "QGIS's own Python (no setting, no PATCHFLOW_PYTHON, no .venv)"


# ---- the warm worker -------------------------------------------------------------------------------

IDLE_SETTING = "PATCHFLOW_WORKER_IDLE"  # Processing setting and environment variable alike
MEMORY_SETTING = "PATCHFLOW_WORKER_MAX_MIB"
DEFAULT_IDLE_SECONDS = 600  # a worker left running ends after this long without a job (0: one worker per job)
DEFAULT_MAX_MIB = 4096  # a worker whose resident memory passes this after a job is not reused


def _number(name: str, default: float) -> float:
    """The Processing setting ``name`` when set, else the environment variable ``name``, else ``default``."""
    value = None
    try:
        from processing.core.ProcessingConfig import ProcessingConfig

        value = ProcessingConfig.getSetting(name)
    except (ImportError, KeyError):
        pass
    for candidate in (value, os.environ.get(name)):
        try:
            if candidate not in (None, ""):
                return max(0.0, float(candidate))
        except (TypeError, ValueError):
            continue
    return float(default)


def worker_idle_seconds() -> float:
    return _number(IDLE_SETTING, DEFAULT_IDLE_SECONDS)


def worker_max_mib() -> float:
    return _number(MEMORY_SETTING, DEFAULT_MAX_MIB)
