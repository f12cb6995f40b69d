"""Grid split into training / validation / test sets (OTBTF PatchesSelection)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from .base import PatchFlowAlgorithm
from .options import SPLIT_STRATEGIES, SPLIT_STRATEGY_LABELS

INTEGER = QgsProcessingParameterNumber.Integer
DOUBLE = QgsProcessingParameterNumber.Double
OUTPUTS = (
    ("OUTPUT_TRAIN", "Training patches"),
    ("OUTPUT_VALID", "Validation patches"),
    ("OUTPUT_TEST", "Test patches"),
)


class GridSplit(PatchFlowAlgorithm):
    NAME = "gridsplit"
    DISPLAY_NAME = "Split into training / validation / test on a grid"
    GROUP_ID = "sampling"
    OPERATION = "grid_split"
    HELP = (
        "Places patch centres on a regular grid over the image (patch size, step) and splits them into "
        "training, validation and test sets, as OTBTF's PatchesSelection does. Patches touching nodata "
        "are left out. Sets are decided per block of grid cells (block size), and where patches of two "
        "sets would overlap one is dropped: no pixel is seen by two sets, which honest accuracy needs."
        "<br>With <b>existing samples</b> (points), those are split instead: each joins the set of the "
        "block (block size x step pixels) it lies in, and is dropped if its patch reaches into a block "
        "of another set.<br>With a <b>label raster</b> (or the samples' class field) the points carry "
        "their class; 'balanced' keeps as many patches per class as the rarest class has."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Image (defines the grid; nodata is avoided)"))
        self.addParameter(QgsProcessingParameterNumber("PATCH_SIZE", "Patch size (pixels)", INTEGER, 32, minValue=1))
        self.addParameter(QgsProcessingParameterNumber(
            "STEP", "Grid step (pixels; default: the patch size)", INTEGER, None, optional=True, minValue=1))
        self.addParameter(QgsProcessingParameterEnum(
            "STRATEGY", "Strategy", options=list(SPLIT_STRATEGY_LABELS), defaultValue=0))
        for name, label, default in (("TRAIN", "Training", 0.7), ("VALID", "Validation", 0.15),
                                     ("TEST", "Test", 0.15)):
            self.addParameter(QgsProcessingParameterNumber(
                name, f"{label} proportion", DOUBLE, default, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(
            "BLOCK_SIZE", "Block size (grid cells per side decided together)", INTEGER, 1, minValue=1))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "LABELS", "Label raster (class at each patch centre)", optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "SAMPLES", "Existing samples to split instead of grid centres", [QgsProcessing.TypeVectorPoint],
            optional=True))
        self.addParameter(QgsProcessingParameterField(
            "CLASS_FIELD", "Class field of the samples", parentLayerParameterName="SAMPLES", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "NODATA", "Nodata value of the image (default: the raster's)", DOUBLE, None, optional=True))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Random seed", INTEGER, 0))
        for name, label in OUTPUTS:
            output = QgsProcessingParameterVectorDestination(
                name, label, type=QgsProcessing.TypeVectorPoint, optional=name != "OUTPUT_TRAIN")
            output.setSupportsNonFileBasedOutput(False)
            self.addParameter(output)
            self.addOutput(QgsProcessingOutputNumber(name.replace("OUTPUT", "COUNT"), f"Number of {label.lower()}"))

    def process(self, parameters, context, feedback) -> dict:
        job = {
            "INPUT": self.raster_path(parameters, "INPUT", context),
            "PATCH_SIZE": self.parameterAsInt(parameters, "PATCH_SIZE", context),
            "STRATEGY": SPLIT_STRATEGIES[self.parameterAsEnum(parameters, "STRATEGY", context)],
            "BLOCK_SIZE": self.parameterAsInt(parameters, "BLOCK_SIZE", context),
            "SEED": self.parameterAsInt(parameters, "SEED", context),
            "LABELS": self.raster_path(parameters, "LABELS", context),
            "SAMPLES": self.vector_path(parameters, "SAMPLES", context, feedback),
            "CLASS_FIELD": self.parameterAsString(parameters, "CLASS_FIELD", context) or None,
        }
        for name in ("TRAIN", "VALID", "TEST"):
            job[name] = self.parameterAsDouble(parameters, name, context)
        for name in ("STEP", "NODATA"):
            if parameters.get(name) not in (None, ""):
                job[name] = self.parameterAsDouble(parameters, name, context)
        outputs = [name for name, _ in OUTPUTS]
        for name in outputs:
            job[name] = self.parameterAsOutputLayer(parameters, name, context) or None
        result = self.run_engine(job, [job[n] for n in outputs if job[n]], feedback)
        for name in outputs:
            self.style_points(result.get(name), result.get(name.replace("OUTPUT", "STYLE")), context)
        return {key: value for key, value in result.items() if key != "CLASSES" and not key.startswith("STYLE")}
