"""The engine and the protocol type-check clean (mypy, configured in pyproject.toml; `make lint` runs it
too): the annotations at the engine's boundaries (Params, RunContext, ClassInfo) stay true."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_engine_type_checks_clean():
    pytest.importorskip("mypy")
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "plugin/engine" in (ROOT / "pyproject.toml").read_text()
    assert "no issues found in" in done.stdout
