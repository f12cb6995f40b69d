"""Which Python runs the worker: the Processing setting, PATCHFLOW_PYTHON, the plugin's .venv,
else QGIS's own Python."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .declarations import EXECUTION_SETTINGS, EXECUTIONS

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


def worker_python(setting: str | None = None) -> tuple[str, str]:
    """(interpreter, where that choice came from); ``setting``: the Processing setting's value to
    suppose (the settings page, before it is saved), else the saved one."""
    setting = (setting if setting is not None else _setting_value()).strip()
    if setting:
        return setting, "the Processing setting 'PatchFlow: Python interpreter for the worker'"
    env = os.environ.get(PYTHON_ENV, "").strip()
    if env:
        return env, f"the environment variable {PYTHON_ENV}"
    venv = _venv_python()
    if venv is not None:
        return str(venv), "the plugin's .venv"
    return qgis_python(), "QGIS's own Python (no setting, no PATCHFLOW_PYTHON, no .venv)"


# run by the worker's interpreter: what the worker will find there (one JSON line on stdout)
CHECK_SCRIPT = r"""
import json, os, platform, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
found = {"python": platform.python_version(), "executable": sys.executable}
def version(name, attribute="__version__"):
    try:
        module = __import__(name, fromlist=["_"])
        found[name.split(".")[-1]] = str(getattr(module, attribute, "?"))
        return module
    except Exception as exc:
        found[name.split(".")[-1]] = None
        found.setdefault("missing", []).append(f"{name}: {type(exc).__name__}: {exc}"[:300])
version("numpy")
version("osgeo.gdal")
tf = version("tensorflow")
if tf is not None:
    try:
        found["gpus"] = [device.name for device in tf.config.list_physical_devices("GPU")]
    except Exception as exc:
        found["gpus"] = []
        found.setdefault("missing", []).append(f"GPU list: {exc}"[:300])
print("PATCHFLOW_CHECK " + json.dumps(found))
"""
CHECK_PREFIX = "PATCHFLOW_CHECK "
NEEDED = ("numpy", "gdal", "tensorflow")


def parse_check(stdout: str, stderr: str = "", returncode: int = 0) -> dict:
    """The check's result: python, executable, numpy, gdal, tensorflow (versions, None when missing),
    gpus, missing (why each import failed), ok (all three there); error when the interpreter failed."""
    import json

    line = next((line for line in reversed(stdout.splitlines()) if line.startswith(CHECK_PREFIX)), None)
    if line is None:
        tail = (stderr or stdout).strip().splitlines()[-3:]
        return {"ok": False, "error": f"the interpreter failed (exit code {returncode}): " + " ".join(tail)}
    found = json.loads(line[len(CHECK_PREFIX):])
    found["ok"] = all(found.get(name) for name in NEEDED)
    return found


def check_interpreter(python: str | None = None, timeout: float = 120.0) -> dict:
    """Run the worker's interpreter (``python``, else the one in effect) on CHECK_SCRIPT."""
    import subprocess

    python = python or worker_python()[0]
    try:
        done = subprocess.run([python, "-c", CHECK_SCRIPT], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"ok": False, "error": f"cannot run {python}: {exc}"}
    return parse_check(done.stdout, done.stderr, done.returncode)


def describe_check(found: dict) -> str:
    """The check in a few lines, for the settings page."""
    if found.get("error"):
        return found["error"]
    gpus = found.get("gpus") or []
    lines = [f"Python {found.get('python')} ({found.get('executable')})",
             f"numpy {found.get('numpy') or 'MISSING'}, GDAL {found.get('gdal') or 'MISSING'}, "
             f"TensorFlow {found.get('tensorflow') or 'MISSING'}",
             f"GPU: {', '.join(gpus)}" if gpus else "GPU: none (TensorFlow runs on the CPU)" if found.get(
                 "tensorflow") else "GPU: unknown (no TensorFlow)"]
    lines += [f"missing: {why}" for why in found.get("missing", [])]
    lines.append("OK: the worker can run here." if found.get("ok") else
                 "Not usable for every algorithm: install what is missing, or choose another interpreter.")
    return "\n".join(lines)


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


# ---- where raster work runs (EXECUTION "setting") -------------------------------------------------

EXECUTION_MODES = tuple(value for value, _ in EXECUTIONS if value != "setting")
DEFAULT_EXECUTION = {"EXECUTION": "process", "WORKERS": 2, "SCHEDULER": "", "CLUSTER_CONFIG": ""}


def _raw_setting(name: str):
    try:
        from processing.core.ProcessingConfig import ProcessingConfig

        return ProcessingConfig.getSetting(name, readable=True)
    except (ImportError, KeyError, TypeError):
        return None


def execution_setting() -> dict:
    """The PatchFlow setting for EXECUTION "setting", as the job's EXECUTION, WORKERS, SCHEDULER and
    CLUSTER_CONFIG: each Processing setting when set, else its environment variable, else the default
    (this process)."""
    found = dict(DEFAULT_EXECUTION)
    for key, name in EXECUTION_SETTINGS.items():
        for candidate in (_raw_setting(name), os.environ.get(name)):
            if candidate not in (None, ""):
                found[key] = candidate
                break
    if str(found["EXECUTION"]) not in EXECUTION_MODES:
        found["EXECUTION"] = "process"
    try:
        found["WORKERS"] = max(1, int(found["WORKERS"]))
    except (TypeError, ValueError):
        found["WORKERS"] = DEFAULT_EXECUTION["WORKERS"]
    found["SCHEDULER"], found["CLUSTER_CONFIG"] = str(found["SCHEDULER"]).strip(), str(found["CLUSTER_CONFIG"]).strip()
    return found
