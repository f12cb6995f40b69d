"""Does super-resolution help? The four versions of an image classified alike and compared on a held-out part."""

from __future__ import annotations

from .base import PatchFlowAlgorithm


class CompareSr(PatchFlowAlgorithm):
    NAME = "comparesr"
    DISPLAY_NAME = "Does super-resolution help?"
    GROUP_ID = "accuracy"
    OPERATION = "compare_sr"
    SHORT = "LR, bicubic, SR and HR classified alike and compared on a held-out part, with intervals and tests."
    TAGS = ("super-resolution", "sr", "experiment", "comparison", "kappa", "mcnemar", "bootstrap", "bicubic")
    HELP = (
        "Answers <i>does super-resolution help?</i> on your data. From the HR image it makes four versions: "
        "<b>LR</b> (a real LR image of another sensor, else the HR degraded by the scale, Wald's protocol), "
        "<b>bicubic</b> (the LR upsampled onto the HR grid by cubic convolution), <b>SR</b> (the zoo's SR generator "
        "trained on LR/HR pairs of the training part only, applied to the LR) and <b>HR</b>. The scene is split "
        "spatially: the left part of the width trains (<i>training share</i>), the right part is held out, or "
        "give training and held-out polygons. The same classifier (FCNN, U-Net, or a Random Forest on each pixel "
        "and its neighbourhood) is trained on each version's training part, with seeds 0 to REPEATS - 1, and each "
        "map is scored at every labelled held-out HR pixel (a coarser map is read at the HR pixels' centres).<br>"
        "Labels: a label raster on the HR grid, or polygons or points with their class field.<br><br>"
        "<b>Outputs</b>, in the comparison folder: <i>comparison.html</i> (the answer, the tables, the tests, the "
        "SR image's quality and the four images and maps of one zoomed area side by side), <i>comparison.json</i> "
        "(every figure, strict JSON) and <i>comparison.csv</i> (a row per version), the LR, bicubic and SR images, "
        "every map, the SR model and the image quality report. Per version: kappa, OA and macro F1 as mean ± sd "
        "over the repeats, with bootstrap 95 % intervals of the mean kappa and OA. SR against bicubic and against "
        "HR: the kappa difference with its bootstrap interval, McNemar's test on the pooled predictions (and per "
        "repeat), and a paired t-test of the repeats' kappas. The SR image's PSNR, SSIM, SAM and ERGAS on the "
        "held-out part against bicubic, Lanczos and sharpened bicubic. The answer is one sentence computed from "
        "these figures: SR helps (the interval of its kappa gain over bicubic above 0, McNemar significant at 5 % "
        "and the repeats agreeing), hurts, may help or hurt but not consistently across the seeds, or there is no "
        "evidence that it helps."
    )
