"""The features a classifier of ``train_classifier`` and ``classify`` is fitted on and applied to:
a ``FeatureExtractor`` turns raw patches centred on the pixels to classify into feature vectors,
either a trained network's feature output (``features`` by default, one vector per patch) or,
without a model, the band values of each patch's centre pixel (the per-pixel baseline). The
network goes through the model gate (``modelsafety.open_model``) when it is loaded.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import PatchFlowError
from ..models.modelcard import Normalization, load_card
from ..reporting import Reporter

PIXELS, DEEP = "pixels", "deep_features"


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
