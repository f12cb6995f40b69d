"""A manifest for OTBTF patches-images made elsewhere, so PatchFlow can train on them."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from .base import PatchFlowAlgorithm


class DescribePatches(PatchFlowAlgorithm):
    NAME = "describepatches"
    DISPLAY_NAME = "Describe OTBTF patches-images"
    GROUP_ID = "patches"
    OPERATION = "describe_patches"
    HELP = (
        "Writes a PatchFlow dataset manifest for patches-images made by OTBTF (or any tool writing "
        "patches stacked in rows): their count, bands, data type, per-band statistics and, with a "
        "labels image, the classes and their counts. Training then takes the manifest."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "PATCHES", "Patches-images, one per source", QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterNumber(
            "PATCH_SIZE", "Patch size (0: the image width)", QgsProcessingParameterNumber.Integer, 0, minValue=0))
        self.addParameter(QgsProcessingParameterRasterLayer("LABELS", "Labels image", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Dataset manifest", "JSON files (*.json)"))
        self.addOutput(QgsProcessingOutputNumber("COUNT", "Number of patches"))

    def process(self, parameters, context, feedback) -> dict:
        job = {
            "PATCHES": self.raster_paths(parameters, "PATCHES", context),
            "PATCH_SIZE": self.parameterAsInt(parameters, "PATCH_SIZE", context),
            "LABELS": self.raster_path(parameters, "LABELS", context),
            "OUTPUT": self.parameterAsFileOutput(parameters, "OUTPUT", context),
        }
        return self.run_engine(job, [job["OUTPUT"]], feedback)
