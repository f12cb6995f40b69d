"""OTBTF's TrainClassifierFromDeepFeatures and the per-pixel baseline (``train_classifier``): a
scikit-learn Random Forest or SVM fitted on a dataset's features, scored on it, on a validation
set and on a test set (neither chooses anything here), written as a ``.skops`` classifier with its
``<stem>.json`` description (model, feature output, bands, patch size, normalisation, classes and
scores), which ``classify`` reads.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...protocol import strict_dump
from ..errors import Cancelled, PatchFlowError
from ..geodata.classes import ClassLike
from ..params import Params, RunContext
from ..reporting import Reporter
from .classifierfile import EXTENSION, FORMAT, LEGACY_EXTENSIONS, VERSION
from .features import PIXELS, deep_extractor, pixel_extractor
from .labelled import check_compatible, check_validation, dataset_features, load_dataset
from .multisource import attach_sources, describe_sources, resolution_warning, source_order, unused_sources

if TYPE_CHECKING:
    from ..evaluate.metrics import Scores

CLASSIFIERS = ("rf", "svm")
SCORE_SUFFIX = {"VALID": "validation", "TEST": "test"}  # <stem>_validation.csv, <stem>_test.csv


def make_classifier(kind: str, n_trees: int, max_depth: int, svm_c: float, seed: int, labels: np.ndarray):
    if kind == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=n_trees, max_depth=max_depth or None, n_jobs=-1,
                                      random_state=seed)
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    smallest = int(np.unique(labels, return_counts=True)[1].min())
    if smallest < 2:
        raise PatchFlowError("the SVM's probabilities are calibrated by cross-validation, which needs 2 samples "
                             "per class or more; a class has 1. Use the Random Forest or more samples.", "CLASSIFIER")
    folds = StratifiedKFold(n_splits=min(5, smallest), shuffle=True, random_state=seed)
    return make_pipeline(StandardScaler(), CalibratedClassifierCV(SVC(C=svm_c), ensemble=False, cv=folds))


def scores_of(reference: np.ndarray, predicted: np.ndarray, classes: Sequence[ClassLike]) -> Scores:
    from ..evaluate.metrics import Scores

    return Scores.from_pairs(reference, predicted, classes)


def _output_path(params: Params, reporter: Reporter) -> str:
    """OUTPUT ending in .skops; a legacy pickle name (.joblib, .pkl) gets .skops instead, said."""
    output = params.string("OUTPUT")
    stem, extension = os.path.splitext(output)
    if extension.lower() == EXTENSION:
        return output
    if extension.lower() in LEGACY_EXTENSIONS:
        reporter.warning(f"{output}: classifiers are written as {EXTENSION} files (they load without running code); "
                         f"writing {stem + EXTENSION}.")
        return stem + EXTENSION
    return output + EXTENSION


def run_train_classifier(params: Params, context: RunContext) -> dict:
    """Fit a Random Forest / SVM on a network's deep features, or on the centre pixels' band values."""
    from .. import checks

    checks.classifier_training(params)
    checks.classifier_sources(params)

    import skops.io

    model_path = params.string("MODEL")
    feature_output = params.string("FEATURE_OUTPUT")
    kind = params.choice("CLASSIFIER")
    n_trees = params.integer("N_TREES")
    max_depth = params.integer("MAX_DEPTH")
    svm_c = params.number("SVM_C")
    if svm_c <= 0:
        raise PatchFlowError(f"{svm_c:g} is not positive; the SVM's C must be > 0.", "SVM_C")
    seed = params.integer("SEED")
    output = _output_path(params, context.reporter)

    features_choice = params.choice("FEATURES")
    if model_path and features_choice != PIXELS:
        raise PatchFlowError("FEATURES chooses the features of a classifier without a model; with a MODEL they are "
                             "its feature output. Set FEATURES to 'pixel values', or clear MODEL.", "FEATURES")
    trusted = params.boolean("TRUST_MODEL")
    extractor = deep_extractor(model_path, feature_output, "MODEL", trusted, context.reporter,
                               source_order(params.string("DATASET"))) if model_path else None
    source_name = extractor.source if extractor else "source1"
    train = load_dataset(params.string("DATASET"), "DATASET", source_name)
    if extractor is None:
        extractor = pixel_extractor(features_choice, params.integer("NEIGHBOURHOOD"), train.bands, train.patch_size,
                                    [b.get("nodata") for b in train.source["bands"]], source_name)
    check_compatible(train, extractor)
    attach_sources(train, extractor)
    unused_sources(train, extractor, context.reporter)
    resolution_warning(train, extractor, context.reporter)
    scored = {}  # VALID and TEST: scored on the classifier fitted on DATASET, neither chooses anything
    for key in ("VALID", "TEST"):
        if params.string(key):
            scored[key] = load_dataset(params.string(key), key, source_name)
            check_validation(train, scored[key], key)
            check_compatible(scored[key], extractor)
            attach_sources(scored[key], extractor)
    staged = context.staging.stage(output, "OUTPUT")
    stem = os.path.splitext(output)[0]
    staged_json = context.staging.stage(stem + ".json", "OUTPUT")
    staged_csvs = {key: context.staging.stage(f"{stem}_{SCORE_SUFFIX[key]}.csv", "OUTPUT") for key in scored}

    reporter = context.reporter
    what = "band values of each patch's centre pixel" if extractor.kind == PIXELS else (
        f"output '{feature_output}' of {extractor.model_path}" if extractor.model_path else
        f"band values of each patch's centre pixel, and their mean and std over its {extractor.patch_size} x "
        f"{extractor.patch_size} neighbourhood")
    reporter.log(f"features: {what}")
    features = dataset_features(train, extractor, reporter.span(0, 60 - 10 * len(scored)), context.cancelled)
    scored_features = {key: dataset_features(dataset, extractor, reporter.span(60 - 10 * (len(scored) - i),
                                                                             70 - 10 * (len(scored) - i)),
                                             context.cancelled) for i, (key, dataset) in enumerate(scored.items())}
    reporter.log(f"{len(features)} training samples, {features.shape[1]} features each")
    classifier = make_classifier(kind, n_trees, max_depth, svm_c, seed, train.labels)
    reporter.stage(f"fitting the {type(classifier).__name__} on {len(features)} samples", 70, 85)
    classifier.fit(features, train.labels)
    if context.cancelled():
        raise Cancelled()
    reporter.progress(85)
    training_scores = scores_of(train.labels, classifier.predict(features), train.classes)
    reporter.log(f"training: overall accuracy {training_scores.overall_accuracy:.4f}, "
                 f"kappa {training_scores.kappa:.4f} (on the samples it was fitted on)")
    outputs: dict[str, Any] = {"OUTPUT": output, "DESCRIPTION": stem + ".json", "COUNT": int(len(features)),
                               "N_FEATURES": int(features.shape[1]),
                               **{f"{key}_{name}": None for key in ("VALID", "TEST") for name in ("OA", "KAPPA")},
                               "VALIDATION_CSV": None, "TEST_CSV": None}
    described: dict[str, dict | None] = {"VALID": None, "TEST": None}
    for key, dataset in scored.items():
        scores = scores_of(dataset.labels, classifier.predict(scored_features[key]), train.classes)
        scores.write_csv(staged_csvs[key])
        described[key] = {"dataset": os.path.abspath(dataset.path), "n_samples": int(len(dataset.labels)),
                          **scores.as_dict()}
        reporter.log(f"{SCORE_SUFFIX[key]} ({len(dataset.labels)} samples): overall accuracy "
                     f"{scores.overall_accuracy:.4f}, kappa {scores.kappa:.4f}")
        outputs.update({f"{key}_OA": float(scores.overall_accuracy), f"{key}_KAPPA": float(scores.kappa),
                        f"{'VALIDATION' if key == 'VALID' else key}_CSV": f"{stem}_{SCORE_SUFFIX[key]}.csv"})
    skops.io.dump(classifier, staged)
    description = {
        "format": FORMAT, "version": VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "classifier_file": os.path.basename(output),
        "classifier": kind,
        "parameters": {"n_trees": n_trees, "max_depth": max_depth, "svm_c": svm_c, "seed": seed},
        **extractor.describe(),
        "n_features": int(features.shape[1]),
        "band_descriptions": [b.get("description", "") for b in train.source["bands"]],
        "band_nodata": [b.get("nodata") for b in train.source["bands"]],
        "dataset_patch_size": train.patch_size,
        "sources": describe_sources(train, extractor),
        "classes": train.classes,
        "training": {"dataset": os.path.abspath(train.path), "n_samples": int(len(features)),
                     **training_scores.as_dict()},
        "validation": described["VALID"],
        "test": described["TEST"],
    }
    with open(staged_json, "w", encoding="utf-8") as handle:
        strict_dump(description, handle, indent=2, default=_json_default)
        handle.write("\n")
    reporter.progress(100)
    outputs["CLASSES"] = train.classes
    return outputs


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
