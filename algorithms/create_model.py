"""Build a ready-to-train model from the zoo: a SavedModel folder with its model card."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
)

from .base import PatchFlowAlgorithm

INTEGER = QgsProcessingParameterNumber.Integer
# the engine's names (plugin/engine/models/zoo.py ARCHITECTURES), in the order the enum shows them
ARCHITECTURES = ("patch_cnn", "fcnn", "unet", "sr_generator")
ARCHITECTURE_LABELS = (
    "Patch CNN (OTBTF tutorial): 16×16 patch → one class",
    "FCNN (OTBTF API tutorial, U-Net-like): one class per pixel",
    "U-Net with batch normalisation: one class per pixel",
    "Super-resolution generator (SR4RS-style): LR patch → HR patch (a super-resolution dataset)",
)
OPTIONAL_NUMBERS = ("BANDS", "PATCH_SIZE", "N_CLASSES", "WIDTH")


class CreateModel(PatchFlowAlgorithm):
    NAME = "createmodel"
    DISPLAY_NAME = "Create model"
    GROUP_ID = "models"
    OPERATION = "create_model"
    HELP = (
        "Builds a ready-to-train network and writes it as a TensorFlow SavedModel folder with its model "
        "card (patchflow_card.json: inputs, bands, patch size, normalisation, outputs, receptive and "
        "expression fields, classes).<br><br>"
        "<b>Architectures</b>: <i>Patch CNN</i>, the small CNN of OTBTF's tutorial (trained on 16×16 "
        "patches, one class each; it then classifies whole images with one value per 4 pixels); "
        "<i>FCNN</i>, the U-Net-like network of OTBTF's API tutorial, and <i>U-Net</i> with batch "
        "normalisation, both one class per pixel, with a patch size that is a multiple of 16 and cropped "
        "outputs (class_crop16, probabilities_crop32, ...) for seamless serving.<br><br>"
        "With a <b>dataset manifest</b> (from Extract patches), the bands, patch size, classes and "
        "per-band normalisation come from it; otherwise give the number of bands, the patch size and the "
        "number of classes. <b>Width</b> scales the number of filters (empty: the architecture's default). "
        "An existing model folder is replaced only when <b>Overwrite</b> is ticked."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterEnum(
            "ARCHITECTURE", "Architecture", options=list(ARCHITECTURE_LABELS), defaultValue=0))
        self.addParameter(QgsProcessingParameterFile(
            "DATASET", "Dataset manifest (gives bands, patch size, classes, normalisation)", optional=True,
            fileFilter="JSON files (*.json)"))
        self.addParameter(QgsProcessingParameterNumber(
            "BANDS", "Number of bands (without a dataset)", INTEGER, optional=True, minValue=1))
        self.addParameter(QgsProcessingParameterNumber(
            "PATCH_SIZE", "Patch size (without a dataset)", INTEGER, optional=True, minValue=1))
        self.addParameter(QgsProcessingParameterNumber(
            "N_CLASSES", "Number of classes (without a dataset)", INTEGER, optional=True, minValue=2))
        self.addParameter(QgsProcessingParameterNumber(
            "WIDTH", "Width: filters of the first layer (empty: the architecture's default)", INTEGER,
            optional=True, minValue=1))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Random seed of the weights", INTEGER, 0))
        self.addParameter(QgsProcessingParameterBoolean("OVERWRITE", "Overwrite an existing model folder", False))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT", "Model folder (SavedModel)"))
        self.addOutput(QgsProcessingOutputFile("CARD", "Model card"))
        self.addOutput(QgsProcessingOutputNumber("PARAMETERS", "Number of parameters"))

    def process(self, parameters, context, feedback) -> dict:
        job = {
            "ARCHITECTURE": ARCHITECTURES[self.parameterAsEnum(parameters, "ARCHITECTURE", context)],
            "DATASET": self.parameterAsFile(parameters, "DATASET", context) or None,
            "SEED": self.parameterAsInt(parameters, "SEED", context),
            "OVERWRITE": self.parameterAsBoolean(parameters, "OVERWRITE", context),
            "OUTPUT": self.parameterAsFileOutput(parameters, "OUTPUT", context),
        }
        for name in OPTIONAL_NUMBERS:
            given = parameters.get(name) not in (None, "")
            job[name] = self.parameterAsInt(parameters, name, context) if given else None
        result = self.run_engine(job, [job["OUTPUT"]], feedback)
        return {"OUTPUT": result["OUTPUT"], "CARD": result["CARD"], "PARAMETERS": result["PARAMETERS"]}
