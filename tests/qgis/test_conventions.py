"""QGIS's conventions for Processing algorithms: short labels (the details in help texts and
tooltips) and dialogs that fit QGIS's default 688 x 523 without scrolling sideways; a Help button
opening the algorithm's section of the documentation; tags and short descriptions the toolbox's
search finds; an icon per toolbox group; groups in workflow order; output layers named after what they are."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from patchflow.plugin.declarations import OPERATIONS

ROOT = Path(__file__).resolve().parents[2]
MAX_LABEL = 50  # characters; QGIS adds " [optional]" to an optional parameter's label
MAX_CHOICE = 40  # a drop-down list is as wide as its longest item
WORKFLOW = ("sampling", "patches", "models", "classification", "accuracy")
# what a toolbox search finds: each word of the search in a tag, the name or the short description
SEARCHES = {
    "tensorflow": {"createmodel", "trainmodel", "applymodel", "extractpatches", "trainclassifier", "classify"},
    "cnn": {"createmodel", "trainmodel", "applymodel", "extractpatches"},
    "segmentation": {"createmodel", "trainmodel", "applymodel", "extractpatches"},
    "random forest": {"trainclassifier", "classify"},
    "kappa": {"assessaccuracy", "compareaccuracy", "comparesr", "trainmodel", "trainclassifier"},
    "psnr": {"assessimagequality"},
}


def patchflow_algorithms(provider) -> list:
    algorithms = []
    for algorithm in provider.algorithms():
        instance = algorithm.createInstance()
        instance.initAlgorithm()
        algorithms.append(instance)
    return algorithms


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_labels_are_short_and_the_details_are_in_the_help(operation):
    long = [f"{p.name}: {p.label!r}" for p in OPERATIONS[operation].parameters if len(p.label) > MAX_LABEL]
    long += [f"{p.name} choice {label!r}" for p in OPERATIONS[operation].parameters for label in p.labels
             if len(label) > MAX_CHOICE]
    assert not long, f"shorten these labels, the details into Param(help=...): {long}"


def test_parameter_help_is_the_tooltip_and_in_the_help_text(provider):
    for algorithm in patchflow_algorithms(provider):
        declaration = OPERATIONS[algorithm.OPERATION]
        helped = [p for p in declaration.parameters if p.help]
        for param in helped:
            definition = algorithm.parameterDefinition(param.name)
            assert definition.help() == param.help and param.help in definition.toolTip(), param.name
            assert f"({param.name})</dt><dd>{param.help}</dd>" in algorithm.shortHelpString(), param.name
    trust = OPERATIONS["apply_model"].parameter("TRUST_MODEL")
    assert "refused" in trust.help and len(trust.label) <= MAX_LABEL


def test_every_dialog_fits_688_pixels_wide(provider):
    """Each toolbox dialog built headless (scripts/dialog_fit.py, QGIS with widgets in a subprocess) at
    QGIS's default 688 x 523, help panel shown: its parameters fit without a horizontal scroll bar."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "dialog_fit.py")], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr[-3000:]
    measures = json.loads(done.stdout)
    assert set(measures) == {algorithm.id() for algorithm in provider.algorithms()}
    for algorithm_id, measure in measures.items():
        assert measure["dialog"] == [688, 523], algorithm_id
        assert 0 < measure["width"] <= measure["room"] and measure["scroll"] == 0, (algorithm_id, measure)


def anchors(path: Path) -> set[str]:
    """The anchors a GitHub page of this Markdown file has: <a id/name> tags and heading slugs."""
    text = path.read_text(encoding="utf-8")
    found = set(re.findall(r'<a (?:id|name)="([^"]+)"', text))
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.M):
        found.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return found


