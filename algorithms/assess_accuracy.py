"""Accuracy assessment of a classification map against reference points, polygons or a label raster."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBand,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from .base import PatchFlowAlgorithm


class AssessAccuracy(PatchFlowAlgorithm):
    NAME = "assessaccuracy"
    DISPLAY_NAME = "Assess accuracy"
    GROUP_ID = "accuracy"
    OPERATION = "assess_accuracy"
    HELP = (
        "Compares a class raster (a classification map) with reference data and reports the confusion "
        "matrix, overall accuracy, Cohen's kappa and, per class, the reference and mapped counts, "
        "precision (user's accuracy), recall (producer's accuracy) and F1, with macro and weighted F1.<br>"
        "The reference is either points or polygons with a class field, or a label raster:<ul>"
        "<li>points: the map pixel under each point;</li>"
        "<li>polygons: every map pixel whose centre is inside a polygon;</li>"
        "<li>label raster: every labelled pixel; it must have the map's CRS and pixel size (its extent may "
        "differ). Its nodata, and 0 unless 0 is a named class, mean 'no label'.</li></ul>"
        "The class field holds the map's class ids (integer), or class names (text) that match the names "
        "the map carries (colour table, category names or a .qml style). Pairs where the map is nodata, "
        "and points outside the map, are skipped and counted in the log.<br>"
        "Outputs: a CSV (one row per class with its confusion matrix row, then OA, kappa, macro and "
        "weighted F1), an HTML report with the confusion matrix heat map (shown in the Results Viewer) and "
        "optionally the same table as a layer without geometry."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Class raster (classification map)"))
        self.addParameter(QgsProcessingParameterBand("BAND", "Band", 1, "INPUT", optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "REFERENCE", "Reference points or polygons",
            [QgsProcessing.TypeVectorPoint, QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterField(
            "CLASS_FIELD", "Reference class field (class ids, or the map's class names)",
            parentLayerParameterName="REFERENCE", type=QgsProcessingParameterField.Any, optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "REFERENCE_RASTER", "Or: reference label raster (map's CRS and pixel size)", optional=True))
        self.addParameter(QgsProcessingParameterBand(
            "REFERENCE_BAND", "Reference label raster band", 1, "REFERENCE_RASTER", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "REFERENCE_NODATA", "Reference label raster 'no label' value (default: its nodata)",
            QgsProcessingParameterNumber.Double, None, optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_CSV", "Scores (CSV)", "CSV files (*.csv)"))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_HTML", "Accuracy report (HTML)", "HTML files (*.html)"))
        table = QgsProcessingParameterVectorDestination(
            "OUTPUT_TABLE", "Scores table", QgsProcessing.TypeVector, optional=True, createByDefault=False)
        table.setSupportsNonFileBasedOutput(False)
        self.addParameter(table)
        for name, label in (("OA", "Overall accuracy"), ("KAPPA", "Kappa"), ("N", "Number of pairs"),
                            ("MACRO_F1", "Macro F1"), ("WEIGHTED_F1", "Weighted F1")):
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def process(self, parameters, context, feedback) -> dict:
        vector = self.vector_path(parameters, "REFERENCE", context, feedback)
        raster = self.raster_path(parameters, "REFERENCE_RASTER", context)
        if bool(vector) == bool(raster):
            raise QgsProcessingException(
                f"{self._describe('REFERENCE_RASTER' if vector else 'REFERENCE')}: give exactly one reference: points "
                "or polygons (Reference points or polygons, with a class field) or a label raster (Reference label "
                "raster)" + (", not both." if vector else "."))
        class_field = self.parameterAsString(parameters, "CLASS_FIELD", context)
        if vector and not class_field:
            raise QgsProcessingException(
                f"{self._describe('CLASS_FIELD')}: choose the field holding each reference feature's class.")
        job = {
            "INPUT": self.raster_path(parameters, "INPUT", context),
            "BAND": self.parameterAsInt(parameters, "BAND", context) or 1,
            "REFERENCE": vector,
            "CLASS_FIELD": class_field or None,
            "REFERENCE_RASTER": raster,
            "OUTPUT_CSV": self.parameterAsFileOutput(parameters, "OUTPUT_CSV", context),
            "OUTPUT_HTML": self.parameterAsFileOutput(parameters, "OUTPUT_HTML", context),
            "OUTPUT_TABLE": self.parameterAsOutputLayer(parameters, "OUTPUT_TABLE", context) or None,
        }
        if raster:
            job["REFERENCE_BAND"] = self.parameterAsInt(parameters, "REFERENCE_BAND", context) or 1
        if parameters.get("REFERENCE_NODATA") not in (None, ""):
            job["REFERENCE_NODATA"] = self.parameterAsDouble(parameters, "REFERENCE_NODATA", context)
        paths = [p for p in (job["OUTPUT_CSV"], job["OUTPUT_HTML"], job["OUTPUT_TABLE"]) if p]
        result = self.run_engine(job, paths, feedback)
        return {name: result.get(name) for name in (
            "OA", "KAPPA", "N", "MACRO_F1", "WEIGHTED_F1", "OUTPUT_CSV", "OUTPUT_HTML", "OUTPUT_TABLE")}
