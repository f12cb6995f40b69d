"""Sample selection from a label raster (OTBTF LabelImageSampleSelection)."""

from __future__ import annotations

from .base import PatchFlowAlgorithm


class SampleFromLabelRaster(PatchFlowAlgorithm):
    NAME = "samplefromlabelraster"
    DISPLAY_NAME = "Sample selection from label raster"
    OPERATION = "sample_label_raster"
    SHORT = "Sample points drawn from a label raster, per class (OTBTF LabelImageSampleSelection)."
    TAGS = ("sampling", "samples", "label raster", "training data", "otbtf", "stratified")
    HELP = (
        "Draws sample points from a label raster (one class id per pixel), as OTBTF's "
        "LabelImageSampleSelection does. The raster is read block by block: memory does not grow "
        "with its size.<br><b>Strategy</b>: the same number per class, every labelled pixel, the "
        "smallest class size for all, or a total split in proportion to class sizes.<br><b>Patch size</b>: "
        "only pixels whose patch of that size fits inside the raster are drawn.<br>Output: points at pixel "
        "centres with the fields class, class_name and color (names and colours come from the raster's "
        "colour table, category names or QML style), styled by class."
    )
