"""Several accuracy reports side by side (the end of a comparison experiment)."""

from __future__ import annotations

from .base import PatchFlowAlgorithm


class CompareAccuracy(PatchFlowAlgorithm):
    NAME = "compareaccuracy"
    DISPLAY_NAME = "Compare accuracy"
    GROUP_ID = "accuracy"
    OPERATION = "compare_accuracy"
    SHORT = "Accuracy reports side by side, with bootstrap intervals and McNemar's test."
    TAGS = ("accuracy", "kappa", "comparison", "mcnemar", "bootstrap", "significance", "statistics")
    HELP = (
        "Puts several <i>Assess accuracy</i> reports (their CSV) side by side in one table: kappa, overall "
        "accuracy, macro F1 and the F1 of every class, one row per map, as CSV and HTML. Use it to end an "
        "experiment that maps the same classes several ways, e.g. the same classifier on a low-resolution, "
        "a bicubic-upsampled, a super-resolved and a high-resolution image.<br>"
        "Names: one per report, separated by ';' (empty: the file names).<br><br>"
        "<b>Is a difference real?</b> Assess accuracy writes beside its CSV the samples it scored "
        "(<i>&lt;report&gt;_pairs.csv</i>: x, y, reference, map class), found here by name (or give them as "
        "<i>Samples scored</i>, one per report). Then every map gets bootstrap 95 % intervals of its kappa and "
        "overall accuracy (the samples resampled, the given number of times, with the given seed), and every two "
        "maps assessed at the same samples are compared (all pairs, in <i>&lt;comparison&gt;_significance.csv</i> "
        "and the HTML): McNemar's test on the samples one map got right and the other wrong (exact binomial test "
        "under 25 such samples, else chi-square with continuity correction), the interval of the kappa "
        "difference, and a sentence saying whether the difference is significant at 5 %. The outputs MCNEMAR_P "
        "and SIGNIFICANCE are the best map's against the runner-up; p-values are not adjusted for multiple "
        "comparisons. Maps assessed at different points are refused; reports without pairs (older PatchFlow) "
        "are compared without significance, with a note. Assess at independent points (not pixels of the "
        "training polygons): nearby samples are not independent."
    )
