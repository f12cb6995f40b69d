#!/usr/bin/env python3
"""Writes resources/patchflow_chain.model3: the demo's chain as a graphical-modeler model.

    .venv/bin/python scripts/make_model3.py [--output PATH]

samples (sample from vector) -> grid split -> extract patches (training, validation, test) -> train
the patch CNN (validation: monitored; test: scored once, never used to choose) -> apply it to the
whole image -> assess the map at the test points. Open the file
in QGIS's graphical modeler, or run it headless:

    bash scripts/qgis_process.sh run resources/patchflow_chain.model3 -- image=IMAGE labels=VECTOR \\
        class_field=FIELD apply:class_map=MAP.tif train:model=FOLDER assess:accuracy_report=REPORT.html

Each child's parameters not listed here hold the algorithm's default, written in the file, as the
modeler dialog does. The number inputs reach the children as ``coalesce(@input, default)``: QGIS 3.22
does not apply a model input's default when qgis_process leaves the input out (the children would
get their own defaults: patch size 1 for the samples, 32 for the split), and the modeler still draws
these links.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL3 = ROOT / "resources" / "patchflow_chain.model3"

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["QT_HASH_SEED"] = "0"  # Qt writes XML attributes in hash order: a fixed seed makes the file reproducible
os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsProcessing,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)
from qgis.PyQt.QtCore import QPointF  # noqa: E402

INTEGER = QgsProcessingParameterNumber.Integer
NUMBERS = {"patch_size": 16, "epochs": 30, "split_seed": 0}  # the number inputs' defaults
_KEEP: list = []
HELP = (
    "The PatchFlow chain in one run: samples inside labelled polygons (or at labelled points), split on a "
    "grid into training (60 %), validation (20 %) and test (20 %) by blocks of 4 × 4 patches (stratified: "
    "every class in every set when the data allows it), patches extracted for each set, the patch CNN trained "
    "on them (the validation set is monitored, the test set scored once at the end), applied to the whole "
    "image, and the class map assessed at the test points (points the training never saw nor chose by)."
    "<br><br>Outputs: the class map (a GeoTIFF with its .qml style beside it), the trained model folder "
    "(the training report is its report.html) and the accuracy report (HTML). "
    "On the North Carolina demo data use split seed 3 (with seed 0 the training set gets no agriculture)."
)
PARAMETER_HELP = {
    "image": "The image to learn from and to map (every band is used).",
    "labels": "Polygons or points carrying the class of what they cover.",
    "class_field": "Their class field: integer class ids, or text (classes numbered in alphabetical order).",
    "patch_size": "Patch size in pixels: the CNN's receptive field (16 for the zoo's patch CNN).",
    "epochs": "Training epochs.",
    "split_seed": "Random seed of the grid split.",
}


class Chain:
    """Builds the model: inputs, children fed by inputs or other children, model outputs."""

    def __init__(self) -> None:
        self.model = QgsProcessingModelAlgorithm("patchflow_chain", "PatchFlow")
        self.registry = QgsApplication.processingRegistry()

    def add_input(self, definition, x: float, y: float) -> None:
        component = QgsProcessingModelParameter(definition.name())
        component.setPosition(QPointF(x, y))
        self.model.addModelParameter(definition, component)

    def add_child(self, algorithm_id: str, child_id: str, description: str, sources: dict, x: float, y: float,
                  outputs: dict[str, tuple[str, str]] | None = None) -> None:
        """sources: parameter -> ("input", name) | ("child", child_id, output) | a static value, or a list
        of those (a multiple-input parameter).
        outputs: model output name -> (child destination parameter, description)."""
        algorithm = self.registry.algorithmById(algorithm_id)
        if algorithm is None:
            raise SystemExit(f"make_model3: {algorithm_id} is not registered (is PatchFlow's provider loaded?)")
        child = QgsProcessingModelChildAlgorithm(algorithm_id)
        child.setChildId(child_id)
        child.setDescription(description)
        child.setPosition(QPointF(x, y))
        for definition in algorithm.parameterDefinitions():
            name = definition.name()
            if name in sources:
                given = sources[name]
                child.addParameterSources(name, [source_of(s) for s in given] if isinstance(given, list)
                                          else [source_of(given)])
            elif not definition.isDestination() and definition.defaultValue() is not None:
                child.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(
                    definition.defaultValue())])
        model_outputs = {}
        for index, (name, (parameter, text)) in enumerate((outputs or {}).items()):
            output = QgsProcessingModelOutput(name, text)
            output.setChildId(child_id)
            output.setChildOutputName(parameter)
            output.setMandatory(True)
            output.setPosition(QPointF(x + 220, y + 60 + 50 * index))
            model_outputs[name] = output
        child.setModelOutputs(model_outputs)
        self.model.addChildAlgorithm(child)


def source_of(source) -> QgsProcessingModelChildParameterSource:
    if isinstance(source, tuple) and source[0] == "input" and source[1] in NUMBERS:
        return QgsProcessingModelChildParameterSource.fromExpression(f"coalesce(@{source[1]}, {NUMBERS[source[1]]})")
    if isinstance(source, tuple) and source[0] == "input":
        return QgsProcessingModelChildParameterSource.fromModelParameter(source[1])
    if isinstance(source, tuple) and source[0] == "child":
        return QgsProcessingModelChildParameterSource.fromChildOutput(source[1], source[2])
    return QgsProcessingModelChildParameterSource.fromStaticValue(source)


def add_samples_and_split(chain: Chain, image: tuple, size: tuple) -> None:
    """Samples at every pixel of the labels (on ``image``'s grid), split on a grid 60/20/20 by blocks of 4 x 4
    patches of ``size``, seeded by the split_seed input: the start of the demo's chain and of the fusion one."""
    chain.add_child("patchflow:samplefromvector", "samples", "Samples", {
        "INPUT": ("input", "labels"), "FIELD": ("input", "class_field"), "RASTER": image,
        "STRATEGY": 1, "PATCH_SIZE": size}, 240, 200)
    chain.add_child("patchflow:gridsplit", "split", "Grid split", {
        "INPUT": image, "SAMPLES": ("child", "samples", "OUTPUT"), "CLASS_FIELD": "class", "PATCH_SIZE": size,
        "BLOCK_SIZE": 4, "TRAIN": 0.6, "VALID": 0.2, "TEST": 0.2, "SEED": ("input", "split_seed")}, 240, 320)


def build_model() -> QgsProcessingModelAlgorithm:
    chain = Chain()
    chain.add_input(QgsProcessingParameterRasterLayer("image", "Image"), 120, 60)
    chain.add_input(QgsProcessingParameterFeatureSource(
        "labels", "Labelled polygons or points", [QgsProcessing.TypeVectorPolygon, QgsProcessing.TypeVectorPoint]),
        340, 60)
    chain.add_input(QgsProcessingParameterField(
        "class_field", "Class field", parentLayerParameterName="labels", type=QgsProcessingParameterField.Any),
        560, 60)
    chain.add_input(QgsProcessingParameterNumber(
        "patch_size", "Patch size (pixels)", INTEGER, NUMBERS["patch_size"], minValue=1), 780, 60)
    chain.add_input(QgsProcessingParameterNumber("epochs", "Epochs", INTEGER, NUMBERS["epochs"], minValue=1), 1000, 60)
    chain.add_input(QgsProcessingParameterNumber("split_seed", "Split seed", INTEGER, NUMBERS["split_seed"]), 1220, 60)

    image, size = ("input", "image"), ("input", "patch_size")
    add_samples_and_split(chain, image, size)
    for row, (name, title) in enumerate((("train", "training"), ("valid", "validation"), ("test", "test"))):
        chain.add_child("patchflow:extractpatches", f"patches_{name}", f"Extract patches ({title})", {
                            "INPUT": ("child", "split", f"OUTPUT_{name.upper()}"), "SOURCE1": image,
                            "PATCH_SIZE1": size, "CLASS_FIELD": "class"}, 40 + 240 * row, 440)
    chain.add_child("patchflow:trainmodel", "train", "Train the patch CNN", {
        "TRAIN": ("child", "patches_train", "OUTPUT"), "VALID": ("child", "patches_valid", "OUTPUT"),
        "TEST": ("child", "patches_test", "OUTPUT"), "ARCHITECTURE": 0, "EPOCHS": ("input", "epochs"),
        "OVERWRITE": True}, 240, 560,
        {"model": ("OUTPUT", "Trained model folder (training report: report.html in it)")})
    chain.add_child("patchflow:applymodel", "apply", "Apply the model", {
        "MODEL": ("child", "train", "OUTPUT"), "SOURCE1": image}, 240, 700,
        {"class_map": ("OUTPUT", "Class map (GeoTIFF, styled by the .qml beside it)")})
    chain.add_child("patchflow:assessaccuracy", "assess", "Assess accuracy at the test points", {
        "INPUT": ("child", "apply", "OUTPUT"), "REFERENCE": ("child", "split", "OUTPUT_TEST"),
        "CLASS_FIELD": "class"}, 240, 840,
        {"accuracy_report": ("OUTPUT_HTML", "Accuracy report (HTML)")})

    model = chain.model
    model.setHelpContent({"ALG_DESC": HELP, "ALG_CREATOR": "PatchFlow (scripts/make_model3.py)", **PARAMETER_HELP})
    ok, errors = model.validate()
    if not ok:
        raise SystemExit("make_model3: the model does not validate:\n" + "\n".join(errors))
    return model


def start_qgis(gui: bool = False) -> QgsApplication:
    """QGIS (with widgets when ``gui``), Processing, and PatchFlow's provider from this checkout."""
    app = QgsApplication([], gui)
    app.initQgis()
    sys.path.insert(0, str(Path(app.pkgDataPath()) / "python" / "plugins"))
    links = ROOT / ".cache" / "plugins"
    links.mkdir(parents=True, exist_ok=True)
    if not (links / "patchflow").exists():
        (links / "patchflow").symlink_to(ROOT)
    sys.path.insert(0, str(links))
    from processing.core.Processing import Processing

    from patchflow.plugin.provider import PatchFlowProvider

    Processing.initialize()
    registry = QgsApplication.processingRegistry()
    if registry.providerById("patchflow") is None:
        provider = PatchFlowProvider()
        registry.addProvider(provider)
        _KEEP.append(provider)  # the registry does not keep the Python object alive
    return app


def write_model(build, default: Path, description: str, argv: list[str] | None = None) -> int:
    """The command line of a model3 generator: ``build()`` written to --output (``default``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--output", type=Path, default=default)
    args = parser.parse_args(argv)
    app = start_qgis()
    model = build()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not model.toFile(str(args.output)):
        raise SystemExit(f"could not write {args.output}")
    print(args.output)
    del model
    app.exitQgis()
    return 0


def main(argv: list[str] | None = None) -> int:
    return write_model(build_model, MODEL3, __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
