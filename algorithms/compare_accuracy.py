"""Several accuracy reports side by side (the end of a comparison experiment)."""

from __future__ import annotations

from .base import PatchFlowAlgorithm


class CompareAccuracy(PatchFlowAlgorithm):
    NAME = "compareaccuracy"
    DISPLAY_NAME = "Compare accuracy"
    GROUP_ID = "accuracy"
    OPERATION = "compare_accuracy"
    HELP = (
        "Puts several <i>Assess accuracy</i> reports (their CSV) side by side in one table: kappa, overall "
        "accuracy, macro F1 and the F1 of every class, one row per map, as CSV and HTML. Use it to end an "
        "experiment that maps the same classes several ways, e.g. the same classifier on a low-resolution, "
        "a bicubic-upsampled, a super-resolved and a high-resolution image.<br>"
        "Names: one per report, separated by ';' (empty: the file names)."
    )
