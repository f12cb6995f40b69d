"""Accuracy assessment of a classification map against reference points, polygons or a label raster."""

from __future__ import annotations

from qgis.core import QgsProcessingException

from .base import PatchFlowAlgorithm


class AssessAccuracy(PatchFlowAlgorithm):
    NAME = "assessaccuracy"
    DISPLAY_NAME = "Assess accuracy"
    GROUP_ID = "accuracy"
    OPERATION = "assess_accuracy"
    SHORT = "A class map against reference points, polygons or a raster: confusion matrix, OA, kappa, F1."
    TAGS = ("accuracy", "kappa", "confusion matrix", "overall accuracy", "f1", "validation", "assessment")
    HELP = (
        "Compares a class raster (a classification map) with reference data and reports the confusion "
        "matrix, overall accuracy, Cohen's kappa and, per class, the reference and mapped counts, "
        "precision (user's accuracy), recall (producer's accuracy) and F1, with macro and weighted F1.<br>"
        "The reference is either points or polygons with a class field, or a label raster:<ul>"
        "<li>points: the map pixel under each point;</li>"
        "<li>polygons: every map pixel whose centre is inside a polygon;</li>"
        "<li>label raster: every labelled pixel, in the map's CRS (its extent may differ). Its nodata, and 0 unless "
        "0 is a named class, mean 'no label'. Of another pixel size (a 2 m map against a 0.5 m reference, or the "
        "reverse), the finer raster is aggregated onto the coarser one's grid: each fine pixel votes for the coarse "
        "pixel holding its centre, the majority class wins (ties: the smallest id; nodata does not vote; no vote: "
        "nodata), and the pairs are counted on the coarser grid. The share of mixed pixels (fine pixels of more than "
        "one class) is an output and in the report.</li></ul>"
        "The class field holds the map's class ids (integer), or class names (text) that match the names "
        "the map carries (colour table, category names or a .qml style). Pairs where the map is nodata, "
        "and points outside the map, are skipped and counted in the log.<br>"
        "Outputs: a CSV (one row per class with its confusion matrix row, then OA, kappa, macro and "
        "weighted F1) and beside it <i>&lt;CSV&gt;_pairs.csv</i>, every reference sample (x, y in the map's CRS, "
        "reference class, map class; empty where the map has none), which Compare accuracy uses to test whether "
        "two maps differ; an HTML report with the confusion matrix heat map (shown in the Results Viewer) and "
        "optionally the same table as a layer without geometry."
    )

    def job(self, parameters, context, feedback) -> dict:
        job = super().job(parameters, context, feedback)
        vector, raster = job["REFERENCE"], job["REFERENCE_RASTER"]
        if bool(vector) == bool(raster):
            raise QgsProcessingException(
                f"{self._describe('REFERENCE_RASTER' if vector else 'REFERENCE')}: give exactly one reference: points "
                "or polygons (Reference points or polygons, with a class field) or a label raster (Reference label "
                "raster)" + (", not both." if vector else "."))
        if vector and not job["CLASS_FIELD"]:
            raise QgsProcessingException(
                f"{self._describe('CLASS_FIELD')}: choose the field holding each reference feature's class.")
        return job
