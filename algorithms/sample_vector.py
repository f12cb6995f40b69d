"""Sample selection from polygons or points (OTB PolygonClassStatistics + SampleSelection)."""

from __future__ import annotations

from .base import PatchFlowAlgorithm


class SampleFromVector(PatchFlowAlgorithm):
    NAME = "samplefromvector"
    DISPLAY_NAME = "Sample selection from polygons or points"
    OPERATION = "sample_vector"
    SHORT = "Sample pixels inside labelled polygons or at labelled points, on a raster's grid."
    TAGS = ("sampling", "samples", "polygons", "training data", "otb", "stratified")
    HELP = (
        "Draws sample pixels inside labelled polygons (or at labelled points) on the pixel grid of a "
        "raster, as OTB's PolygonClassStatistics and SampleSelection do. The class field may be integer "
        "(kept as class ids) or text (mapped to ids 0..N-1 in alphabetical order; names kept). The class "
        "statistics are printed in the log. With a minimum distance, no two samples are closer than it."
    )
