"""Several accuracy reports side by side (the end of a comparison experiment)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterString,
)

from .base import PatchFlowAlgorithm


class CompareAccuracy(PatchFlowAlgorithm):
    NAME = "compareaccuracy"
    DISPLAY_NAME = "Compare accuracy"
    GROUP_ID = "accuracy"
    OPERATION = "compare_accuracy"
    HELP = (
        "Puts several <i>Assess accuracy</i> reports (their CSV) side by side in one table: kappa, overall "
        "accuracy, macro F1 and the F1 of every class, one row per map, as CSV and HTML. Use it to end an "
        "experiment that maps the same classes several ways, e.g. the same classifier on a low-resolution, "
        "a bicubic-upsampled, a super-resolved and a high-resolution image.<br>"
        "Names: one per report, separated by ';' (empty: the file names)."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "REPORTS", "Accuracy reports (CSV from Assess accuracy)", QgsProcessing.TypeFile))
        self.addParameter(QgsProcessingParameterString(
            "NAMES", "Names of the maps, separated by ; (empty: the file names)", "", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_CSV", "Comparison (CSV)", "CSV files (*.csv)"))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_HTML", "Comparison (HTML)", "HTML files (*.html)", optional=True, createByDefault=True))
        self.addOutput(QgsProcessingOutputString("BEST", "Map with the highest kappa"))
        self.addOutput(QgsProcessingOutputNumber("BEST_KAPPA", "Its kappa"))

    def process(self, parameters, context, feedback) -> dict:
        job = {
            "REPORTS": self.parameterAsFileList(parameters, "REPORTS", context),
            "NAMES": self.parameterAsString(parameters, "NAMES", context) or None,
            "OUTPUT_CSV": self.parameterAsFileOutput(parameters, "OUTPUT_CSV", context),
            "OUTPUT_HTML": self.parameterAsFileOutput(parameters, "OUTPUT_HTML", context) or None,
        }
        paths = [p for p in (job["OUTPUT_CSV"], job["OUTPUT_HTML"]) if p]
        result = self.run_engine(job, paths, feedback)
        return {name: result.get(name) for name in ("OUTPUT_CSV", "OUTPUT_HTML", "BEST", "BEST_KAPPA")}
