#!/usr/bin/env python3
"""Writes resources/does_sr_help.model3: "Does super-resolution help?" as a graphical-modeler model.

    .venv/bin/python scripts/make_sr_model3.py [--output PATH]

One child, patchflow:comparesr (Does super-resolution help?), fed by the model's inputs: the HR image,
an optional real LR image, the labels (a label raster on the HR grid, or polygons/points with their
class field), the classifier, the repeats, the scale and the training share of the width. The other
settings keep comparesr's defaults. Output: the comparison folder (comparison.html with the answer,
comparison.json, comparison.csv, the images, the maps). Headless:

    bash scripts/qgis_process.sh run resources/does_sr_help.model3 -- hr=HR.tif labels=POLYGONS.shp \\
        class_field=label classifier=2 repeats=3 compare:comparison=FOLDER
"""

from __future__ import annotations

import sys
from pathlib import Path

import make_model3  # scripts/make_model3.py: the model builder and QGIS start-up it shares
from make_model3 import INTEGER, Chain
from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

ROOT = Path(__file__).resolve().parent.parent
MODEL3 = ROOT / "resources" / "does_sr_help.model3"
DOUBLE = QgsProcessingParameterNumber.Double
# number (and enum) inputs' defaults, comparesr's own, reaching the child as coalesce(@input, default)
# (QGIS 3.22 does not apply a model input's default when qgis_process leaves the input out: see make_model3.py)
NUMBERS = {"classifier": 0, "repeats": 3, "scale": 4, "train_share": 0.6}
make_model3.NUMBERS.update(NUMBERS)
CLASSIFIERS = ("FCNN: a class per pixel", "U-Net: a class per pixel", "Random Forest, spatial features")
# model input -> comparesr parameter
INPUTS = {"hr": "HR", "lr": "LR", "label_raster": "LABELS", "labels": "REFERENCE", "class_field": "CLASS_FIELD",
          "classifier": "CLASSIFIER", "repeats": "REPEATS", "scale": "SCALE", "train_share": "TRAIN_SHARE"}
HELP = (
    "Does super-resolution help a classifier, on your data? The whole experiment is one step, "
    "<b>Does super-resolution help?</b> (patchflow:comparesr): four versions of the HR image (LR: a real LR "
    "image, else the HR degraded ×scale by Wald's protocol; bicubic: the LR upsampled by cubic convolution; "
    "SR: the zoo's SR generator trained on the training part only, applied to the LR; HR), the same classifier "
    "trained on each version's training part (the left share of the width) with seeds 0 to repeats − 1, every "
    "map scored at the labelled held-out pixels.<br><br>Output: the comparison folder, <i>comparison.html</i> "
    "first (the answer in one sentence with its confidence, kappa/OA/F1 per version as mean ± sd, bootstrap "
    "intervals, McNemar and paired tests, the SR's image quality, the four images and maps side by side), "
    "<i>comparison.json</i>, <i>comparison.csv</i>. For the other settings (patch size, epochs, training and "
    "held-out areas) run the algorithm itself. scripts/sr_experiment.py (make sr-experiment) runs the same "
    "algorithm from the command line."
)
PARAMETER_HELP = {
    "hr": "The high-resolution image (every band is used): the HR version and the SR model's target.",
    "lr": "Optional: a real LR image of another sensor over the same ground, in the HR image's CRS. Empty: the "
          "HR degraded by the scale.",
    "label_raster": "Class ids on the HR image's grid (nodata, else 0: no label). Or give polygons or points.",
    "labels": "Or: polygons or points carrying the class of what they cover, burnt on the HR grid.",
    "class_field": "Their class field: integer class ids, or text.",
    "classifier": "The same classifier, with the same settings, is trained on each version.",
    "repeats": "Each version is trained with seeds 0 to repeats − 1: scores as mean ± sd, tests across them.",
    "scale": "LR pixel / HR pixel (used when no LR image is given).",
    "train_share": "The left part of the width (this share) trains the SR model and the classifiers; the right "
                   "part is held out and scored.",
}


def build_model():
    chain = Chain()
    chain.model.setName("does_sr_help")
    chain.model.setGroup("PatchFlow")
    layers = [QgsProcessing.TypeVectorPolygon, QgsProcessing.TypeVectorPoint]
    definitions = [
        QgsProcessingParameterRasterLayer("hr", "HR image"),
        QgsProcessingParameterRasterLayer("lr", "Real LR image (another sensor)", optional=True),
        QgsProcessingParameterRasterLayer("label_raster", "Label raster on the HR grid", optional=True),
        QgsProcessingParameterFeatureSource("labels", "Or: labelled polygons or points", layers, optional=True),
        QgsProcessingParameterField("class_field", "Class field (integer or text)", parentLayerParameterName="labels",
                                    type=QgsProcessingParameterField.Any, optional=True),
        QgsProcessingParameterEnum("classifier", "Classifier trained on each version", list(CLASSIFIERS), False,
                                   NUMBERS["classifier"]),
        QgsProcessingParameterNumber("repeats", "Repeats (seeds 0, 1, ...)", INTEGER, NUMBERS["repeats"],
                                     minValue=1, maxValue=20),
        QgsProcessingParameterNumber("scale", "Scale factor (HR degraded by it)", INTEGER, NUMBERS["scale"],
                                     minValue=2, maxValue=8),
        QgsProcessingParameterNumber("train_share", "Training share of the width (left part)", DOUBLE,
                                     NUMBERS["train_share"], minValue=0.1, maxValue=0.9),
    ]
    for column, definition in enumerate(definitions):
        chain.add_input(definition, 120 + 220 * column, 60)
    chain.add_child("patchflow:comparesr", "compare", "Does super-resolution help?",
                    {parameter: ("input", name) for name, parameter in INPUTS.items()}, 900, 220,
                    {"comparison": ("OUTPUT", "Comparison folder (comparison.html: the answer and the tables)")})
    model = chain.model
    model.setHelpContent({"ALG_DESC": HELP, "ALG_CREATOR": "PatchFlow (scripts/make_sr_model3.py)",
                          **PARAMETER_HELP})
    ok, errors = model.validate()
    if not ok:
        raise SystemExit("make_sr_model3: the model does not validate:\n" + "\n".join(errors))
    return model


def main(argv: list[str] | None = None) -> int:
    return make_model3.write_model(build_model, MODEL3, __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
