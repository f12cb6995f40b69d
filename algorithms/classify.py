"""Classify a raster with a classifier on deep features or pixel values (OTBTF
ImageClassifierFromDeepFeatures)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
)

from .base import TRUST_HELP, PatchFlowAlgorithm


class Classify(PatchFlowAlgorithm):
    NAME = "classify"
    DISPLAY_NAME = "Classify with deep features (or pixels)"
    GROUP_ID = "classification"
    OPERATION = "classify"
    HELP = (
        "Classifies a raster, block by block, with a classifier from <i>Train classifier on deep features "
        "(or pixels)</i>, as OTBTF's ImageClassifierFromDeepFeatures does.<br><br>"
        "The <b>input</b> is one raster, or several stacked (same grid), with the bands the classifier was "
        "trained on, in the same order. For a deep-features classifier every pixel is classified from the "
        "patch centred on it (the network of the classifier's description, which must still be where it "
        "was), the scene's edges mirrored; for a per-pixel classifier from its band values. Pixels that "
        "are nodata in any band stay nodata.<br><br>"
        "Outputs: the class map (class ids, colour table and class names, styled in QGIS by "
        "<i>&lt;map&gt;.qml</i>) and optionally the confidence (the classifier's highest class "
        "probability, -1 where nodata).<br><br>"
        "The classifier is a <i>.skops</i> file, which loads without running code; a <i>.joblib</i> one (older "
        "PatchFlow versions) is a pickle, which can run any code: it is refused unless TRUST_MODEL is ticked "
        "(train it again to get a .skops file)." + TRUST_HELP
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "INPUT", "Raster(s) to classify, stacked", QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterFile(
            "CLASSIFIER", "Classifier (.skops, its .json beside it)",
            fileFilter="Classifier files (*.skops);;Legacy pickle classifiers, need TRUST_MODEL (*.joblib *.pkl)"))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Class map"))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "OUTPUT_CONFIDENCE", "Confidence (highest class probability)", optional=True, createByDefault=False))
        self.add_trust_parameter()
        self.addOutput(QgsProcessingOutputFile("STYLE", "Class map style (QML)"))
        self.addOutput(QgsProcessingOutputNumber("COUNT", "Pixels classified"))

    def process(self, parameters, context, feedback) -> dict:
        confidence = self.parameterAsOutputLayer(parameters, "OUTPUT_CONFIDENCE", context)
        job = {
            "INPUT": self.raster_paths(parameters, "INPUT", context),
            "CLASSIFIER": self.parameterAsFile(parameters, "CLASSIFIER", context),
            "OUTPUT": self.parameterAsOutputLayer(parameters, "OUTPUT", context),
            "OUTPUT_CONFIDENCE": confidence or None,
            "TRUST_MODEL": self.trusted(parameters, context),
        }
        paths = [job["OUTPUT"]] + ([confidence] if confidence else [])
        result = self.run_engine(job, paths, feedback)
        self.style_raster(result["OUTPUT"], result.get("STYLE"), context)
        return {name: result.get(name) for name in ("OUTPUT", "OUTPUT_CONFIDENCE", "STYLE", "COUNT")}
