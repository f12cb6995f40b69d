"""The model and what it is given: the model loaded, each raster stack bound to the model input it feeds,
the outputs chosen (``<output>:argmax`` for a class map), and the model run on arrays with its outputs shaped
as (n, h, w, channels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PatchFlowError
from ..geodata.raster import RasterStack
from ..models.modelcard import Normalization
from ..models.modelio import InferenceModel, model_kind
from ..params import Params
from ..reporting import Reporter
from .sourcegrids import check_grids

MAX_SOURCES = 3
ARGMAX = ":argmax"  # "<output>:argmax": the index (or the card's class id) of each pixel's largest channel


@dataclass
class Source:
    name: str  # the model input it feeds
    stack: RasterStack
    normalization: Normalization
    # its grid against SOURCE1's (sourcegrids): pixel size ratio, SOURCE1 pixels per whole number of its
    # pixels, its receptive field in its own pixels (0: SOURCE1's, not yet set)
    ratio: float = 1.0
    period: int = 1
    receptive: int = 0
    parameter: str = "SOURCE1"


def load_model(params: Params, reporter: Reporter) -> InferenceModel:
    path = params.string("MODEL")
    kind = model_kind(path, "MODEL")
    model = InferenceModel.load(path, "MODEL", params.boolean("TRUST_MODEL"), reporter)
    if kind != "patchflow" or model.card is None:
        inputs = ", ".join(f"{n} ({model.input_bands.get(n)} bands)" for n in model.input_names)
        reporter.log(f"model inputs: {inputs}; outputs: {', '.join(model.output_names)}")
    return model


def bind_sources(params: Params, model: InferenceModel) -> list[Source]:
    """Which raster stack feeds which model input (INPUT_NAMES, else the card's order)."""
    stacks = [(f"SOURCE{i}", params.paths(f"SOURCE{i}", required=(i == 1))) for i in range(1, MAX_SOURCES + 1)]
    stacks = [(name, paths) for name, paths in stacks if paths]
    card = model.card
    given = [n.strip() for n in (params.string("INPUT_NAMES") or "").split(";") if n.strip()]
    names = given or ([spec.name for spec in card.inputs] if card else list(model.input_names))
    if len(stacks) != len(model.input_names):
        raise PatchFlowError(f"the model has {len(model.input_names)} input(s) ({', '.join(model.input_names)}) but "
                             f"{len(stacks)} source(s) were given. Give one source per model input.", "SOURCE1")
    unknown = [n for n in names if n not in model.input_names]
    if unknown or len(names) != len(stacks):
        raise PatchFlowError("INPUT_NAMES must name the model's inputs, one per source: "
                             f"{', '.join(model.input_names)} (got {', '.join(names) or 'none'}).", "INPUT_NAMES")
    sources = []
    for (parameter, paths), name in zip(stacks, names):
        stack = RasterStack(paths, parameter)
        bands = model.input_bands.get(name)
        if bands is not None and stack.band_count != bands:
            raise PatchFlowError(f"the model's input '{name}' takes {bands} bands but {parameter} has "
                                 f"{stack.band_count}. Stack the bands the model was trained on, in order.", parameter)
        normalization = card.input(name).normalization if card else Normalization()
        sources.append(Source(name, stack, normalization, parameter=parameter))
    # other resolutions, origins and extents are served at their own pixels (sourcegrids)
    check_grids(sources, [parameter for parameter, _ in stacks], card)
    return sources


def base_name(output: str) -> str:
    return output[:-len(ARGMAX)] if output.endswith(ARGMAX) else output


def choose_outputs(params: Params, model: InferenceModel) -> list[str]:
    text = params.string("OUTPUTS") or ""
    names = [n.strip() for n in text.split(";") if n.strip()]
    if not names:
        names = ["class"] if "class" in model.output_names else [model.output_names[0]]
    unknown = [n for n in names if base_name(n) not in model.output_names]
    if unknown:
        raise PatchFlowError(f"the model has no output {', '.join(unknown)}; its outputs: "
                             f"{', '.join(model.output_names)} (add {ARGMAX} to one for a class map).", "OUTPUTS")
    return names


def predict(model: InferenceModel, inputs: dict[str, np.ndarray], outputs: list[str],
            batch: int) -> dict[str, np.ndarray]:
    """The outputs as (n, h, w, channels): a (n, channels) output is one pixel, (n, h, w) one channel;
    ``<output>:argmax`` the index of the largest channel (the card's class id when it has classes)."""
    values = model.predict(inputs, list(dict.fromkeys(base_name(o) for o in outputs)), batch)
    shaped = {}
    for name in outputs:
        value = values[base_name(name)]
        if value.ndim == 2:
            value = value[:, np.newaxis, np.newaxis, :]
        elif value.ndim == 3:
            value = value[..., np.newaxis]
        if name.endswith(ARGMAX):
            index = np.argmax(value, axis=-1)
            ids = model.card.class_ids if model.card and model.card.classes else []
            value = (np.asarray(ids, np.int32)[index] if len(ids) == value.shape[-1] else index.astype(np.int32))
            value = value[..., np.newaxis]
        shaped[name] = value
    return shaped
