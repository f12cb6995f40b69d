"""A model's serving geometry (OTBTF's terms): a model input of ``rf`` x ``rf`` pixels (the receptive field)
gives ``ef`` x ``ef`` output pixels (the expression field); ``f`` output pixels per input pixel (the scale factor:
4 for a x4 super-resolution, 1/4 for a network with stride 4). One expression field covers ``unit = ef / f``
input pixels, centred on the patch centre (pixel rf // 2): the ``offset = rf // 2 - unit // 2`` input pixels
before it, and those after it, are context only. This module reads the declared geometry (parameters, else the
card), measures the one the model really has by probing it, whether it is fully convolutional, and the margin
over which cutting a block changes its outputs (``influence_radius``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import PatchFlowError
from ..models.modelcard import ModelCard
from ..models.modelio import InferenceModel
from ..params import Params
from .binding import Source, base_name, predict
from .sourcegrids import alignment, describe, input_sizes

PROBE_CORE, PROBE_MARGIN = 128, 96  # input pixels: the block whose edges are probed, the context added around
PROBE_TOLERANCE = 1e-5


@dataclass
class Geometry:
    receptive: int  # input pixels
    expression: int  # output pixels from one receptive field
    factor: float  # output pixels per input pixel

    @property
    def unit(self) -> int:
        return int(round(self.expression / self.factor))

    @property
    def offset(self) -> int:
        """Input pixels before an expression field's unit: its centre is the patch centre (p // 2)."""
        return self.receptive // 2 - self.unit // 2


def declared_geometry(params: Params, card: ModelCard | None, outputs: list[str]) -> tuple[int, int | None, float]:
    """(receptive field, expression field or None to measure, factor) from the parameters, else the card."""
    receptive = params.integer("RECEPTIVE_FIELD")
    expression = params.integer("EXPRESSION_FIELD") or None
    factor = params.number("SCALE_FACTOR")
    if card is not None:
        factors = set()
        for name in outputs:
            try:
                spec = card.output(base_name(name))
                factors.add(spec.scale_factor / spec.stride)
            except KeyError:
                pass
        if len(factors) > 1:
            raise PatchFlowError(f"the outputs {', '.join(outputs)} are on different grids (scale factors "
                                 f"{sorted(factors)}). Apply the model once per output.", "OUTPUTS")
        receptive = receptive or card.receptive_field
        factor = factor or (factors.pop() if factors else card.scale_factor)
    if not receptive:
        raise PatchFlowError("the model has no PatchFlow card: give its RECEPTIVE_FIELD (input patch size in "
                             "pixels).", "RECEPTIVE_FIELD")
    return receptive, expression, factor or 1.0


