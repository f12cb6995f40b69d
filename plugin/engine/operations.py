"""The operations a job can name, each ``run(params, context) -> outputs``.

Modules are imported when their operation runs, so a job that needs no TensorFlow or
scikit-learn does not pay for importing them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from .params import Params, RunContext

Operation = Callable[[Params, RunContext], dict]


def _lazy(module: str, function: str, summary: str) -> Operation:
    def run(params: Params, context: RunContext) -> dict:
        return getattr(importlib.import_module(f"{__package__}.{module}"), function)(params, context)

    run.__name__, run.__doc__ = function, summary
    return run


OPERATIONS: dict[str, Operation] = {
    "sample_label_raster": _lazy("data.sampling", "run_sample_label_raster",
        "OTBTF LabelImageSampleSelection: sample points from a label raster."),
    "sample_vector": _lazy("data.sampling", "run_sample_vector",
        "Sample points in labelled polygons or points (PolygonClassStatistics + SampleSelection)."),
    "grid_split": _lazy("data.split", "run_grid_split",
        "OTBTF PatchesSelection: spatially disjoint train/valid/test sets on a block grid."),
    "extract_patches": _lazy("data.extraction", "run_extract_patches",
        "OTBTF PatchesExtraction: patches-images, labels image and a dataset manifest."),
    "describe_patches": _lazy("data.manifest", "run_describe_patches",
        "Write a manifest for OTBTF patches-images made elsewhere."),
    "create_model": _lazy("models.zoo", "run_create_model",
        "Build a ready-to-train model from the zoo (SavedModel/.keras + model card)."),
    "train_model": _lazy("train.training", "run_train_model",
        "Train a model on patches datasets streamed from disk; SavedModel, card and report."),
    "assess_accuracy": _lazy("evaluate.assess", "run_assess_accuracy",
        "Confusion matrix, OA, kappa, per-class P/R/F1 of a class raster against references."),
    "train_classifier": _lazy("classify.trainclassifier", "run_train_classifier",
        "Fit a Random Forest/SVM on a network's deep features or on pixel values."),
    "classify": _lazy("classify.deepfeatures", "run_classify",
        "Classify a raster with a classifier on deep features or pixel values."),
    "apply_model": _lazy("serve.serving", "run_apply_model",
        "OTBTF TensorflowModelServe: apply a model to whole rasters, streamed and seamless."),
    "build_sr_dataset": _lazy("data.srdata", "run_build_sr_dataset",
        "Super-resolution dataset: LR/HR patch pairs (LR given or degraded from HR), split spatially."),
    "assess_image_quality": _lazy("evaluate.quality", "run_assess_image_quality",
        "PSNR, SSIM, SAM, ERGAS of an image against a reference, with a bicubic baseline."),
    "compare_accuracy": _lazy("evaluate.compare", "run_compare_accuracy",
        "Several accuracy reports side by side: kappa, OA, macro F1, F1 per class."),
    "compare_sr": _lazy("experiment.comparesr", "run_compare_sr",
        "Does super-resolution help? LR, bicubic, SR and HR classified alike, compared on a held-out part."),
}
