"""OTBTF's TrainClassifierFromDeepFeatures / ImageClassifierFromDeepFeatures, and the per-pixel baseline.

A trained network's feature output (``features`` by default, one vector per patch) feeds a
scikit-learn Random Forest or SVM; without a model the features are the band values of each
patch's centre pixel, the classic per-pixel classifier every paper compares against.

Training writes the classifier (``.skops``: the scikit-learn estimator saved with ``skops.io``,
which loads without running code, only the types of ``SKOPS_TYPES`` beyond skops' own safe ones)
and beside it ``<stem>.json`` telling how its features are made (model, feature output, bands, patch size,
normalisation) and its classes and scores, which classification reads. Classification runs
block by block: every output pixel gets the features of the patch centred on it (start =
pixel - p // 2, as extraction does), the scene edges padded by reflection.

A legacy pickle classifier (``.joblib``/``.pkl``, PatchFlow's format before ``.skops``) could run any
code when loaded: it loads only with TRUST_MODEL, with a warning. A deep-features classifier's
network goes through the model gate (``modelsafety.open_model``) when training and classifying.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from osgeo import gdal

from ...protocol import strict_dump
from ..data.patches import PatchesImage
from ..errors import Cancelled, PatchFlowError
from ..geodata.classes import ClassLike
from ..geodata.geotiff import class_map_encoding, create_geotiff, creation_options
from ..geodata.raster import RasterStack, block_windows, open_raster
from ..models.modelcard import Normalization, load_card
from ..params import Params, RunContext
from ..report.rasterstyle import set_class_table, sidecar_path, write_class_qml
from ..reporting import Reporter

if TYPE_CHECKING:
    from ..evaluate.metrics import Scores

FORMAT = "patchflow-classifier"
VERSION = 1
PIXELS, DEEP = "pixels", "deep_features"
CLASSIFIERS = ("rf", "svm")
CHUNK_BYTES = 32 << 20  # raw patches per features pass chunk
CHUNK_PIXELS = 4096  # output pixels whose patches are built and run through the network at once
PIXEL_CHUNK = 1 << 16  # output pixels classified at once, per-pixel classifier
PIXEL_BLOCK = 1 << 20  # output pixels per block, per-pixel classifier
DEEP_BLOCK = 256 * 256  # output pixels per block, deep features
GTIFF_OPTIONS = creation_options(tiled=True, deflate=True)
CONFIDENCE_NODATA = -1.0
EXTENSION = ".skops"
LEGACY_EXTENSIONS = (".joblib", ".pkl", ".pickle")
# the types of PatchFlow's classifiers that skops does not trust by itself (get_untrusted_types):
# the Random Forest's trees, the SVM pipeline's calibration and its cross-validation folds
SKOPS_TYPES = (
    "sklearn.tree._tree.Tree",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.model_selection._split.StratifiedKFold",
)


# ---- features --------------------------------------------------------------------------------------


@dataclass
class FeatureExtractor:
    """Turns raw patches (n, p, p, bands), centred on the pixels to classify, into feature vectors.

    ``patch_size`` is 1 for the per-pixel classifier (the features are the band values)."""

    kind: str
    bands: int
    patch_size: int = 1
    source: str = "source1"
    model_path: str | None = None
    feature_output: str | None = None
    input_name: str | None = None
    normalization: Normalization = field(default_factory=Normalization)
    card_summary: dict | None = None
    model: Any = None

    def from_dataset_patches(self, patches: np.ndarray) -> np.ndarray:
        """Features of dataset patches (n, P, P, bands), P >= patch_size: the model sees the centred
        sub-patch (same centre pixel P // 2)."""
        offset = patches.shape[1] // 2 - self.patch_size // 2
        return self.from_patches(patches[:, offset:offset + self.patch_size, offset:offset + self.patch_size, :])

    def from_patches(self, patches: np.ndarray) -> np.ndarray:
        if self.kind == PIXELS:
            return patches[:, 0, 0, :].astype(np.float32)
        inputs = {self.input_name: self.normalization.apply(patches)}
        values = self.model.predict(inputs, outputs=[self.feature_output])[self.feature_output]
        values = np.asarray(values)
        if values.ndim == 4:  # spatial output (n, h, w, F): the centre position
            values = values[:, values.shape[1] // 2, values.shape[2] // 2, :]
        return values.reshape(len(patches), -1).astype(np.float32, copy=False)

    def fill_value(self) -> np.ndarray:
        """What nodata pixels around a valid pixel are replaced with: the band means (0 once
        standardised), so a neighbour's nodata value does not reach the network."""
        norm = self.normalization
        if norm.kind == "standard" and norm.mean:
            return np.asarray(norm.mean, dtype=np.float32)
        return np.zeros(self.bands, dtype=np.float32)

    def describe(self) -> dict:
        return {"kind": self.kind, "model": self.model_path, "model_card": self.card_summary,
                "feature_output": self.feature_output, "input_name": self.input_name, "source": self.source,
                "bands": self.bands, "patch_size": self.patch_size, "normalization": asdict(self.normalization)}


def model_folder(path: str) -> str:
    """A SavedModel is a folder: its saved_model.pb (what a file picker gives) stands for it."""
    path = path.rstrip("/\\") or path
    return os.path.dirname(path) if os.path.basename(path) == "saved_model.pb" else path


def card_summary(card) -> dict | None:
    if card is None:
        return None
    return {"architecture": card.architecture, "task": card.task, "receptive_field": card.receptive_field,
            "expression_field": card.expression_field, "inputs": [asdict(i) for i in card.inputs],
            "outputs": [asdict(o) for o in card.outputs], "classes": card.classes, "training": card.training}


def deep_extractor(model_path: str, feature_output: str, parameter: str = "MODEL", trusted: bool = False,
                   reporter: Reporter | None = None) -> FeatureExtractor:
    """Load the model (through the safety gate) and check it has one input and the feature output."""
    from ..models.modelio import InferenceModel

    path = os.path.abspath(model_folder(model_path))
    if not os.path.exists(path):
        raise PatchFlowError(f"model not found: {path}. Choose a SavedModel (its saved_model.pb) or a .keras "
                             "file written by PatchFlow's training.", parameter)
    model = InferenceModel.load(path, parameter, trusted, reporter)
    card = model.card if model.card is not None else load_card(path, parameter)
    if feature_output not in model.output_names:
        raise PatchFlowError(f"the model has no output '{feature_output}'; its outputs are: "
                             f"{', '.join(model.output_names)}. Set FEATURE_OUTPUT to one of them.", "FEATURE_OUTPUT")
    if len(model.input_names) != 1:
        raise PatchFlowError(f"the model has {len(model.input_names)} inputs ({', '.join(model.input_names)}); "
                             "deep-feature classification takes models with one input.", parameter)
    if card is None:
        raise PatchFlowError(f"{path} has no PatchFlow model card (patchflow_card.json / <stem>.card.json), so its "
                             "bands, patch size and normalisation are unknown. Use a model written by PatchFlow.",
                             parameter)
    spec = card.inputs[0] if len(card.inputs) == 1 else card.input(model.input_names[0])
    return FeatureExtractor(DEEP, spec.bands, spec.patch_size, spec.source, path, feature_output,
                            model.input_names[0], spec.normalization, card_summary(card), model)


def reload_extractor(description: dict, parameter: str = "CLASSIFIER", trusted: bool = False,
                     reporter: Reporter | None = None) -> FeatureExtractor:
    """The extractor a classifier's json describes (its model loaded again, through the safety gate)."""
    if description["kind"] == PIXELS:
        return FeatureExtractor(PIXELS, int(description["bands"]), 1, description.get("source", "source1"))
    model_path = description["model"]
    if not os.path.exists(model_path):
        raise PatchFlowError(f"the classifier's model {model_path} is gone. Put it back, or train the classifier "
                             "again.", parameter)
    try:
        extractor = deep_extractor(model_path, description["feature_output"], parameter, trusted, reporter)
    except PatchFlowError as exc:
        if exc.parameter != parameter:
            raise
        raise PatchFlowError(f"the classifier's network: {exc.message}", parameter) from None
    if (extractor.bands, extractor.patch_size) != (int(description["bands"]), int(description["patch_size"])):
        raise PatchFlowError(f"the model {model_path} changed since the classifier was trained (it now takes "
                             f"{extractor.patch_size} px patches of {extractor.bands} bands). Train the classifier "
                             "again.", parameter)
    return extractor


# ---- datasets ---------------------------------------------------------------------------------------


@dataclass
class LabelledPatches:
    """One source of a dataset (manifest) and the class of each of its patches: what a classifier
    (``train_classifier``) is fitted on. Not ``datasets.PatchDataset``, which streams batches to Keras."""

    path: str
    parameter: str
    manifest: dict
    source: dict
    labels: np.ndarray
    classes: list[dict]

    @property
    def bands(self) -> int:
        return len(self.source["bands"])

    @property
    def patch_size(self) -> int:
        return int(self.source["patch_size"])

    @property
    def class_ids(self) -> set[int]:
        return {int(c["id"]) for c in self.classes}


def load_dataset(path: str, parameter: str, source_name: str = "source1") -> LabelledPatches:
    """A manifest with a labels image (one class per patch) and the named image source."""
    from ..data.manifest import load_manifest, refuse_nonfinite

    manifest = load_manifest(path, parameter)
    labels = manifest.get("labels")
    if not labels or int(labels.get("patch_size", 1)) != 1:
        raise PatchFlowError(f"{path} has no labels image (one class per patch): the classifier needs a dataset "
                             "with a class field (labels image). Extract patches with CLASS_FIELD set.", parameter)
    sources = {s["name"]: s for s in manifest["sources"] if s.get("role", "image") == "image"}
    if source_name not in sources:
        raise PatchFlowError(f"{path} has no source '{source_name}' (it has: {', '.join(sources)}).", parameter)
    refuse_nonfinite(manifest, path, parameter, [source_name])
    ds = open_raster(labels["patches"], parameter)
    values = ds.ReadAsArray().reshape(-1).astype(np.int64)
    ds = None
    count = int(manifest.get("n_patches", len(values)))
    if len(values) != count:
        raise PatchFlowError(f"{labels['patches']} holds {len(values)} labels for {count} patches.", parameter)
    classes = [{"id": int(c["id"]), "name": c.get("name") or f"class {c['id']}", "color": c.get("color") or ""}
               for c in manifest.get("classes", [])]
    known = {c["id"] for c in classes}
    from ..geodata.classes import default_color

    for position, value in enumerate(sorted(set(values.tolist()) - known)):
        classes.append({"id": value, "name": f"class {value}", "color": default_color(len(known) + position)})
    classes.sort(key=lambda c: c["id"])
    return LabelledPatches(path, parameter, manifest, sources[source_name], values, classes)


def check_compatible(dataset: LabelledPatches, extractor: FeatureExtractor) -> None:
    parameter = "MODEL" if extractor.kind == DEEP and dataset.parameter == "DATASET" else dataset.parameter
    if dataset.bands != extractor.bands:
        raise PatchFlowError(f"the model takes {extractor.bands} bands but {dataset.path} has {dataset.bands}. "
                             "Use a dataset extracted from the bands the model was trained on.", parameter)
    if extractor.patch_size > dataset.patch_size:
        raise PatchFlowError(f"the model takes {extractor.patch_size} px patches but {dataset.path} holds "
                             f"{dataset.patch_size} px patches. Extract patches of {extractor.patch_size} px or "
                             "more.", parameter)


def check_validation(train: LabelledPatches, valid: LabelledPatches) -> None:
    if valid.bands != train.bands:
        raise PatchFlowError(f"{valid.path} has {valid.bands} bands but the training dataset has {train.bands}. "
                             "Extract both from the same rasters.", "VALID")
    names = {c["id"]: c["name"] for c in train.classes}
    unknown = sorted(valid.class_ids - set(names))
    renamed = sorted(c["id"] for c in valid.classes if c["id"] in names and c["name"] != names[c["id"]]
                     and not _default_name(c) and not _default_name({"id": c["id"], "name": names[c["id"]]}))
    if unknown or renamed:
        detail = (f"classes {unknown} are not in the training dataset" if unknown
                  else f"classes {renamed} have other names than in the training dataset")
        raise PatchFlowError(f"{valid.path}: {detail}. Extract training and validation patches with the same "
                             "class field from one sample set (grid split).", "VALID")


def _default_name(info: dict) -> bool:
    """A name made up for an id that came without one (it does not conflict with a real name)."""
    return info["name"] == f"class {info['id']}"


def dataset_features(dataset: LabelledPatches, extractor: FeatureExtractor, reporter: Reporter,
                     cancelled: Callable[[], bool] = lambda: False) -> np.ndarray:
    """Features (n, F) of every patch of the dataset, read in chunks of about CHUNK_BYTES."""
    image = PatchesImage(dataset.source["patches"], dataset.patch_size, dataset.parameter)
    per_patch = image.patch_size * image.patch_size * image.bands * image.dtype.itemsize
    step = max(1, CHUNK_BYTES // per_patch)
    parts = []
    for start in range(0, len(image), step):
        if cancelled():
            raise Cancelled()
        parts.append(extractor.from_dataset_patches(image.read(start, start + step)))
        reporter.progress(100.0 * min(len(image), start + step) / max(1, len(image)))
    del image
    return np.concatenate(parts) if parts else np.empty((0, 0), np.float32)


# ---- training -----------------------------------------------------------------------------------------


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
    valid_path = params.string("VALID")

    trusted = params.boolean("TRUST_MODEL")
    extractor = deep_extractor(model_path, feature_output, "MODEL", trusted, context.reporter) if model_path else None
    source_name = extractor.source if extractor else "source1"
    train = load_dataset(params.string("DATASET"), "DATASET", source_name)
    if extractor is None:
        extractor = FeatureExtractor(PIXELS, train.bands, 1, source_name)
    check_compatible(train, extractor)
    valid = load_dataset(valid_path, "VALID", source_name) if valid_path else None
    if valid is not None:
        check_validation(train, valid)
        check_compatible(valid, extractor)
    staged = context.staging.stage(output, "OUTPUT")
    stem = os.path.splitext(output)[0]
    staged_json = context.staging.stage(stem + ".json", "OUTPUT")
    staged_csv = context.staging.stage(stem + "_validation.csv", "OUTPUT") if valid else None

    reporter = context.reporter
    what = "band values of each patch's centre pixel" if extractor.kind == PIXELS else (
        f"output '{feature_output}' of {extractor.model_path}")
    reporter.log(f"features: {what}")
    features = dataset_features(train, extractor, reporter.span(0, 40 if valid else 60), context.cancelled)
    valid_features = (dataset_features(valid, extractor, reporter.span(40, 60), context.cancelled)
                      if valid else None)
    reporter.log(f"{len(features)} training samples, {features.shape[1]} features each")
    classifier = make_classifier(kind, n_trees, max_depth, svm_c, seed, train.labels)
    classifier.fit(features, train.labels)
    if context.cancelled():
        raise Cancelled()
    reporter.progress(85)
    training_scores = scores_of(train.labels, classifier.predict(features), train.classes)
    reporter.log(f"training: overall accuracy {training_scores.overall_accuracy:.4f}, "
                 f"kappa {training_scores.kappa:.4f} (on the samples it was fitted on)")
    outputs: dict[str, Any] = {"OUTPUT": output, "DESCRIPTION": stem + ".json", "COUNT": int(len(features)),
                               "N_FEATURES": int(features.shape[1]), "VALID_OA": None, "VALID_KAPPA": None,
                               "VALIDATION_CSV": None}
    validation = None
    if valid is not None:
        scores = scores_of(valid.labels, classifier.predict(valid_features), train.classes)
        assert staged_csv is not None  # staged with VALID
        scores.write_csv(staged_csv)
        validation = {"dataset": os.path.abspath(valid.path), "n_samples": int(len(valid.labels)),
                      **scores.as_dict()}
        reporter.log(f"validation ({len(valid.labels)} samples): overall accuracy {scores.overall_accuracy:.4f}, "
                     f"kappa {scores.kappa:.4f}")
        outputs.update(VALID_OA=float(scores.overall_accuracy), VALID_KAPPA=float(scores.kappa),
                       VALIDATION_CSV=stem + "_validation.csv")
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
        "classes": train.classes,
        "training": {"dataset": os.path.abspath(train.path), "n_samples": int(len(features)),
                     **training_scores.as_dict()},
        "validation": validation,
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


# ---- classification ------------------------------------------------------------------------------------


def is_skops(path: str) -> bool:
    """Whether the file is a skops archive (a zip with its schema), whatever its name."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return "schema.json" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def load_estimator(path: str, parameter: str = "CLASSIFIER", trusted: bool = False,
                   reporter: Reporter | None = None) -> Any:
    """The scikit-learn estimator of a classifier file, checked before anything is built: a skops
    file with only skops' safe types and ``SKOPS_TYPES``; a pickle only when ``trusted``."""
    from ..models.modelsafety import TRUST_LABEL

    if is_skops(path):
        import skops.io

        untrusted = skops.io.get_untrusted_types(file=path)  # reads the schema, builds nothing
        foreign = sorted(set(untrusted) - set(SKOPS_TYPES))
        if foreign and not trusted:
            raise PatchFlowError(f"{path} holds types PatchFlow's classifiers do not use: {', '.join(foreign)}. "
                                 "Building them could run code on this computer. Train the classifier again with "
                                 f"'Train classifier', or tick TRUST_MODEL (\"{TRUST_LABEL}\") only if the file "
                                 "comes from a source you trust.", parameter)
        if foreign and reporter is not None:
            reporter.warning(f"{path} is trusted (TRUST_MODEL) although it holds types PatchFlow's classifiers do "
                             f"not use: {', '.join(foreign)}.")
        return skops.io.load(path, trusted=[name for name in untrusted if name in SKOPS_TYPES or trusted])
    if not trusted:
        raise PatchFlowError(f"{path} is a pickle (a .joblib or .pkl classifier, as older PatchFlow versions "
                             "wrote): loading it could run any code on this computer. Train the classifier again "
                             f"with 'Train classifier' (it writes {EXTENSION} files, which cannot run code), or tick "
                             f"TRUST_MODEL (\"{TRUST_LABEL}\") only if the file comes from a source you trust.",
                             parameter)
    if reporter is not None:
        reporter.warning(f"{path} is a pickle, loaded because TRUST_MODEL is ticked: it can run any code. Train "
                         f"the classifier again to get a {EXTENSION} file.")
    import joblib

    return joblib.load(path)


def load_classifier(path: str, parameter: str = "CLASSIFIER", trusted: bool = False,
                    reporter: Reporter | None = None) -> tuple[Any, dict]:
    """The estimator (checked before it is built, see ``load_estimator``) and its description
    (``<stem>.json`` beside it)."""
    if not path or not os.path.exists(path):
        raise PatchFlowError(f"classifier not found: {path}. Train one with 'Train classifier'.", parameter)
    description_path = os.path.splitext(path)[0] + ".json"
    if not os.path.exists(description_path):
        raise PatchFlowError(f"{description_path} is missing: it tells how {os.path.basename(path)}'s features are "
                             "made. Keep it beside the classifier.", parameter)
    try:
        with open(description_path, encoding="utf-8") as handle:
            description = json.load(handle)
        if description.get("format") != FORMAT:
            raise ValueError(f"no format '{FORMAT}'")
    except (OSError, ValueError) as exc:
        raise PatchFlowError(f"cannot read the classifier's description {description_path}: {exc}", parameter) from None
    try:
        classifier = load_estimator(path, parameter, trusted, reporter)
    except PatchFlowError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken file raises anything
        raise PatchFlowError(f"cannot read the classifier {path}: {type(exc).__name__}: {exc}. Train it again with "
                             "'Train classifier'.", parameter) from None
    if not hasattr(classifier, "predict"):
        raise PatchFlowError(f"{path} holds a {type(classifier).__name__}, not a classifier. Train one with "
                             "'Train classifier'.", parameter)
    return classifier, description


def _create(path: str, stack: RasterStack, dtype: np.dtype, nodata: float, description: str,
            parameter: str) -> gdal.Dataset:
    grid = stack.grid
    ds = create_geotiff(path, grid.width, grid.height, 1, dtype, GTIFF_OPTIONS, parameter, grid.geotransform,
                        grid.crs_wkt)
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(nodata)
    band.SetDescription(description)
    return ds


def padded_block(stack: RasterStack, window: tuple[int, int, int, int], patch_size: int) -> np.ndarray:
    """The window with p // 2 pixels before and p - 1 - p // 2 after on each axis, (rows, cols, bands);
    what lies outside the scene is mirrored from inside (reflection, edge pixel not repeated)."""
    xoff, yoff, width, height = window
    before, after = patch_size // 2, patch_size - 1 - patch_size // 2
    grid = stack.grid
    x0, y0 = max(0, xoff - before), max(0, yoff - before)
    x1, y1 = min(grid.width, xoff + width + after), min(grid.height, yoff + height + after)
    values = stack.read((x0, y0, x1 - x0, y1 - y0))
    pads = ((0, 0), (y0 - (yoff - before), yoff + height + after - y1),
            (x0 - (xoff - before), xoff + width + after - x1))
    if any(p for pair in pads for p in pair):
        values = np.pad(values, pads, mode="reflect")
    return values


def classify_block(values: np.ndarray, invalid: np.ndarray, extractor: FeatureExtractor, classifier,
                   with_confidence: bool,
                   cancelled: Callable[[], bool] = lambda: False) -> tuple[np.ndarray, np.ndarray | None]:
    """Classes (and max probabilities) of the valid pixels of a block: ``values`` is the padded block
    (bands, rows + p - 1, cols + p - 1), ``invalid`` the (rows, cols) pixels to skip."""
    from numpy.lib.stride_tricks import sliding_window_view

    p = extractor.patch_size
    # (bands, rows, cols, p, p); numpy 1.26's stub takes one axis only
    windows = sliding_window_view(values, (p, p), axis=(1, 2))  # type: ignore[call-overload]
    cols = invalid.shape[1]
    flat = np.flatnonzero(~invalid)
    classes, confidence = [], []
    step = CHUNK_PIXELS if p > 1 else PIXEL_CHUNK
    for start in range(0, len(flat), step):
        if cancelled():
            raise Cancelled()
        index = flat[start:start + step]
        patches = windows[:, index // cols, index % cols].transpose(1, 2, 3, 0)  # (n, p, p, bands)
        features = extractor.from_patches(patches)
        if with_confidence:
            probabilities = classifier.predict_proba(features)
            classes.append(np.asarray(classifier.classes_)[probabilities.argmax(axis=1)])
            confidence.append(probabilities.max(axis=1).astype(np.float32))
        else:
            classes.append(classifier.predict(features))
    empty = np.empty(0)
    return (np.concatenate(classes) if classes else empty,
            (np.concatenate(confidence) if confidence else empty) if with_confidence else None)


def run_classify(params: Params, context: RunContext) -> dict:
    """Classify a raster, block by block, with a classifier trained by run_train_classifier."""
    from .. import checks

    checks.writable(params, "OUTPUT", "OUTPUT_CONFIDENCE")
    checks.rasters(params, "INPUT", reporter=context.reporter)
    checks.input_against_classifier(params, checks.classifier_description(params.values.get("CLASSIFIER")))
    classifier_path = params.string("CLASSIFIER")
    trusted = params.boolean("TRUST_MODEL")
    classifier, description = load_classifier(classifier_path, "CLASSIFIER", trusted, context.reporter)
    stack = RasterStack(params.paths("INPUT"), "INPUT")
    output = params.string("OUTPUT")
    confidence_path = params.string("OUTPUT_CONFIDENCE")
    bands = int(description["bands"])
    if stack.band_count != bands:
        names = ", ".join(description.get("band_descriptions") or [])
        raise PatchFlowError(f"the classifier was trained on {bands} bands ({names}) but the input has "
                             f"{stack.band_count}. Give the same bands, stacked in the same order.", "INPUT")
    extractor = reload_extractor(description, "CLASSIFIER", trusted, context.reporter)
    if min(stack.grid.width, stack.grid.height) < 2 and extractor.patch_size > 1:
        raise PatchFlowError("the input is less than 2 pixels wide or high; patches cannot be mirrored at its "
                             "edges.", "INPUT")
    classes = description["classes"]
    dtype, nodata = class_map_encoding([c["id"] for c in classes])
    staged = context.staging.stage(output, "OUTPUT")
    staged_qml = context.staging.stage(sidecar_path(output), "OUTPUT")
    staged_confidence = context.staging.stage(confidence_path, "OUTPUT_CONFIDENCE") if confidence_path else None
    class_ds = _create(staged, stack, dtype, nodata, "class", "OUTPUT")
    confidence_ds = (_create(staged_confidence, stack, np.dtype(np.float32), CONFIDENCE_NODATA, "confidence",
                             "OUTPUT_CONFIDENCE")
                     if staged_confidence else None)
    block = stack.datasets[0].GetRasterBand(1).GetBlockSize()
    windows = list(block_windows(stack.grid.width, stack.grid.height, block,
                                 PIXEL_BLOCK if extractor.kind == PIXELS else DEEP_BLOCK))
    fill = extractor.fill_value()
    p = extractor.patch_size
    counts = np.zeros(len(classes), dtype=np.int64)
    ids = np.asarray([c["id"] for c in classes])
    for done, window in enumerate(windows):
        if context.cancelled():
            raise Cancelled()
        xoff, yoff, width, height = window
        values = padded_block(stack, window, p)
        missing = stack.nodata_mask(values)
        invalid = missing[p // 2:p // 2 + height, p // 2:p // 2 + width]
        if missing.any() and p > 1:
            values = np.where(missing[np.newaxis], fill[:, None, None], values.astype(np.float32))
        labels, confidence = classify_block(values, invalid, extractor, classifier, confidence_ds is not None,
                                            context.cancelled)
        class_block = np.full((height, width), nodata, dtype=dtype)
        class_block[~invalid] = labels
        class_ds.GetRasterBand(1).WriteArray(class_block, xoff, yoff)
        counts += np.bincount(np.searchsorted(ids, labels), minlength=len(ids))[:len(ids)] if len(labels) else 0
        if confidence_ds is not None:
            confidence_block = np.full((height, width), CONFIDENCE_NODATA, dtype=np.float32)
            confidence_block[~invalid] = confidence
            confidence_ds.GetRasterBand(1).WriteArray(confidence_block, xoff, yoff)
        context.reporter.progress(99.0 * (done + 1) / len(windows))
    set_class_table(class_ds.GetRasterBand(1), classes)
    class_ds = None
    confidence_ds = None
    write_class_qml(staged_qml, classes)
    total = int(counts.sum())
    for info, count in zip(classes, counts):
        context.reporter.log(f"{info['id']} {info['name']}: {int(count)} px ({100.0 * count / max(1, total):.1f} %)")
    context.reporter.progress(100)
    return {"OUTPUT": output, "OUTPUT_CONFIDENCE": confidence_path, "STYLE": sidecar_path(output),
            "CLASSES": classes, "COUNT": total}
