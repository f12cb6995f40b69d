"""The plugin as QGIS loads it: metadata, classFactory, provider registration, layering."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from qgis.core import QgsApplication

ROOT = Path(__file__).resolve().parents[2]
_PLUGINS: list = []


def test_metadata_is_complete():
    config = configparser.ConfigParser()
    config.read(ROOT / "metadata.txt")
    general = config["general"]
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email",
                "repository", "tracker", "icon"):
        assert general.get(key, "").strip(), key
    assert general["name"] == "PatchFlow"
    assert general["hasProcessingProvider"] == "yes"
    assert general["qgisMinimumVersion"] == "3.22"
    assert (ROOT / general["icon"]).exists()


def test_class_factory_registers_and_unloads_the_provider(qgis_app, qgis_processing):
    import patchflow

    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("patchflow")
    if existing is not None:
        registry.removeProvider(existing)
    plugin = patchflow.classFactory(None)
    plugin.initProcessing()
    assert registry.providerById("patchflow") is not None
    assert registry.algorithmById("patchflow:extractpatches") is not None
    plugin.unload()
    assert registry.providerById("patchflow") is None
    _PLUGINS.append(plugin)


def test_qgis_side_never_imports_tensorflow_and_qt_only_through_qgis_pyqt():
    for path in list((ROOT / "algorithms").glob("*.py")) + list((ROOT / "plugin").glob("*.py")):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+tensorflow", text, re.M), path
        assert not re.search(r"^\s*(from|import)\s+PyQt[56]", text, re.M), path


def test_every_algorithm_has_help_and_a_file_of_its_own(provider):
    files = {p.stem for p in (ROOT / "algorithms").glob("*.py")} - {"__init__", "base", "options"}
    assert len(files) == len(provider.algorithms())
    for algorithm in provider.algorithms():
        assert len(algorithm.shortHelpString()) > 100, algorithm.id()
        assert algorithm.group() and algorithm.displayName()
