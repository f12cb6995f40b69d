"""A manifest for OTBTF patches-images made elsewhere, so PatchFlow can train on them."""

from __future__ import annotations

from .base import PatchFlowAlgorithm


class DescribePatches(PatchFlowAlgorithm):
    NAME = "describepatches"
    DISPLAY_NAME = "Describe OTBTF patches-images"
    GROUP_ID = "patches"
    OPERATION = "describe_patches"
    SHORT = "A PatchFlow manifest for patches-images made by OTBTF."
    TAGS = ("patches", "dataset", "manifest", "otbtf", "import")
    HELP = (
        "Writes a PatchFlow dataset manifest for patches-images made by OTBTF (or any tool writing "
        "patches stacked in rows): their count, bands, data type, per-band statistics and, with a "
        "labels image, the classes and their counts. Training then takes the manifest."
    )