def probe(model: InferenceModel, sources: list[Source], outputs: list[str], size: int,
          values: Callable[[tuple], np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The outputs for a SOURCE1 input of ``size`` px (each other source at its own size for it)."""
    sizes = input_sizes(sources, size)
    inputs = {s.name: (values or np.zeros)((1, sizes[s.name], sizes[s.name], s.stack.band_count)).astype(np.float32)
              for s in sources}
    return predict(model, inputs, outputs, 1)


def measure_geometry(model: InferenceModel, sources: list[Source], outputs: list[str], receptive: int,
                     expression: int | None, factor: float, receptive_given: bool = True) -> Geometry:
    """The geometry the model really has: refuses a receptive field it cannot take, or an expression
    field / scale factor its outputs contradict."""
    try:
        first = probe(model, sources, outputs, receptive)
    except Exception as exc:  # noqa: BLE001 - TensorFlow raises many kinds for a shape it cannot take
        why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        if len(sources) == 1:
            raise PatchFlowError(f"the model cannot take an input of {receptive}x{receptive} px ({why}). "
                                 "Check RECEPTIVE_FIELD.", "RECEPTIVE_FIELD") from None
        given = describe(input_sizes(sources, receptive), sources)
        parameter = "RECEPTIVE_FIELD" if receptive_given else "MODEL"
        fix = "Check RECEPTIVE_FIELD" if receptive_given else "Check the model's card (its inputs' patch sizes)"
        raise PatchFlowError(f"the model cannot take inputs of {given} ({why}). {fix}.", parameter) from None
    sizes = {name: value.shape[1:3] for name, value in first.items()}
    if len({tuple(s) for s in sizes.values()}) > 1 or any(s[0] != s[1] for s in sizes.values()):
        raise PatchFlowError(f"the outputs {', '.join(outputs)} have different or non-square sizes for one "
                             f"receptive field: {sizes}. Apply the model once per output.", "OUTPUTS")
    measured = int(next(iter(sizes.values()))[0])
    if expression is not None and expression != measured:
        raise PatchFlowError(f"an input of {receptive} px gives {measured} output px, not the EXPRESSION_FIELD "
                             f"{expression}: the receptive field or expression field is inconsistent with the "
                             "model.", "EXPRESSION_FIELD")
    if measured < 1:
        raise PatchFlowError(f"an input of {receptive} px gives no output pixel: the receptive field is "
                             "inconsistent with the model.", "RECEPTIVE_FIELD")
    geometry = Geometry(receptive, measured, factor)
    unit = measured / factor
    if abs(unit - round(unit)) > 1e-6 or geometry.unit > receptive:
        raise PatchFlowError(f"{measured} output px at scale factor {factor:g} cover {unit:g} input px, which does not "
                             f"fit a receptive field of {receptive} px. Check SCALE_FACTOR and RECEPTIVE_FIELD.",
                             "SCALE_FACTOR")
    return geometry


def fully_convolutional(model: InferenceModel, sources: list[Source], outputs: list[str], geometry: Geometry) -> bool:
    """Whether the model takes a block of two expression fields (or more: the fewest that are whole
    periods of every source) and gives as many times the output."""
    step = alignment(geometry.unit, sources) // geometry.unit
    units = next((k for k in range(1, step + 1) if whole_block(sources, geometry.receptive + k * geometry.unit)), 0)
    if not units:
        return False
    try:
        out = probe(model, sources, outputs, geometry.receptive + units * geometry.unit)
    except Exception:  # noqa: BLE001 - a model with a fixed input size
        return False
    return all(value.shape[1] == (units + 1) * geometry.expression for value in out.values())


def whole_block(sources: list[Source], size: int) -> bool:
    return all(size % source.period == 0 for source in sources[1:])


def influence_radius(model: InferenceModel, sources: list[Source], outputs: list[str], geometry: Geometry,
                     max_units: int) -> int:
    """Units near a block's edge whose outputs change when the block is cut out of a larger one
    (zero padding inside the network reaching them): the margin seamless tiling needs."""
    step = alignment(geometry.unit, sources) // geometry.unit  # units: cut starts and sizes whole periods
    core = step * math.ceil(max(4, math.ceil(PROBE_CORE / geometry.unit)) / step)
    max_units = step * math.ceil(max_units / step)
    rng = np.random.default_rng(0)
    big_units = core + 2 * max_units
    start = max_units * geometry.unit
    size = geometry.receptive + (core - 1) * geometry.unit
    big_sizes = input_sizes(sources, geometry.receptive + (big_units - 1) * geometry.unit)
    small_sizes = input_sizes(sources, size)
    big = {s.name: rng.standard_normal((1, big_sizes[s.name], big_sizes[s.name],
                                        s.stack.band_count)).astype(np.float32) for s in sources}
    starts = {s.name: int(round(start / s.ratio)) for s in sources}
    small = {name: values[:, starts[name]:starts[name] + small_sizes[name],
                          starts[name]:starts[name] + small_sizes[name]] for name, values in big.items()}
    whole, cut = predict(model, big, outputs, 1), predict(model, small, outputs, 1)
    e = geometry.expression
    worst = 0
    for name in outputs:
        reference = whole[name][0, max_units * e:(max_units + core) * e, max_units * e:(max_units + core) * e]
        difference = np.abs(cut[name][0].astype(np.float64) - reference)
        tolerance = PROBE_TOLERANCE * (1.0 + float(np.abs(reference).max()))
        bad = np.argwhere((difference > tolerance).any(axis=-1))
        if len(bad):
            edge = np.minimum(np.minimum(bad[:, 0], bad[:, 1]),
                              np.minimum(core * e - 1 - bad[:, 0], core * e - 1 - bad[:, 1]))
            worst = max(worst, int(edge.max()) + 1)
    units = math.ceil(worst / e)
    if units >= core // 2:
        return max_units  # changes everywhere in the probe: as much margin as allowed
    return units
