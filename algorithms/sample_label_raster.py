"""Sample selection from a label raster (OTBTF LabelImageSampleSelection)."""

from __future__ import annotations

from qgis.core import QgsProcessingParameterBand, QgsProcessingParameterNumber, QgsProcessingParameterRasterLayer

from .base import SamplingAlgorithm


class SampleFromLabelRaster(SamplingAlgorithm):
    NAME = "samplefromlabelraster"
    DISPLAY_NAME = "Sample selection from label raster"
    OPERATION = "sample_label_raster"
    HELP = (
        "Draws sample points from a label raster (one class id per pixel), as OTBTF's "
        "LabelImageSampleSelection does. The raster is read block by block: memory does not grow "
        "with its size.<br><b>Strategy</b>: the same number per class, every labelled pixel, the "
        "smallest class size for all, or a total split in proportion to class sizes.<br><b>Patch size</b>: "
        "only pixels whose patch of that size fits inside the raster are drawn.<br>Output: points at pixel "
        "centres with the fields class, class_name and color (names and colours come from the raster's "
        "colour table, category names or QML style), styled by class."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Label raster"))
        # optional: QGIS 3.22 rejects an omitted band parameter even with a default
        self.addParameter(QgsProcessingParameterBand("BAND", "Band with the class ids", 1, "INPUT", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "NODATA", "Value meaning 'no label' (default: the raster's nodata)",
            QgsProcessingParameterNumber.Double, None, optional=True))
        self.add_sampling_parameters("INPUT")

    def process(self, parameters, context, feedback) -> dict:
        job = self.sampling_job(parameters, context)
        job["INPUT"] = self.raster_path(parameters, "INPUT", context)
        job["BAND"] = self.parameterAsInt(parameters, "BAND", context) or 1
        if parameters.get("NODATA") not in (None, ""):
            job["NODATA"] = self.parameterAsDouble(parameters, "NODATA", context)
        return self.run_sampling(job, context, feedback)
