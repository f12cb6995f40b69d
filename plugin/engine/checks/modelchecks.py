"""The checks of a model or classifier against the data it is given, read from its card or its
description alone (no TensorFlow, no scikit-learn): the model exists, its inputs' bands and patch
size fit a dataset's sources or apply_model's sources, the outputs asked for exist, and a
classifier's bands match the input raster.
"""

from __future__ import annotations

import json
import os

from ..errors import PatchFlowError
from ..params import Params
from .rasterchecks import raster_paths


def model_folder(path: str) -> str:
    path = path.rstrip("/\\") or path
    return os.path.dirname(path) if os.path.basename(path) == "saved_model.pb" else path


def card_of(path: str | None, parameter: str = "MODEL"):
    """The model card of MODEL (None without a model or a card); a missing model is an error."""
    from ..models.modelcard import load_card
    from ..models.modelio import model_kind

    if not path:
        return None
    folder = model_folder(str(path))
    model_kind(folder, parameter)
    return load_card(folder, parameter)


def card_against_dataset(card, manifest: dict, inputs_text: str | None, path: str | None) -> None:
    """The bands and patch size each model input takes (its card) against the dataset's sources."""
    if card is None:
        return
    mapping = {spec.name: spec.source for spec in card.inputs}
    sources = {s["name"]: s for s in manifest.get("sources") or []}
    for item in (inputs_text or "").replace(",", ";").split(";"):
        name, _, source = item.partition("=")
        name, source = name.strip(), source.strip()
        if not name:
            continue
        if name not in mapping:
            raise PatchFlowError(f"the model has no input '{name}'; its inputs are: {', '.join(mapping)} (its card).",
                                 "INPUTS")
        if source not in sources:
            raise PatchFlowError(f"the dataset {path} has no source '{source}'; it has: {', '.join(sources)}.",
                                 "INPUTS")
        mapping[name] = source
    if len(card.inputs) == 1 and card.inputs[0].source not in sources and not inputs_text:
        images = [s for s in manifest.get("sources") or [] if s.get("role", "image") == "image"]
        mapping = {card.inputs[0].name: images[0]["name"]} if images else mapping
    for spec in card.inputs:
        entry = sources.get(mapping.get(spec.name, ""))
        if entry is None:
            continue  # the operation names the missing source
        bands, size = len(entry["bands"]), int(entry["patch_size"])
        if bands != spec.bands:
            raise PatchFlowError(f"the model input '{spec.name}' takes {spec.bands} bands (its card) but the dataset "
                                 f"source '{entry['name']}' of {path} has {bands}. Use a dataset extracted from the "
                                 "bands the model was made for, or create a model from this dataset.", "MODEL")
        if spec.patch_size > size:
            raise PatchFlowError(f"the model input '{spec.name}' takes {spec.patch_size}x{spec.patch_size} px patches "
                                 f"(its card) but {path} has {size}x{size}. Extract patches of {spec.patch_size} px or "
                                 "more.", "MODEL")


def stacked_bands(paths: list[str]) -> int:
    from osgeo import gdal

    return sum(gdal.Open(p).RasterCount for p in paths)


def sources_against_card(params: Params, card, sources: int = 3) -> None:
    """apply_model: one source per model input, each with the bands its input takes (the card)."""
    if card is None:
        return
    stacks = [(f"SOURCE{i}", raster_paths(params, f"SOURCE{i}")) for i in range(1, sources + 1)]
    stacks = [(name, paths) for name, paths in stacks if paths]
    given = [n.strip() for n in str(params.values.get("INPUT_NAMES") or "").split(";") if n.strip()]
    names = given or [spec.name for spec in card.inputs]
    if len(stacks) != len(card.inputs):
        listed = ", ".join(spec.name for spec in card.inputs)
        raise PatchFlowError(f"the model has {len(card.inputs)} input(s) ({listed}) but {len(stacks)} source(s) were "
                             "given. Give one source per model input.", "SOURCE1")
    specs = {spec.name: spec for spec in card.inputs}
    for (parameter, paths), name in zip(stacks, names):
        spec = specs.get(name)
        if spec is None:
            continue  # INPUT_NAMES is checked with the model
        bands = stacked_bands(paths)
        if bands != spec.bands:
            raise PatchFlowError(f"the model's input '{name}' takes {spec.bands} bands but {parameter} has {bands}. "
                                 "Stack the bands the model was trained on, in order.", parameter)


def classifier_description(path: str | None) -> dict | None:
    """The ``<stem>.json`` beside a classifier, or None when it is missing or unreadable (the
    classifier's loader explains)."""
    if not path:
        return None
    try:
        with open(os.path.splitext(str(path))[0] + ".json", encoding="utf-8") as handle:
            description = json.load(handle)
    except (OSError, ValueError):
        return None
    return description if isinstance(description, dict) else None


def input_against_classifier(params: Params, description: dict | None) -> None:
    if description is None or "bands" not in description:
        return
    paths = raster_paths(params, "INPUT")
    bands, have = int(description["bands"]), stacked_bands(paths)
    if paths and have != bands:
        names = ", ".join(description.get("band_descriptions") or [])
        raise PatchFlowError(f"the classifier was trained on {bands} bands ({names}) but the input has {have}. Give "
                             "the same bands, stacked in the same order.", "INPUT")


def outputs_in_card(path: str | None, card, names: list[str], parameter: str) -> None:
    """The model outputs asked for exist: a SavedModel PatchFlow wrote serves exactly its card's."""
    from ..models.modelio import model_kind

    if not path or card is None or not card.outputs or model_kind(model_folder(str(path))) != "patchflow":
        return
    known = [spec.name for spec in card.outputs]
    unknown = [name.strip() for name in names if name.strip() and name.strip().split(":")[0] not in known]
    if unknown:
        raise PatchFlowError(f"the model has no output {', '.join(unknown)}; its outputs: {', '.join(known)}.",
                             parameter)
