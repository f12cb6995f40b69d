"""Cheap checks every operation runs first, so that a bad input fails in a fraction of a second,
before TensorFlow, scikit-learn or any long read starts: outputs writable, rasters readable (a
truncated file names its parameter), label rasters holding whole numbers, band counts against the
model card, classes in a training set. And the warnings that say what a run does with a
surprising input (a raster without a CRS, a class missing from a validation or test set).

Nothing here writes a file a user would see (the writability probe is a hidden folder, removed at
once) and nothing imports TensorFlow, Keras or scikit-learn.

One module a kind of input: writability (outputs), rasterchecks, datasetchecks, modelchecks, and
trainingchecks (what train_model and train_classifier run first); this package gathers them, so
that the operations call ``checks.<check>(...)``.
"""

from __future__ import annotations

from .datasetchecks import (
    IMAGE_LOSSES,
    class_counts,
    class_names,
    classes_missing_from_reference,
    classes_missing_from_sets,
    dataset,
    image_target,
    missing_classes,
    two_classes,
)
from .modelchecks import (
    card_against_dataset,
    card_of,
    classifier_description,
    classifier_sources,
    input_against_classifier,
    model_folder,
    outputs_in_card,
    sources_against_card,
    stacked_bands,
)
from .rasterchecks import (
    SAMPLED_BANDS,
    SAMPLED_BLOCKS,
    extent_overlaps,
    integer_valued,
    raster_paths,
    rasters,
    readable_raster,
)
from .trainingchecks import architecture_fits, classifier_training, resume, training
from .writability import check_writable, writable

__all__ = [
    "IMAGE_LOSSES", "SAMPLED_BANDS", "SAMPLED_BLOCKS", "architecture_fits", "card_against_dataset", "card_of",
    "check_writable", "class_counts", "class_names", "classes_missing_from_reference", "classes_missing_from_sets",
    "classifier_description", "classifier_sources", "classifier_training", "dataset", "extent_overlaps", "image_target",
    "input_against_classifier", "integer_valued", "missing_classes", "model_folder", "outputs_in_card",
    "raster_paths", "rasters", "readable_raster", "resume", "sources_against_card", "stacked_bands", "training",
    "two_classes", "writable",
]
