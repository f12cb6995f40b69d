"""Patch extraction (OTBTF PatchesExtraction)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from .base import PatchFlowAlgorithm

INTEGER = QgsProcessingParameterNumber.Integer
SOURCES = 3


class ExtractPatches(PatchFlowAlgorithm):
    NAME = "extractpatches"
    DISPLAY_NAME = "Extract patches"
    GROUP_ID = "patches"
    OPERATION = "extract_patches"
    HELP = (
        "Extracts a patch around every point from one to three sources, as OTBTF's PatchesExtraction "
        "does. A source is one raster or several stacked (same grid); sources may have different "
        "resolutions over the same area (e.g. 10 m with patch size 32 and 2.5 m with 128) but must share "
        "a CRS; patches of all sources are centred on the same ground.<br>Points whose patch is not "
        "entirely inside every source, or touches nodata in any, are dropped and counted.<br>Outputs, "
        "next to the manifest: one OTBTF patches-image per source (patches stacked in rows, data type "
        "kept), the labels image when a class field is given (one pixel per patch), the label raster's "
        "patches when one is given (segmentation), and the manifest (JSON: sources, bands, sizes, "
        "statistics, classes, counts) that training reads."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterFeatureSource(
            "INPUT", "Patch centres (points)", [QgsProcessing.TypeVectorPoint]))
        for index in range(1, SOURCES + 1):
            self.addParameter(QgsProcessingParameterMultipleLayers(
                f"SOURCE{index}", f"Source {index}: raster(s), stacked" + ("" if index == 1 else " (optional)"),
                QgsProcessing.TypeRaster, optional=index > 1))
            self.addParameter(QgsProcessingParameterNumber(
                f"PATCH_SIZE{index}", f"Source {index}: patch size (pixels)", INTEGER,
                16 if index == 1 else None, optional=index > 1, minValue=1))
        self.addParameter(QgsProcessingParameterField(
            "CLASS_FIELD", "Class field (writes the labels image)", parentLayerParameterName="INPUT", optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "LABEL_RASTER", "Label raster, extracted as an extra source (segmentation)", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "LABEL_PATCH_SIZE", "Label raster patch size (default: the footprint of source 1)", INTEGER, None,
            optional=True, minValue=1))
        self.addParameter(QgsProcessingParameterBoolean(
            "SKIP_NODATA", "Drop patches touching nodata", True))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT", "Dataset manifest", "JSON files (*.json)"))
        for index in range(1, SOURCES + 1):
            # files, not layers: patches-images have no georeferencing, so QGIS should not load them as maps
            self.addOutput(QgsProcessingOutputFile(f"PATCHES{index}", f"Source {index} patches-image"))
        self.addOutput(QgsProcessingOutputFile("LABELS", "Labels image"))
        self.addOutput(QgsProcessingOutputFile("LABEL_PATCHES", "Label raster patches-image"))
        for name, label in (("COUNT", "Patches kept"), ("DROPPED_NODATA", "Dropped: nodata"),
                            ("DROPPED_OUTSIDE", "Dropped: outside a source")):
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def process(self, parameters, context, feedback) -> dict:
        job = {
            "INPUT": self.vector_path(parameters, "INPUT", context, feedback),
            "CLASS_FIELD": self.parameterAsString(parameters, "CLASS_FIELD", context) or None,
            "LABEL_RASTER": self.raster_path(parameters, "LABEL_RASTER", context),
            "SKIP_NODATA": self.parameterAsBoolean(parameters, "SKIP_NODATA", context),
            "OUTPUT": self.parameterAsFileOutput(parameters, "OUTPUT", context),
        }
        for index in range(1, SOURCES + 1):
            job[f"SOURCE{index}"] = self.raster_paths(parameters, f"SOURCE{index}", context)
            if parameters.get(f"PATCH_SIZE{index}") not in (None, ""):
                job[f"PATCH_SIZE{index}"] = self.parameterAsInt(parameters, f"PATCH_SIZE{index}", context)
        if parameters.get("LABEL_PATCH_SIZE") not in (None, ""):
            job["LABEL_PATCH_SIZE"] = self.parameterAsInt(parameters, "LABEL_PATCH_SIZE", context)
        return self.run_engine(job, [job["OUTPUT"]], feedback)
