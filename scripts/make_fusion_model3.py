#!/usr/bin/env python3
"""Writes resources/fusion_chain.model3: "two sources -> fusion model -> map" as a graphical-modeler model.

    .venv/bin/python scripts/make_fusion_model3.py [--output PATH]

Two images of the same ground at their own resolutions (e.g. a 1.5 m Spot-6 scene and a 10 m Sentinel-2
one; in the same CRS): samples inside the labelled polygons (or at labelled points) on the fine image's
grid, a grid split into training / validation / test, patches of both sources at every sample (the
coarse source's patch covers the fine patch's ground, at its own pixel size), the two-branch fusion CNN
(one CNN branch per source, features concatenated) trained on them, applied to both images (the map on
the fine image's grid) and assessed at the test points. Headless:

    bash scripts/qgis_process.sh run resources/fusion_chain.model3 -- image=FINE.tif coarse_image=COARSE.tif \\
        labels=VECTOR class_field=FIELD apply:class_map=MAP.tif train:model=FOLDER \\
        assess:accuracy_report=REPORT.html
"""

from __future__ import annotations

import sys
from pathlib import Path

import make_model3  # scripts/make_model3.py: the model builder and QGIS start-up it shares
from make_model3 import INTEGER, Chain
from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from plugin.declarations import ARCHITECTURES  # noqa: E402

MODEL3 = ROOT / "resources" / "fusion_chain.model3"
ARCHITECTURE = "fusion_cnn"
NUMBERS = {"patch_size": 16, "epochs": 30, "split_seed": 0}
make_model3.NUMBERS.update(NUMBERS)
HELP = (
    "Fuse two sensors at their own resolutions: samples inside the labelled polygons (or at labelled points) "
    "on the fine image's grid, split on a grid into training (60 %), validation (20 %) and test (20 %) by "
    "blocks of 4 × 4 patches, patches of both images at every sample (the coarse image's patch covers the "
    "fine patch's ground at its own pixel size, to the nearest whole pixel: 16 px at 1.5 m, 2 px at 10 m), "
    "the two-branch fusion CNN (a CNN branch per image, features concatenated, then dense) trained on them, "
    "applied to both images (the map follows the fine image's grid) and assessed at the test points."
    "<br><br>Both images must be in the same CRS and overlap; the coarse image is not "
    "resampled. Outputs: the class map (GeoTIFF with its .qml style), the trained model folder (its "
    "report.html) and the accuracy report (HTML)."
)
PARAMETER_HELP = {
    "image": "The fine image: the map follows its grid (every band is used).",
    "coarse_image": "The second image, at its own (coarser) resolution, same CRS (every band is used).",
    "labels": "Polygons or points carrying the class of what they cover.",
    "class_field": "Their class field: integer class ids, or text (classes numbered in alphabetical order).",
    "patch_size": "Patch size in pixels of the fine image (the coarse image's covers the same ground).",
    "epochs": "Training epochs.",
    "split_seed": "Random seed of the grid split.",
}


def build_model():
    chain = Chain()
    chain.model.setName("fusion_chain")
    chain.add_input(QgsProcessingParameterRasterLayer("image", "Fine image (the map's grid)"), 120, 60)
    chain.add_input(QgsProcessingParameterRasterLayer("coarse_image", "Coarse image (same CRS)"), 340, 60)
    chain.add_input(QgsProcessingParameterFeatureSource(
        "labels", "Labelled polygons or points", [QgsProcessing.TypeVectorPolygon, QgsProcessing.TypeVectorPoint]),
        560, 60)
    chain.add_input(QgsProcessingParameterField(
        "class_field", "Class field", parentLayerParameterName="labels", type=QgsProcessingParameterField.Any),
        780, 60)
    chain.add_input(QgsProcessingParameterNumber(
        "patch_size", "Patch size of the fine image (pixels)", INTEGER, NUMBERS["patch_size"], minValue=2),
        1000, 60)
    chain.add_input(QgsProcessingParameterNumber("epochs", "Epochs", INTEGER, NUMBERS["epochs"], minValue=1), 1220, 60)
    chain.add_input(QgsProcessingParameterNumber("split_seed", "Split seed", INTEGER, NUMBERS["split_seed"]), 1440, 60)

    image, coarse, size = ("input", "image"), ("input", "coarse_image"), ("input", "patch_size")
    make_model3.add_samples_and_split(chain, image, size)
    for row, (name, title) in enumerate((("train", "training"), ("valid", "validation"), ("test", "test"))):
        chain.add_child("patchflow:extractpatches", f"patches_{name}", f"Extract patches of both images ({title})", {
                            "INPUT": ("child", "split", f"OUTPUT_{name.upper()}"), "SOURCE1": image,
                            "PATCH_SIZE1": size, "SOURCE2": coarse, "CLASS_FIELD": "class"}, 40 + 240 * row, 440)
    architecture = [value for value, _ in ARCHITECTURES].index(ARCHITECTURE)
    chain.add_child("patchflow:trainmodel", "train", "Train the two-branch fusion CNN", {
        "TRAIN": ("child", "patches_train", "OUTPUT"), "VALID": ("child", "patches_valid", "OUTPUT"),
        "TEST": ("child", "patches_test", "OUTPUT"), "ARCHITECTURE": architecture, "EPOCHS": ("input", "epochs"),
        "OVERWRITE": True}, 240, 560,
        {"model": ("OUTPUT", "Trained model folder (training report: report.html in it)")})
    chain.add_child("patchflow:applymodel", "apply", "Apply the model to both images", {
        "MODEL": ("child", "train", "OUTPUT"), "SOURCE1": image, "SOURCE2": coarse}, 240, 700,
        {"class_map": ("OUTPUT", "Class map (GeoTIFF, styled by the .qml beside it)")})
    chain.add_child("patchflow:assessaccuracy", "assess", "Assess accuracy at the test points", {
        "INPUT": ("child", "apply", "OUTPUT"), "REFERENCE": ("child", "split", "OUTPUT_TEST"),
        "CLASS_FIELD": "class"}, 240, 840,
        {"accuracy_report": ("OUTPUT_HTML", "Accuracy report (HTML)")})

    model = chain.model
    model.setHelpContent({"ALG_DESC": HELP, "ALG_CREATOR": "PatchFlow (scripts/make_fusion_model3.py)",
                          **PARAMETER_HELP})
    ok, errors = model.validate()
    if not ok:
        raise SystemExit("make_fusion_model3: the model does not validate:\n" + "\n".join(errors))
    return model


def main(argv: list[str] | None = None) -> int:
    return make_model3.write_model(build_model, MODEL3, __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
