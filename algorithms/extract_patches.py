"""Patch extraction (OTBTF PatchesExtraction)."""

from __future__ import annotations

from .base import PatchFlowAlgorithm


class ExtractPatches(PatchFlowAlgorithm):
    NAME = "extractpatches"
    DISPLAY_NAME = "Extract patches"
    GROUP_ID = "patches"
    OPERATION = "extract_patches"
    SHORT = "Cut a patch around every point from one to three rasters: a dataset for training."
    TAGS = ("patches", "extraction", "dataset", "segmentation", "labels", "otbtf", "cnn", "tensorflow")
    HELP = (
        "Extracts a patch around every point from one to three sources, as OTBTF's PatchesExtraction "
        "does. A source is one raster or several stacked (same grid); sources may have different "
        "resolutions over the same area (e.g. 10 m with patch size 32 and 2.5 m with 128) but must share "
        "a CRS; patches of all sources are centred on the same ground.<br>Points whose patch is not "
        "entirely inside every source, or touches nodata in any, are dropped and counted.<br>Outputs, "
        "next to the manifest: one OTBTF patches-image per source (patches stacked in rows, data type "
        "kept), the labels image when a class field is given (one pixel per patch), the label raster's "
        "patches when one is given (segmentation), or, instead of a label raster, labelled polygons and their "
        "class field (integer or text) burnt on source 1's grid (a pixel whose centre lies in a polygon gets "
        "its class, every other pixel no label; class names and a QML's colours kept), and the manifest "
        "(JSON: sources, bands, sizes, statistics, classes, counts) that training reads."
    )
