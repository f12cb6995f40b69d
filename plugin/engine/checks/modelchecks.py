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
    sources_against_classifier(params, description)


EXTRA_INPUTS = ("INPUT2", "INPUT3")  # Classify's sources 2 and 3 (classify/multisource.py)


def _source_label(entry: dict) -> str:
    size = entry.get("pixel_size")
    pixel = f" at {abs(float(size[0])):g}" if isinstance(size, list) and size and size[0] else ""
    return f"'{entry['name']}' ({entry['bands']} bands{pixel}, {entry['patch_size']} px patches)"


def sources_against_classifier(params: Params, description: dict) -> None:
    """Classify with a multi-source classifier: INPUT2, INPUT3 given for its other sources, each with
    their bands, INPUT's CRS, overlapping INPUT, at the pixel-size ratio to INPUT its training had."""
    from osgeo import gdal

    from ..geodata.raster import Grid

    sources = description.get("sources") or []
    if len(sources) > 1 + len(EXTRA_INPUTS):
        raise PatchFlowError(f"the classifier reads {len(sources)} sources; Classify takes {1 + len(EXTRA_INPUTS)} "
                             "at most (INPUT, " + ", ".join(EXTRA_INPUTS) + ").", "CLASSIFIER")
    for index, parameter in enumerate(EXTRA_INPUTS, start=1):
        if raster_paths(params, parameter) and index >= len(sources):
            raise PatchFlowError(f"the classifier reads {max(1, len(sources))} source(s) "
                                 f"({', '.join(_source_label(s) for s in sources) or 'INPUT'}): {parameter} is not "
                                 f"used. Clear {parameter}, or use a classifier trained on a multi-source model.",
                                 parameter)
    paths = raster_paths(params, "INPUT")
    if len(sources) < 2 or not paths:
        return
    reference = Grid.of(gdal.Open(paths[0]), "INPUT")
    for parameter, entry in zip(EXTRA_INPUTS, sources[1:]):
        given = raster_paths(params, parameter)
        label = _source_label(entry)
        if not given:
            listed = ", ".join(map(_source_label, sources))
            raise PatchFlowError(f"the classifier reads {len(sources)} sources ({listed}): give source {label} as "
                                 f"{parameter} (the rasters it was extracted from, or the same bands over this "
                                 "scene).", parameter)
        have = stacked_bands(given)
        if have != int(entry["bands"]):
            names = ", ".join(entry.get("band_descriptions") or [])
            raise PatchFlowError(f"the classifier's source {label} has {entry['bands']} bands ({names}) but "
                                 f"{parameter} has {have}. Give the same bands, stacked in the same order.", parameter)
        grid = Grid.of(gdal.Open(given[0]), parameter)
        _same_ground(reference, grid, parameter)
        _pixel_ratio(reference, grid, sources[0], entry, parameter)


def _same_ground(reference, grid, parameter: str) -> None:
    from ..geodata.raster import crs_label

    if not reference.same_crs_as(grid):
        raise PatchFlowError(f"{parameter} is in {crs_label(grid.crs_wkt)} but INPUT is in "
                             f"{crs_label(reference.crs_wkt)}. Reproject it to INPUT's CRS first (gdalwarp -t_srs).",
                             parameter)
    ax0, ay0, ax1, ay1 = reference.extent
    bx0, by0, bx1, by1 = grid.extent
    if bx1 <= ax0 or bx0 >= ax1 or by1 <= ay0 or by0 >= ay1:
        raise PatchFlowError(f"{parameter} ({bx0:g},{bx1:g},{by0:g},{by1:g}) does not overlap INPUT ({ax0:g},{ax1:g},"
                             f"{ay0:g},{ay1:g}). Give the rasters of the same scene.", parameter)


def _pixel_ratio(reference, grid, first: dict, entry: dict, parameter: str) -> None:
    """INPUT_i's pixel size / INPUT's within 1 % of the training sources' (the dataset's, else the card's)."""
    def size(source: dict, axis: int) -> float | None:
        value = source.get("pixel_size")
        if isinstance(value, list) and len(value) > axis and value[axis]:
            return abs(float(value[axis]))
        card = source.get("model_pixel_size")
        return abs(float(card)) if card else None

    for axis, (ref_pixel, pixel) in enumerate(((reference.dx, grid.dx), (reference.dy, grid.dy))):
        trained_first, trained = size(first, axis), size(entry, axis)
        if not trained_first or not trained:
            return  # unknown at training (patches-images made elsewhere)
        expected, have = trained / trained_first, abs(pixel) / abs(ref_pixel)
        if abs(have / expected - 1) > 0.01:
            raise PatchFlowError(
                f"{parameter}'s pixels are {abs(pixel):g} map units, {have:g} x INPUT's ({abs(ref_pixel):g}), but the "
                f"classifier's source '{entry['name']}' was {expected:g} x its first source's ({trained:g} to "
                f"{trained_first:g}). Resample {parameter} to {expected * abs(ref_pixel):g} (gdalwarp -tr), or give "
                "INPUT at the resolution it had.", parameter)


def inputs_against_dataset(inputs: list[tuple[str, str, int, int]], manifest: dict, path: str | None,
                           parameter: str) -> None:
    """Each (model input, source, bands, patch size) of a multi-input model has its source in the
    dataset, with its bands and patches as large: a missing source names ``parameter``, bands or a
    patch size the model cannot take name MODEL for DATASET (the model does not fit it), else ``parameter``."""
    sources = {s["name"]: s for s in manifest.get("sources") or [] if s.get("role", "image") == "image"}
    blame = "MODEL" if parameter == "DATASET" else parameter
    for name, source, bands, patch_size in inputs:
        entry = sources.get(source)
        if entry is None:
            raise PatchFlowError(f"the model's input '{name}' is fed the source '{source}' (its card) but {path} has "
                                 f"no such image source (it has: {', '.join(sources)}). Extract the patches with that "
                                 f"source too ({bands} bands, {patch_size} px patches), or choose a model made for "
                                 "this dataset.", parameter)
        have, size = len(entry["bands"]), int(entry["patch_size"])
        if have != bands:
            raise PatchFlowError(f"the model input '{name}' takes {bands} bands (its card) but the source '{source}' "
                                 f"of {path} has {have}. Use a dataset extracted from the bands the model was made "
                                 "for.", blame)
        if patch_size > size:
            raise PatchFlowError(f"the model input '{name}' takes {patch_size} px patches of '{source}' (its card) but "
                                 f"{path} has {size} px ones. Extract them with {patch_size} px or more.", blame)


def classifier_sources(params: Params) -> None:
    """train_classifier with a multi-input model: DATASET, VALID and TEST feed each of its inputs."""
    from ..data.manifest import load_manifest

    model = params.values.get("MODEL") or None
    card = card_of(model) if model else None
    if card is None or len(card.inputs) < 2:
        return
    inputs = [(spec.name, spec.source, spec.bands, spec.patch_size) for spec in card.inputs]
    for key in ("DATASET", "VALID", "TEST"):
        path = params.values.get(key) or None
        if path and not str(path).lower().endswith((".tif", ".tiff")):
            inputs_against_dataset(inputs, load_manifest(str(path), key), str(path), key)


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
