"""The engine never needs QGIS: it must import (and run) where ``qgis`` cannot be imported."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "plugin" / "engine"
ENGINE_FILES = sorted(ENGINE.rglob("*.py"))  # the engine's top level and its stage sub-packages


def module_name(path: Path) -> str:
    """``engine.data.sampling`` for ``plugin/engine/data/sampling.py``, ``engine.data`` for its ``__init__``."""
    parts = path.relative_to(ENGINE).with_suffix("").parts
    return ".".join(("engine",) + (parts[:-1] if parts[-1] == "__init__" else parts))


def depth(path: Path) -> int:
    """How many packages below the engine's top level ``path`` lies (0 for plugin/engine/*.py)."""
    return len(path.relative_to(ENGINE).parts) - 1


MODULES = ["patchflow.plugin.protocol", "patchflow.plugin.declarations"] + [
    f"patchflow.plugin.{module_name(path)}" for path in ENGINE_FILES]
FORBIDDEN = ("qgis", "PyQt5", "PyQt6", "processing", "sip")


def test_every_engine_module_is_listed():
    assert {p.stem for p in ENGINE_FILES} >= {"errors", "params", "staging", "raster", "classes", "vector",
                                              "sampling", "split", "patches", "manifest", "worker", "operations",
                                              "__main__", "reporting", "training", "serving", "assess"}
    assert {p.parent.name for p in ENGINE_FILES} >= {"engine", "data", "models", "train", "serve", "evaluate"}
    assert len({p.name for p in ENGINE_FILES if p.name != "__init__.py"}) == len(
        [p for p in ENGINE_FILES if p.name != "__init__.py"]), "two engine modules share a file name"


def test_engine_imports_and_runs_without_qgis(tmp_path):
    script = textwrap.dedent(f"""
        import importlib, json, sys
        for name in {FORBIDDEN!r}:
            sys.modules[name] = None  # any import of it now raises ImportError
        try:
            import qgis.core
        except ImportError:
            pass
        else:
            raise SystemExit("qgis is still importable")
        for module in {MODULES!r}:
            importlib.import_module(module)
        from patchflow.plugin import protocol
        from patchflow.plugin.engine.operations import OPERATIONS
        from patchflow.plugin.engine.reporting import Reporter
        from patchflow.plugin.engine.worker import run_job
        import numpy as np
        from osgeo import gdal
        ds = gdal.GetDriverByName("GTiff").Create(sys.argv[1] + "/l.tif", 20, 20, 1, gdal.GDT_Byte)
        ds.SetGeoTransform((0, 1, 0, 20, 0, -1))
        ds.GetRasterBand(1).WriteArray(np.ones((20, 20), np.uint8))
        ds = None
        outputs = run_job(protocol.Job("sample_label_raster", {{"INPUT": sys.argv[1] + "/l.tif", "NUMBER": 5,
                                       "OUTPUT": sys.argv[1] + "/s.gpkg"}}, "nq"), Reporter())
        loaded = sorted(name for name, module in sys.modules.items()
                        if module is not None and name.split(".")[0] in {FORBIDDEN!r})
        print(json.dumps({{"operations": sorted(OPERATIONS), "count": outputs["COUNT"], "loaded": loaded}}))
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT / ".cache" / "plugins"))
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=str(tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr
    import json

    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["loaded"] == []
    assert report["count"] == 5
    assert "extract_patches" in report["operations"]


def imports_of(path: Path) -> list[tuple[int, str, list[str]]]:
    """(relative level, module, imported names) of every import statement in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend((0, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or "", [alias.name for alias in node.names]))
    return found


@pytest.mark.parametrize("path", ENGINE_FILES, ids=lambda p: str(p.relative_to(ENGINE)))
def test_no_engine_file_imports_qgis(path):
    for level, module, names in imports_of(path):
        top = module.split(".")[0]
        if level == 0:
            assert top not in FORBIDDEN, f"{path.name} imports {module}"
            assert top != "patchflow", f"{path.name} imports {module}: use relative imports"
        elif level <= depth(path) + 1:
            pass  # an engine module (a sibling, or one of another stage's package)
        else:
            # above the engine, only the protocol and declarations modules (standard library only) may be used
            assert level == depth(path) + 2 and (module in ("protocol", "declarations") or (
                module == "" and set(names) <= {"protocol", "declarations"})), (
                f"{path.name} imports {'.' * level}{module} {names}")
    text = path.read_text(encoding="utf-8")
    assert "import qgis" not in text and "from qgis" not in text
    assert "__import__(" not in text
    if path.name != "operations.py":  # which imports sibling modules lazily, checked below
        assert "import_module(" not in text


def test_operations_import_only_engine_modules_lazily():
    import re

    text = (ENGINE / "operations.py").read_text(encoding="utf-8")
    assert 'import_module(f"{__package__}.{module}")' in text
    modules = set(re.findall(r'_lazy\("([\w.]+)"', text))
    known = {module_name(p).removeprefix("engine.") for p in ENGINE_FILES}
    assert modules and modules <= known, modules - known


@pytest.mark.parametrize("name", ["protocol.py", "declarations.py"])
def test_protocol_uses_the_standard_library_only(name):
    path = ROOT / "plugin" / name
    for level, module, _ in imports_of(path):
        assert level == 0, f"{name} has a relative import of {module}"
        top = module.split(".")[0]
        assert top == "__future__" or top in sys.stdlib_module_names, f"{name} imports {module}"
