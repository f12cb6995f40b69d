"""The model card: a JSON file travelling with every model PatchFlow writes, telling what the
model expects (inputs: names, bands, patch sizes, normalisation) and gives (outputs and their
meaning, receptive and expression fields, crop margins, scale factor, classes), so training,
serving and deep-feature classification read it instead of asking the user.

Where it lives: inside a SavedModel directory as ``patchflow_card.json`` (next to
``saved_model.pb``, so it moves with the model); beside a ``.keras`` file as ``<stem>.card.json``.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ...protocol import strict_dump
from ..errors import PatchFlowError

FORMAT = "patchflow-model"
VERSION = 1
CARD_NAME = "patchflow_card.json"
OUTPUT_KINDS = ("class", "probabilities", "features", "image")


def card_path(model_path: str) -> str:
    """Where the card of the model at ``model_path`` (SavedModel directory or .keras file) lives."""
    if os.path.isdir(model_path) or not os.path.splitext(model_path)[1]:
        return os.path.join(model_path, CARD_NAME)
    return os.path.splitext(model_path)[0] + ".card.json"


@dataclass
class Normalization:
    """How raw pixel values become the model's input: ``standard`` ((x - mean) / std per band),
    ``scale`` (x * scale) or ``none``."""

    kind: str = "none"
    mean: list[float] | None = None
    std: list[float] | None = None
    scale: float | None = None

    def apply(self, values: np.ndarray) -> np.ndarray:
        """``values`` channels last (..., bands) -> float32."""
        data = values.astype(np.float32, copy=False)
        if self.kind == "standard":
            std = np.asarray(self.std, dtype=np.float32)
            return (data - np.asarray(self.mean, dtype=np.float32)) / np.where(std > 0, std, 1.0)
        if self.kind == "scale":
            return data * np.float32(self.scale)
        return data

    @classmethod
    def from_stats(cls, bands: list[dict]) -> Normalization:
        """Standardisation with the per-band mean/std of a dataset manifest's source entry."""
        return cls("standard", [float(b["mean"]) for b in bands], [float(b["std"]) for b in bands])


@dataclass
class InputSpec:
    name: str  # the model's input name
    bands: int
    patch_size: int  # receptive field of this input at training time (pixels)
    source: str = "source1"  # the dataset source feeding it
    normalization: Normalization = field(default_factory=Normalization)
    # the source's ground pixel size (|dx|, map units) at training, from the dataset manifest: with several
    # inputs, the ratio to the first input's says at which resolution each source is served (None: unknown)
    pixel_size: float | None = None

    @classmethod
    def from_dict(cls, data: dict) -> InputSpec:
        size = data.get("pixel_size")
        return cls(data["name"], int(data["bands"]), int(data["patch_size"]), data.get("source", "source1"),
                   Normalization(**data.get("normalization", {})), None if size is None else float(size))


@dataclass
class OutputSpec:
    name: str  # the model's output name
    kind: str  # one of OUTPUT_KINDS
    channels: int
    crop: int = 0  # pixels cropped from each side (OTBTF's <name>_crop<N> outputs)
    stride: int = 1  # input pixels per output pixel when the model runs fully convolutionally
    scale_factor: float = 1.0  # output pixels per input pixel along an axis (super-resolution: > 1)
    description: str = ""
    value_range: list[list[float]] | None = None  # images: per band [min, max] of the training target


@dataclass
class ModelCard:
    architecture: str
    task: str
    inputs: list[InputSpec]
    outputs: list[OutputSpec]
    receptive_field: int  # input patch size the outputs below are defined for
    expression_field: int  # output patch size produced from one receptive field
    crop_margin: int = 0  # margin to crop from each output block for seamless serving
    scale_factor: float = 1.0
    classes: list[dict] = field(default_factory=list)  # id, name, color (index i of the model = classes[i])
    parameters: dict[str, Any] = field(default_factory=dict)  # architecture parameters (widths, ...)
    training: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    format: str = FORMAT
    version: int = VERSION

    def __post_init__(self) -> None:
        if not self.created:
            self.created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")

    # ---- lookups ----------------------------------------------------------------------------------

    def input(self, name: str) -> InputSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def output(self, name: str) -> OutputSpec:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def outputs_of_kind(self, kind: str) -> list[OutputSpec]:
        return [spec for spec in self.outputs if spec.kind == kind]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def class_ids(self) -> list[int]:
        return [int(c["id"]) for c in self.classes]

    # ---- (de)serialisation ------------------------------------------------------------------------

    def to_dict(self) -> dict:
        data = asdict(self)
        return {"format": data.pop("format"), "version": data.pop("version"), **data}

    @classmethod
    def from_dict(cls, data: dict) -> ModelCard:
        values = dict(data)
        values["inputs"] = [InputSpec.from_dict(d) for d in data["inputs"]]
        values["outputs"] = [OutputSpec(**d) for d in data["outputs"]]
        return cls(**values)

    def save(self, model_path: str) -> str:
        """Write the card where ``card_path(model_path)`` says; returns that path."""
        path = card_path(model_path)
        with open(path, "w", encoding="utf-8") as handle:
            strict_dump(self.to_dict(), handle, indent=2)
            handle.write("\n")
        return path


def load_card(model_path: str, parameter: str = "MODEL") -> ModelCard | None:
    """The card of the model at ``model_path``, or None when it has none (a user's own model)."""
    path = card_path(model_path)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if data.get("format") != FORMAT:
            raise ValueError(f"no format '{FORMAT}'")
        return ModelCard.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PatchFlowError(f"the model card {path} cannot be read ({exc}). Delete it to use the model "
                             "without a card, or write the model again with PatchFlow.", parameter) from None
