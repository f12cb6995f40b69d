"""Grid split into training / validation / test sets (OTBTF PatchesSelection)."""

from __future__ import annotations

from .base import PatchFlowAlgorithm


class GridSplit(PatchFlowAlgorithm):
    NAME = "gridsplit"
    DISPLAY_NAME = "Split into training / validation / test on a grid"
    GROUP_ID = "sampling"
    OPERATION = "grid_split"
    SHORT = "Patch centres on a grid, split into training, validation and test sets that share no pixel."
    TAGS = ("split", "grid", "train", "validation", "test", "cross-validation", "otbtf", "patches")
    HELP = (
        "Places patch centres on a regular grid over the image (patch size, step) and splits them into "
        "training, validation and test sets, as OTBTF's PatchesSelection does. Patches touching nodata "
        "are left out. Sets are decided per block of grid cells (block size), and where patches of two "
        "sets would overlap one is dropped: no pixel is seen by two sets, which honest accuracy needs."
        "<br>With <b>existing samples</b> (points), those are split instead: each joins the set of the "
        "block (block size x step pixels) it lies in, and is dropped if its patch reaches into a block "
        "of another set.<br>With a <b>label raster</b> (or the samples' class field) the points carry "
        "their class; 'balanced' keeps as many patches per class as the rarest class has."
    )
