"""The features a classifier of ``train_classifier`` and ``classify`` is fitted on and applied to:
a ``FeatureExtractor`` turns raw patches centred on the pixels to classify into feature vectors,
either a trained network's feature output (``features`` by default, one vector per patch) or,
without a model, the band values of each patch's centre pixel (the per-pixel baseline), with, for
the contextual baseline (``CONTEXT``), each band's mean and standard deviation over the N x N
pixels around it (the patch's centred N x N sub-patch; nodata pixels left out, as NaN). The
network goes through the model gate (``modelsafety.open_model``) when it is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import PatchFlowError
from ..geodata.raster import nodata_mask
from ..models.modelcard import Normalization, load_card
from ..reporting import Reporter

PIXELS, DEEP, CONTEXT = "pixels", "deep_features", "pixels_neighbourhood"


@dataclass
class ModelInput:
    """One input of a model: its name, the dataset source feeding it, its bands, patch size (at its
    own resolution), normalisation and ground pixel size (its card's)."""

    name: str
    source: str
    bands: int
    patch_size: int
    normalization: Normalization = field(default_factory=Normalization)
    pixel_size: float | None = None

    def fill_value(self) -> np.ndarray:
        """What this source's nodata pixels become (its band means, as for the first input)."""
        norm = self.normalization
        if norm.kind == "standard" and norm.mean:
            return np.asarray(norm.mean, dtype=np.float32)
        return np.zeros(self.bands, dtype=np.float32)


@dataclass
class FeatureExtractor:
    """Turns raw patches (n, p, p, bands), centred on the pixels to classify, into feature vectors.

    ``patch_size`` is 1 for the per-pixel classifier (the features are the band values), N for the
    contextual one (``nodata``: each band's, the pixels left out of the neighbourhood)."""

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
    nodata: tuple[float | None, ...] = ()
    pixel_size: float | None = None  # the first input's (its card's)
    extra: tuple[ModelInput, ...] = ()  # a multi-input model's other inputs, in the dataset's source order

    @property
    def inputs(self) -> list[ModelInput]:
        """Every model input, the first (fed by source ``source``, Classify's INPUT) first."""
        first = ModelInput(self.input_name or "", self.source, self.bands, self.patch_size, self.normalization,
                           self.pixel_size)
        return [first, *self.extra]

    def from_dataset_patches(self, patches: np.ndarray, extra: Sequence[np.ndarray] = ()) -> np.ndarray:
        """Features of dataset patches (n, P, P, bands), P >= patch_size: the model sees the centred
        sub-patch (same centre pixel P // 2); ``extra``: the other inputs' patches, cropped alike."""
        patches = centred(patches, self.patch_size)
        if self.extra:
            return self.from_patches(patches, [centred(p, spec.patch_size) for p, spec in zip(extra, self.extra)])
        if self.kind == CONTEXT:  # nodata pixels become NaN, as Classify fills them (fill_value)
            missing = np.zeros(patches.shape[:3], dtype=bool)
            for index, nodata in enumerate(self.nodata):
                missing |= nodata_mask(patches[..., index], nodata)
            if patches.dtype.kind == "f":
                missing |= ~np.isfinite(patches).all(axis=-1)
            if missing.any():
                patches = np.where(missing[..., None], np.float32(np.nan), patches.astype(np.float32))
        return self.from_patches(patches)

    def from_patches(self, patches: np.ndarray, extra: Sequence[np.ndarray] = ()) -> np.ndarray:
        """Features of (n, p, p, bands) patches; ``extra``: each other input's (n, p_i, p_i, bands_i)."""
        if self.kind == PIXELS:
            return patches[:, 0, 0, :].astype(np.float32)
        if self.kind == CONTEXT:
            return neighbourhood_features(patches)
        inputs = {self.input_name: self.normalization.apply(patches)}
        inputs.update({spec.name: spec.normalization.apply(values) for spec, values in zip(self.extra, extra)})
        values = self.model.predict(inputs, outputs=[self.feature_output])[self.feature_output]
        values = np.asarray(values)
        if values.ndim == 4:  # spatial output (n, h, w, F): the centre position
            values = values[:, values.shape[1] // 2, values.shape[2] // 2, :]
        return values.reshape(len(patches), -1).astype(np.float32, copy=False)

    def fill_value(self) -> np.ndarray:
        """What nodata pixels around a valid pixel are replaced with: the band means (0 once
        standardised), so a neighbour's nodata value does not reach the network."""
        if self.kind == CONTEXT:  # left out of the means and deviations
            return np.full(self.bands, np.nan, dtype=np.float32)
        norm = self.normalization
        if norm.kind == "standard" and norm.mean:
            return np.asarray(norm.mean, dtype=np.float32)
        return np.zeros(self.bands, dtype=np.float32)

    def describe(self) -> dict:
        return {"kind": self.kind, "model": self.model_path, "model_card": self.card_summary,
                "feature_output": self.feature_output, "input_name": self.input_name, "source": self.source,
                "bands": self.bands, "patch_size": self.patch_size, "normalization": asdict(self.normalization),
                **({"neighbourhood": self.patch_size, "nodata": list(self.nodata)} if self.kind == CONTEXT else {})}


def centred(patches: np.ndarray, size: int) -> np.ndarray:
    """The centred size x size sub-patches of (n, P, P, bands) patches (same centre pixel P // 2)."""
    offset = patches.shape[1] // 2 - size // 2
    return patches[:, offset:offset + size, offset:offset + size, :]


def neighbourhood_features(patches: np.ndarray) -> np.ndarray:
    """(n, 3 x bands): the centre pixel's band values, then each band's mean, then its standard
    deviation (population) over the patch's pixels that are not NaN (nodata). Computed in float64
    from the float32 values, the same way for the dataset's patches and for Classify's."""
    values = np.asarray(patches, dtype=np.float32).astype(np.float64)
    n, rows, cols, bands = values.shape
    flat = values.reshape(n, rows * cols, bands)
    valid = np.isfinite(flat)
    count = valid.sum(axis=1)
    safe = np.maximum(count, 1)
    mean = np.where(valid, flat, 0.0).sum(axis=1) / safe
    spread = np.where(valid, flat - mean[:, None, :], 0.0)
    std = np.sqrt((spread * spread).sum(axis=1) / safe)
    centre = values[:, rows // 2, cols // 2, :]
    features = np.concatenate([centre, np.where(count > 0, mean, centre), std], axis=1)
    return np.where(np.isfinite(features), features, 0.0).astype(np.float32)


def pixel_extractor(choice: str, neighbourhood: int, bands: int, dataset_patch_size: int,
                    nodata: list[float | None], source: str = "source1") -> FeatureExtractor:
    """The extractor of a classifier without a model: pixel values, or with their N x N
    neighbourhood's mean and std (N = ``neighbourhood``, 0: the dataset's patch size)."""
    if choice == PIXELS:
        return FeatureExtractor(PIXELS, bands, 1, source)
    size = neighbourhood or dataset_patch_size
    if size > dataset_patch_size:
        raise PatchFlowError(f"a {size} x {size} neighbourhood does not fit in the dataset's {dataset_patch_size} px "
                             f"patches. Choose NEIGHBOURHOOD {dataset_patch_size} or less (0: the patch size), or "
                             f"extract patches of {size} px or more.", "NEIGHBOURHOOD")
    return FeatureExtractor(CONTEXT, bands, size, source, nodata=tuple(nodata))


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
                   reporter: Reporter | None = None, source_order: Sequence[str] | None = None) -> FeatureExtractor:
    """Load the model (through the safety gate) and check it has the feature output and a card. A
    model with several inputs: each is fed the source its card names, the first in ``source_order``
    (the dataset's sources) first: that one is Classify's INPUT, the others INPUT2, INPUT3."""
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
    if card is None:
        raise PatchFlowError(f"{path} has no PatchFlow model card (patchflow_card.json / <stem>.card.json), so its "
                             "bands, patch size and normalisation are unknown. Use a model written by PatchFlow.",
                             parameter)
    if len(model.input_names) == 1:
        specs = [card.inputs[0] if len(card.inputs) == 1 else card.input(model.input_names[0])]
        names = list(model.input_names)
    else:
        unknown = [name for name in model.input_names if name not in {spec.name for spec in card.inputs}]
        if unknown:
            raise PatchFlowError(f"the model's inputs {', '.join(unknown)} are not in its card (inputs: "
                                 f"{', '.join(spec.name for spec in card.inputs)}). Use a model written by PatchFlow.",
                                 parameter)
        specs = [card.input(name) for name in model.input_names]
        order = list(source_order or [])
        specs.sort(key=lambda spec: order.index(spec.source) if spec.source in order else len(order))
        names = [spec.name for spec in specs]
    first, *others = specs
    extra = tuple(ModelInput(spec.name, spec.source, spec.bands, spec.patch_size, spec.normalization,
                             spec.pixel_size) for spec in others)
    return FeatureExtractor(DEEP, first.bands, first.patch_size, first.source, path, feature_output, names[0],
                            first.normalization, card_summary(card), model, pixel_size=first.pixel_size, extra=extra)


def reload_extractor(description: dict, parameter: str = "CLASSIFIER", trusted: bool = False,
                     reporter: Reporter | None = None) -> FeatureExtractor:
    """The extractor a classifier's json describes (its model loaded again, through the safety gate)."""
    if description["kind"] == PIXELS:
        return FeatureExtractor(PIXELS, int(description["bands"]), 1, description.get("source", "source1"))
    if description["kind"] == CONTEXT:
        return FeatureExtractor(CONTEXT, int(description["bands"]), int(description["patch_size"]),
                                description.get("source", "source1"), nodata=tuple(description.get("nodata") or ()))
    model_path = description["model"]
    if not os.path.exists(model_path):
        raise PatchFlowError(f"the classifier's model {model_path} is gone. Put it back, or train the classifier "
                             "again.", parameter)
    try:
        extractor = deep_extractor(model_path, description["feature_output"], parameter, trusted, reporter,
                                   [s["name"] for s in description.get("sources") or []])
    except PatchFlowError as exc:
        if exc.parameter != parameter:
            raise
        raise PatchFlowError(f"the classifier's network: {exc.message}", parameter) from None
    sources = description.get("sources") or [description]
    if [(spec.source, spec.bands, spec.patch_size) for spec in extractor.inputs][1:] != [
            (s["name"], int(s["bands"]), int(s["patch_size"])) for s in sources[1:]]:
        raise PatchFlowError(f"the model {model_path} changed since the classifier was trained (its inputs now take "
                             + ", ".join(f"{spec.source}: {spec.patch_size} px patches of {spec.bands} bands"
                                         for spec in extractor.inputs) + "). Train the classifier again.", parameter)
    if (extractor.bands, extractor.patch_size) != (int(description["bands"]), int(description["patch_size"])):
        raise PatchFlowError(f"the model {model_path} changed since the classifier was trained (it now takes "
                             f"{extractor.patch_size} px patches of {extractor.bands} bands). Train the classifier "
                             "again.", parameter)
    return extractor