def test_help_button_opens_the_algorithm_s_section(provider):
    from patchflow.plugin.provider import HELP_PAGE

    page = re.fullmatch(r"https://github\.com/[^/]+/[^/]+/blob/[^/]+/(.+)", HELP_PAGE)
    assert page, HELP_PAGE
    known = anchors(ROOT / page.group(1))  # the page in this checkout
    for algorithm in patchflow_algorithms(provider):
        url, _, anchor = algorithm.helpUrl().partition("#")
        assert url == HELP_PAGE and anchor == algorithm.name(), algorithm.helpUrl()
        assert anchor in known, f"{page.group(1)} has no anchor #{anchor}"


def test_short_descriptions_icons_and_translatable_strings(provider):
    from qgis.PyQt.QtCore import QCoreApplication

    for algorithm in patchflow_algorithms(provider):
        assert 20 < len(algorithm.shortDescription()) <= 120 and algorithm.shortDescription().endswith(".")
        assert not algorithm.icon().isNull()
        assert algorithm.displayName() == QCoreApplication.translate("PatchFlow", algorithm.DISPLAY_NAME)


def rendered(svg: str, size: int):
    """The icon drawn at ``size`` x ``size`` px on a transparent image (QSvgRenderer, offscreen)."""
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QImage, QPainter
    from qgis.PyQt.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(svg)
    assert renderer.isValid(), svg
    image = QImage(size, size, QImage.Format_ARGB32)
    image.fill(Qt.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    return image


def test_each_group_has_its_own_icon_legible_at_16_and_24_px(provider):
    import xml.etree.ElementTree as ElementTree

    by_group: dict[str, set[str]] = {}
    for algorithm in patchflow_algorithms(provider):
        svg = Path(algorithm.svgIconPath())
        assert svg.is_file() and svg.resolve().parent == (ROOT / "resources" / "icons").resolve(), svg
        assert ElementTree.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg", svg
        by_group.setdefault(algorithm.groupId(), set()).add(str(svg))
    assert set(by_group) == set(WORKFLOW) and all(len(icons) == 1 for icons in by_group.values()), by_group
    icons = [next(iter(icons)) for icons in by_group.values()]
    assert len(set(icons)) == len(WORKFLOW), "two groups share an icon"
    looks = set()
    for svg in icons:
        for size in (16, 24):
            image = rendered(svg, size)
            pixels = [image.pixel(x, y) for y in range(size) for x in range(size)]
            opaque = [p for p in pixels if p >> 24 == 0xFF]
            assert len(opaque) > 0.7 * len(pixels), f"{svg} at {size} px is mostly blank"
            # a glyph on a background: at least two clearly different colours among the opaque pixels
            assert len({p & 0xF0F0F0 for p in opaque}) >= 2, f"{svg} at {size} px is one flat colour"
        looks.add(image.pixel(1, size // 2) & 0xFFFFFF)  # the background colour, at the left edge
    assert len(looks) == len(WORKFLOW), "two groups' icons have the same colour"


def toolbox_algorithms(filter_string: str) -> set[str]:
    """The PatchFlow algorithms QGIS's toolbox shows for a search."""
    from qgis.core import QgsApplication
    from qgis.gui import QgsProcessingToolboxProxyModel
    from qgis.PyQt.QtCore import QModelIndex

    model = QgsProcessingToolboxProxyModel(None, QgsApplication.processingRegistry())
    model.setFilterString(filter_string)
    found: set[str] = set()

    def walk(parent) -> None:
        for row in range(model.rowCount(parent)):
            index = model.index(row, 0, parent)
            algorithm = model.toolboxModel().algorithmForIndex(model.mapToSource(index))
            if algorithm is not None and algorithm.provider() is not None \
                    and algorithm.provider().id() == "patchflow":
                found.add(algorithm.name())
            walk(index)

    walk(QModelIndex())
    return found


@pytest.mark.parametrize("search", sorted(SEARCHES))
def test_toolbox_search_finds_the_right_algorithms(provider, search):
    assert toolbox_algorithms(search) == SEARCHES[search]


def test_toolbox_groups_read_in_workflow_order(provider):
    from qgis.core import QgsApplication
    from qgis.gui import QgsProcessingToolboxProxyModel
    from qgis.PyQt.QtCore import QModelIndex

    from patchflow.algorithms.base import GROUPS

    model = QgsProcessingToolboxProxyModel(None, QgsApplication.processingRegistry())
    top = [model.index(row, 0, QModelIndex()) for row in range(model.rowCount(QModelIndex()))]
    node = next(index for index in top if model.data(index) == "PatchFlow")
    shown = [model.data(model.index(row, 0, node)) for row in range(model.rowCount(node))]
    assert shown == [GROUPS[group] for group in WORKFLOW]
    assert {algorithm.groupId() for algorithm in provider.algorithms()} == set(WORKFLOW)


def label_raster(path: Path) -> Path:
    from patchflow.tests import helpers

    labels = np.zeros((40, 40), dtype=np.uint8)
    labels[:20], labels[20:] = 1, 2
    helpers.write_raster(path, labels, 0, (500000.0, 4500000.0), 10.0, 32631)
    return path


def test_output_layers_say_what_they_are_and_two_runs_are_told_apart(provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject

    project = QgsProject.instance()
    project.removeAllMapLayers()
    raster = label_raster(tmp_path / "landcover.tif")
    parameters = {"INPUT": str(raster), "NUMBER": 5, "PATCH_SIZE": 1, "OUTPUT": "TEMPORARY_OUTPUT"}
    names = []
    for _ in range(2):
        context = QgsProcessingContext()
        context.setProject(project)
        processing.runAndLoadResults("patchflow:samplefromlabelraster", parameters, context=context,
                                     feedback=QgsProcessingFeedback())
        names = sorted(layer.name() for layer in project.mapLayers().values())
    assert names == ["Samples (landcover)", "Samples (landcover) 2"]
    # a file the user names keeps its name (QGIS's default: the file's base name)
    context = QgsProcessingContext()
    context.setProject(project)
    processing.runAndLoadResults("patchflow:samplefromlabelraster",
                                 {**parameters, "OUTPUT": str(tmp_path / "my_samples.gpkg")}, context=context,
                                 feedback=QgsProcessingFeedback())
    assert "my_samples" in {layer.name() for layer in project.mapLayers().values()}
    project.removeAllMapLayers()


def test_apply_model_and_classify_layers_name_the_model(provider):
    from patchflow.algorithms.apply_model import ApplyModel
    from patchflow.algorithms.classify import Classify
    from patchflow.plugin.declarations import OPERATIONS as DECLARED

    output = DECLARED["apply_model"].parameter("OUTPUT")
    apply = ApplyModel()
    assert apply.output_layer_name(output, {"MODEL": "/m/cnn_30_epochs"}, {"KIND": "class"}) == \
        "Class map (cnn_30_epochs)"
    assert apply.output_layer_name(output, {"MODEL": "/m/sr.keras"}, {"KIND": "image"}) == "Image (sr)"
    confidence = DECLARED["classify"].parameter("OUTPUT_CONFIDENCE")
    assert Classify().output_layer_name(confidence, {"CLASSIFIER": "/c/rf.skops"}, {}) == "Confidence (rf)"


def test_patch_size_defaults_agree_along_the_chain():
    """Sampling (the patch must fit), the grid split (one patch per cell) and extraction (the patch
    cut) mean the same patch: the same default, the patch CNN's receptive field."""
    from patchflow.plugin.engine.models.zoo import ARCHITECTURES

    sizes = {name: OPERATIONS[name].parameter(key).default for name, key in (
        ("sample_label_raster", "PATCH_SIZE"), ("sample_vector", "PATCH_SIZE"), ("grid_split", "PATCH_SIZE"),
        ("extract_patches", "PATCH_SIZE1"))}
    assert set(sizes.values()) == {ARCHITECTURES["patch_cnn"].patch_size}, sizes
    assert all("patch" in OPERATIONS[name].parameter(key).help.lower() for name, key in (
        ("sample_label_raster", "PATCH_SIZE"), ("grid_split", "PATCH_SIZE"), ("extract_patches", "PATCH_SIZE1")))
