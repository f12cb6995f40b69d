"""Sample selection from polygons or points (OTB PolygonClassStatistics + SampleSelection)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterRasterLayer,
)

from .base import SamplingAlgorithm


class SampleFromVector(SamplingAlgorithm):
    NAME = "samplefromvector"
    DISPLAY_NAME = "Sample selection from polygons or points"
    OPERATION = "sample_vector"
    HELP = (
        "Draws sample pixels inside labelled polygons (or at labelled points) on the pixel grid of a "
        "raster, as OTB's PolygonClassStatistics and SampleSelection do. The class field may be integer "
        "(kept as class ids) or text (mapped to ids 0..N-1 in alphabetical order; names kept). The class "
        "statistics are printed in the log. With a minimum distance, no two samples are closer than it."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterFeatureSource(
            "INPUT", "Labelled polygons or points",
            [QgsProcessing.TypeVectorPolygon, QgsProcessing.TypeVectorPoint]))
        self.addParameter(QgsProcessingParameterField(
            "FIELD", "Class field (integer or text)", parentLayerParameterName="INPUT",
            type=QgsProcessingParameterField.Any))
        self.addParameter(QgsProcessingParameterRasterLayer("RASTER", "Raster defining the pixel grid"))
        self.add_sampling_parameters("RASTER")

    def process(self, parameters, context, feedback) -> dict:
        job = self.sampling_job(parameters, context)
        job["INPUT"] = self.vector_path(parameters, "INPUT", context, feedback)
        job["FIELD"] = self.parameterAsString(parameters, "FIELD", context)
        job["RASTER"] = self.raster_path(parameters, "RASTER", context)
        return self.run_sampling(job, context, feedback)
