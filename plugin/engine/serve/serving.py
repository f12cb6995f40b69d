"""Apply model: a SavedModel (or .keras) streamed over whole scenes, block by block, seamless.

Geometry (OTBTF's terms). A model input of ``rf`` x ``rf`` pixels (the receptive field) gives
``ef`` x ``ef`` output pixels (the expression field); ``f`` output pixels per input pixel (the
scale factor: 4 for a x4 super-resolution, 1/4 for a network with stride 4). One expression field
covers ``unit = ef / f`` input pixels, centred on the patch centre (pixel rf // 2): the
``offset = rf // 2 - unit // 2`` input pixels before it, and those after it, are context only.

* **Fully convolutional:** tiles of ``n`` units are processed as blocks of ``rf + (n - 1 + 2 m) unit``
  input pixels; the ``m`` extra units on each side (the margin) are cropped from the output, so what
  lies beyond a block (zero padding inside the network) never reaches a kept pixel. The margin is
  the card's crop margin or, at least, the distance over which the model's outputs were measured
  to change when the block is cut (``influence_radius``): tiled outputs equal a whole-image run.
* **Patch-based:** one receptive field per output pixel (every ``STRIDE`` input pixels), batched;
  a fully convolutional model runs on whole strips instead, once per phase of its stride, and the
  phases are interleaved (shift and stitch): the same values, without recomputing overlaps.

Reading, inference and writing overlap: a reader thread prepares the next blocks, a writer thread
writes finished ones, the model runs in between; queues of a few blocks bound memory.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from osgeo import gdal

from ..errors import Cancelled, PatchFlowError
from ..geodata.classes import complete
from ..geodata.geotiff import class_map_encoding, create_geotiff, creation_options
from ..geodata.raster import RasterStack, parse_extent
from ..models.modelcard import ModelCard, Normalization
from ..models.modelio import InferenceModel, model_kind
from ..params import Params, RunContext
from ..report.rasterstyle import class_qml, set_class_table, sidecar_path, write_qml
from ..reporting import Reporter
from .servingstyle import image_qml, probability_qml

GTIFF_OPTIONS = creation_options(tiled=True, block=256, deflate=True, threads=2)
MODES = ("auto", "fully_convolutional", "patch")
DEFAULT_TILE = 512  # input (or output, when finer) pixels along a tile's side by default (fully convolutional)
PROBE_CORE, PROBE_MARGIN = 128, 96  # input pixels: the block whose edges are probed, the context added around
QUEUE_BLOCKS = 2  # blocks waiting between the threads, each way
PROBE_TOLERANCE = 1e-5
MAX_SOURCES = 3


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


@dataclass
class Source:
    name: str  # the model input it feeds
    stack: RasterStack
    normalization: Normalization


@dataclass
class ServingPlan:
    model: InferenceModel
    sources: list[Source]
    outputs: list[str]
    geometry: Geometry
    mode: str
    margin_units: int  # fully convolutional: units cropped on each side of a block
    tile_units: int  # fully convolutional: units kept per block side
    stride: int  # patch-based: input pixels between output pixels
    stitch: bool  # patch-based with a fully convolutional model: whole blocks, phases interleaved
    batch: int
    window: tuple[int, int, int, int]  # input pixels processed: xoff, yoff, width, height


# ---- the model and its geometry -------------------------------------------------------------------


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
        sources.append(Source(name, stack, normalization))
    reference = sources[0].stack
    for parameter, source in zip([s[0] for s in stacks][1:], sources[1:]):
        if not reference.grid.same_crs_as(source.stack.grid):
            raise PatchFlowError(f"{parameter} is not in the CRS of SOURCE1. Reproject it first (gdalwarp).", parameter)
        if not source.stack.grid.same_as(reference.grid):
            raise PatchFlowError(f"{parameter} is not on the grid of SOURCE1 (size, origin, pixel size). Resample it "
                                 "to SOURCE1's grid first (gdalwarp -tr -te).", parameter)
    return sources


ARGMAX = ":argmax"  # "<output>:argmax": the index (or the card's class id) of each pixel's largest channel


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


def probe(model: InferenceModel, sources: list[Source], outputs: list[str], size: int,
          values: Callable[[tuple], np.ndarray] | None = None) -> dict[str, np.ndarray]:
    inputs = {s.name: (values or np.zeros)((1, size, size, s.stack.band_count)).astype(np.float32) for s in sources}
    return predict(model, inputs, outputs, 1)


def measure_geometry(model: InferenceModel, sources: list[Source], outputs: list[str], receptive: int,
                     expression: int | None, factor: float) -> Geometry:
    """The geometry the model really has: refuses a receptive field it cannot take, or an expression
    field / scale factor its outputs contradict."""
    try:
        first = probe(model, sources, outputs, receptive)
    except Exception as exc:  # noqa: BLE001 - TensorFlow raises many kinds for a shape it cannot take
        raise PatchFlowError(f"the model cannot take an input of {receptive}x{receptive} px "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}). "
                             "Check RECEPTIVE_FIELD.", "RECEPTIVE_FIELD") from None
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
    """Whether the model takes a block of two expression fields and gives twice the output."""
    try:
        out = probe(model, sources, outputs, geometry.receptive + geometry.unit)
    except Exception:  # noqa: BLE001 - a model with a fixed input size
        return False
    return all(value.shape[1] == 2 * geometry.expression for value in out.values())


def influence_radius(model: InferenceModel, sources: list[Source], outputs: list[str], geometry: Geometry,
                     max_units: int) -> int:
    """Units near a block's edge whose outputs change when the block is cut out of a larger one
    (zero padding inside the network reaching them): the margin seamless tiling needs."""
    core = max(4, math.ceil(PROBE_CORE / geometry.unit))
    rng = np.random.default_rng(0)
    big_units = core + 2 * max_units
    big = {s.name: rng.standard_normal((1, geometry.receptive + (big_units - 1) * geometry.unit,
                                        geometry.receptive + (big_units - 1) * geometry.unit,
                                        s.stack.band_count)).astype(np.float32) for s in sources}
    start = max_units * geometry.unit
    size = geometry.receptive + (core - 1) * geometry.unit
    small = {name: values[:, start:start + size, start:start + size] for name, values in big.items()}
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


# ---- planning -------------------------------------------------------------------------------------


def processing_window(params: Params, stack: RasterStack, align: int) -> tuple[int, int, int, int]:
    """EXTENT as input pixels, grown to whole ``align`` steps from the raster's origin and clipped to
    it; the whole raster when empty."""
    grid = stack.grid
    text = params.string("EXTENT") or ""
    if not text.strip():
        return 0, 0, grid.width, grid.height
    xmin, xmax, ymin, ymax = parse_extent(text, grid, "SOURCE1's")
    cols, rows = grid.fractional_pixel(np.array([xmin, xmax]), np.array([ymax, ymin]))
    # a millionth of a pixel is rounding (a reprojected extent), not a pixel more
    cols, rows = np.round(cols, 6), np.round(rows, 6)
    c0, c1 = max(0, math.floor(min(cols) / align) * align), min(grid.width, math.ceil(max(cols) / align) * align)
    r0, r1 = max(0, math.floor(min(rows) / align) * align), min(grid.height, math.ceil(max(rows) / align) * align)
    if c1 <= c0 or r1 <= r0:
        gx0, gy0, gx1, gy1 = grid.extent
        raise PatchFlowError(f"the extent {xmin:g},{xmax:g},{ymin:g},{ymax:g} lies outside SOURCE1 ({gx0:g},{gx1:g},"
                             f"{gy0:g},{gy1:g}). Choose an extent that overlaps the image.", "EXTENT")
    return c0, r0, c1 - c0, r1 - r0


def make_plan(params: Params, context: RunContext) -> ServingPlan:
    model = load_model(params, context.reporter)
    sources = bind_sources(params, model)
    outputs = choose_outputs(params, model)
    receptive, expression, factor = declared_geometry(params, model.card, outputs)
    geometry = measure_geometry(model, sources, outputs, receptive, expression, factor)
    mode = params.choice("MODE")
    convolutional = fully_convolutional(model, sources, outputs, geometry)
    if mode == "auto":
        mode = "patch" if geometry.expression == 1 and receptive > 1 or not convolutional else "fully_convolutional"
    if mode == "fully_convolutional" and not convolutional:
        raise PatchFlowError("the model does not take blocks larger than its receptive field; use MODE patch.", "MODE")
    stride = params.integer("STRIDE")
    if mode == "patch" and geometry.expression != 1:
        raise PatchFlowError(f"patch-based serving needs one output pixel per receptive field; this model gives "
                             f"{geometry.expression}. Use MODE fully_convolutional.", "MODE")
    tile = params.integer("TILE_SIZE")
    margin_units = tile_units = 0
    if mode == "fully_convolutional":
        stride = 1
        # TILE_SIZE counts output pixels; by default about DEFAULT_TILE pixels on the larger side, input or
        # output (a stride-4 network's 512 output pixels would be 2048-pixel blocks, a x4 SR model's 512
        # input pixels 2048-pixel outputs)
        tile_units = max(1, round(tile / geometry.expression) if tile
                         else round(DEFAULT_TILE / max(geometry.unit, geometry.expression)))
        margin = params.integer("MARGIN")
        crop = model.card.crop_margin if model.card else 0
        if margin < 0:
            largest = max(2, math.ceil(PROBE_MARGIN / geometry.unit))
            measured = influence_radius(model, sources, outputs, geometry, largest)
            margin_units = max(math.ceil(crop * factor / geometry.expression) if crop else 0, measured)
        else:
            margin_units = math.ceil(margin / geometry.unit)
        align = geometry.unit
    else:
        align = stride
    window = processing_window(params, sources[0].stack, align)
    batch = params.integer("BATCH_SIZE") or default_batch(mode)
    stitch = mode == "patch" and convolutional and geometry.unit % stride == 0
    return ServingPlan(model, sources, outputs, geometry, mode, margin_units, tile_units, stride, stitch, batch, window)


def default_batch(mode: str) -> int:
    """Blocks per model call (fully convolutional): several keep a GPU busy, one is enough for CPU
    cores; patches per call (patch-based)."""
    if mode != "fully_convolutional":
        return 1024
    import tensorflow as tf

    return 4 if tf.config.list_physical_devices("GPU") else 1


# ---- reading blocks -------------------------------------------------------------------------------


def normalised(source: Source, values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    data = source.normalization.apply(values)
    data[missing] = 0.0  # nodata and outside pixels: the normalised mean (0), not their raw values
    return data


@dataclass
class Tile:
    out_x: int  # output pixels, relative to the output raster
    out_y: int
    out_w: int
    out_h: int
    inputs: dict[str, np.ndarray] | None  # None: nothing valid, write nodata
    invalid: np.ndarray  # (out_h, out_w) output pixels whose input pixel is nodata


def output_size(plan: ServingPlan) -> tuple[int, int]:
    _, _, width, height = plan.window
    if plan.mode == "patch":
        return math.ceil(width / plan.stride), math.ceil(height / plan.stride)
    f = plan.geometry.factor
    return max(1, int(round(width * f))), max(1, int(round(height * f)))


def fcn_tiles(plan: ServingPlan) -> Iterator[tuple[int, int, int, int]]:
    """(input x, input y, output x, output y) of each tile's top-left, row by row."""
    g, (x0, y0, width, height) = plan.geometry, plan.window
    step = plan.tile_units * g.unit
    for ty in range(0, height, step):
        for tx in range(0, width, step):
            yield x0 + tx, y0 + ty, int(round(tx * g.factor)), int(round(ty * g.factor))


def invalid_on_output(missing: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return missing[np.clip(rows, 0, missing.shape[0] - 1)[:, None], np.clip(cols, 0, missing.shape[1] - 1)[None, :]]


def read_fcn_tile(plan: ServingPlan, x: int, y: int, ox: int, oy: int, out_w: int, out_h: int) -> Tile:
    g = plan.geometry
    before = g.offset + plan.margin_units * g.unit
    size = g.receptive + (plan.tile_units - 1 + 2 * plan.margin_units) * g.unit
    width = min(plan.tile_units * g.expression, out_w - ox)
    height = min(plan.tile_units * g.expression, out_h - oy)
    inputs: dict[str, np.ndarray] = {}
    invalid: np.ndarray | None = None
    for source in plan.sources:
        values, missing = read_padded_rect(source.stack, x - before, y - before, size, size)
        inputs[source.name] = normalised(source, values, missing)[np.newaxis]
        # the input pixel under each output pixel's centre
        rows = before + np.floor((np.arange(height) + 0.5) / g.factor).astype(int)
        cols = before + np.floor((np.arange(width) + 0.5) / g.factor).astype(int)
        here = invalid_on_output(missing, rows, cols)
        invalid = here if invalid is None else invalid | here
    assert invalid is not None  # a model has one input at least
    return Tile(ox, oy, width, height, None if invalid.all() else inputs, invalid)


def patch_rows(plan: ServingPlan, out_h: int) -> Iterator[tuple[int, int]]:
    """Strips of output rows read together (about 4 Mpixel of input a strip)."""
    out_w = output_size(plan)[0]
    rows = max(1, (1 << 22) // max(1, out_w * plan.stride * plan.stride))
    for start in range(0, out_h, rows):
        yield start, min(rows, out_h - start)


def read_patch_strip(plan: ServingPlan, oy: int, rows: int) -> Tile:
    """A strip of output rows: per source, the normalised input pixels under every patch centred on
    every ``stride``-th pixel ((rows - 1) stride + r high); output row i's patches start at row i stride."""
    g, (x0, y0, width, _) = plan.geometry, plan.window
    s, r = plan.stride, g.receptive
    out_w = math.ceil(width / s)
    centre = s // 2
    top, left = y0 + oy * s + centre - r // 2, x0 + centre - r // 2
    span_h, span_w = (rows - 1) * s + r, (out_w - 1) * s + r
    inputs: dict[str, np.ndarray] = {}
    invalid: np.ndarray | None = None
    for source in plan.sources:
        values, missing = read_padded_rect(source.stack, left, top, span_w, span_h)
        inputs[source.name] = normalised(source, values, missing)
        here = missing[r // 2::s, r // 2::s][:rows, :out_w]
        invalid = here if invalid is None else invalid | here
    assert invalid is not None  # a model has one input at least
    return Tile(0, oy, out_w, rows, None if invalid.all() else inputs, invalid)


def read_padded_rect(stack: RasterStack, x: int, y: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(height, width, bands) values from pixel (x, y), zero outside the raster; and where any band is
    nodata or outside."""
    grid = stack.grid
    x0, y0, x1, y1 = max(0, x), max(0, y), min(grid.width, x + width), min(grid.height, y + height)
    values = np.zeros((stack.band_count, height, width), stack.dtype)
    missing = np.ones((height, width), bool)
    if x1 > x0 and y1 > y0:
        inside = stack.read((x0, y0, x1 - x0, y1 - y0))
        values[:, y0 - y:y1 - y, x0 - x:x1 - x] = inside
        missing[y0 - y:y1 - y, x0 - x:x1 - x] = stack.nodata_mask(inside)
    return values.transpose(1, 2, 0), missing


def tiles(plan: ServingPlan) -> Iterator[Tile]:
    out_w, out_h = output_size(plan)
    if plan.mode == "patch":
        for oy, rows in patch_rows(plan, out_h):
            yield read_patch_strip(plan, oy, rows)
        return
    for x, y, ox, oy in fcn_tiles(plan):
        yield read_fcn_tile(plan, x, y, ox, oy, out_w, out_h)


# ---- inference ------------------------------------------------------------------------------------


def infer(plan: ServingPlan, tile: Tile) -> np.ndarray:
    """(out_h, out_w, channels) of the chosen outputs, stacked."""
    if plan.mode == "patch":
        return infer_stitched(plan, tile) if plan.stitch else infer_patches(plan, tile)
    assert tile.inputs is not None  # a tile with nothing valid is not inferred
    values = stacked_outputs(predict(plan.model, tile.inputs, plan.outputs, 1), plan.outputs)
    crop = plan.margin_units * plan.geometry.expression
    return values[crop:crop + tile.out_h, crop:crop + tile.out_w]


def stacked_outputs(values: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    """(h, w, channels) of the first sample, the outputs side by side."""
    return np.concatenate([values[name][0] for name in names], axis=-1)


def infer_stitched(plan: ServingPlan, tile: Tile) -> np.ndarray:
    """Patch-based outputs of a fully convolutional model, computed as whole blocks: the strip is run
    once per phase (its first patch shifted by 0, s, 2s, ... < unit pixels along each axis) and the
    phases interleaved ("shift and stitch"): the convolutions of overlapping patches are shared."""
    g, s = plan.geometry, plan.stride
    step = g.unit // s  # output pixels between two outputs of one phase
    assert tile.inputs is not None  # a tile with nothing valid is not inferred
    result = None
    for dy in range(0, g.unit, s):
        for dx in range(0, g.unit, s):
            inputs = {name: data[np.newaxis, dy:, dx:] for name, data in tile.inputs.items()}
            values = stacked_outputs(predict(plan.model, inputs, plan.outputs, 1), plan.outputs)
            if result is None:
                result = np.empty((tile.out_h, tile.out_w, values.shape[-1]), values.dtype)
            target = result[dy // s::step, dx // s::step]
            target[...] = values[:target.shape[0], :target.shape[1]]
    assert result is not None  # one phase at least
    return result


def infer_patches(plan: ServingPlan, tile: Tile) -> np.ndarray:
    """Patch-based outputs, one receptive field per output pixel, ``plan.batch`` patches a call."""
    from numpy.lib.stride_tricks import sliding_window_view

    s, r = plan.stride, plan.geometry.receptive
    assert tile.inputs is not None  # a tile with nothing valid is not inferred
    views = {name: sliding_window_view(data, (r, r), axis=(0, 1))[::s, ::s].transpose(0, 1, 3, 4, 2)  # type: ignore[call-overload]
             for name, data in tile.inputs.items()}  # (rows, cols, r, r, bands), no copy
    step = max(1, plan.batch // max(1, tile.out_w))  # output rows per batch
    rows = []
    for start in range(0, tile.out_h, step):
        batch = {name: np.ascontiguousarray(view[start:start + step]).reshape(-1, *view.shape[2:])
                 for name, view in views.items()}
        values = predict(plan.model, batch, plan.outputs, len(next(iter(batch.values()))))
        parts = [values[name].reshape(len(values[name]), -1) for name in plan.outputs]
        rows.append(np.concatenate(parts, axis=1).reshape(-1, tile.out_w, sum(p.shape[1] for p in parts)))
    return np.concatenate(rows, axis=0)


# ---- output ---------------------------------------------------------------------------------------


@dataclass
class OutputFormat:
    kind: str  # class, probabilities, features, image
    dtype: np.dtype
    nodata: float
    channels: int
    names: list[str]


def output_format(params: Params, plan: ServingPlan, channels: int, class_count: int | None = None) -> OutputFormat:
    card = plan.model.card
    kinds = set()
    for name in plan.outputs:
        try:
            kinds.add("class" if name.endswith(ARGMAX) else card.output(name).kind if card
                      else ("class" if name.startswith("class") else "image"))
        except KeyError:
            kinds.add("class" if name.startswith("class") else "image")
    kind = kinds.pop() if len(kinds) == 1 else "image"
    wanted = params.choice("OUTPUT_TYPE")
    nodata = params.nodata("NODATA")
    default_nodata: float
    if kind == "class":
        ids = card.class_ids if card and card.classes else list(range(class_count or 256))
        dtype, default_nodata = class_map_encoding(ids)
    else:
        dtype, default_nodata = np.dtype(np.float32), -9999.0
    if wanted != "auto":
        dtype = np.dtype(wanted)
    nodata = default_nodata if nodata is None else nodata
    if dtype.kind in "iu" and not (np.iinfo(dtype).min <= nodata <= np.iinfo(dtype).max):
        raise PatchFlowError(f"NODATA {nodata:g} does not fit the output type {dtype.name}.", "NODATA")
    class_names = [c["name"] for c in card.classes] if card and card.classes else []
    if kind == "probabilities" and len(class_names) == channels:
        names = [f"probability {n}" for n in class_names]
    else:
        names = [plan.outputs[0] if channels == 1 else f"{plan.outputs[0]} {i + 1}" for i in range(channels)]
    return OutputFormat(kind, dtype, float(nodata), channels, names)


def create_output(path: str, plan: ServingPlan, fmt: OutputFormat) -> gdal.Dataset:
    grid, (x0, y0, _, _) = plan.sources[0].stack.grid, plan.window
    out_w, out_h = output_size(plan)
    if plan.mode == "patch":
        dx, dy = grid.dx * plan.stride, grid.dy * plan.stride
    else:
        dx, dy = grid.dx / plan.geometry.factor, grid.dy / plan.geometry.factor
    ds = create_geotiff(path, out_w, out_h, fmt.channels, fmt.dtype, GTIFF_OPTIONS, "OUTPUT",
                        (grid.x0 + x0 * grid.dx, dx, 0.0, grid.y0 + y0 * grid.dy, 0.0, dy), grid.crs_wkt)
    for index in range(fmt.channels):
        band = ds.GetRasterBand(index + 1)
        band.SetNoDataValue(fmt.nodata)
        band.SetDescription(fmt.names[index])
    card = plan.model.card
    if fmt.kind == "class" and card and card.classes:  # before any block is written: TIFF tags are fixed then
        set_class_table(ds.GetRasterBand(1), card.classes)
    return ds


def encode(values: np.ndarray, invalid: np.ndarray, fmt: OutputFormat) -> np.ndarray:
    if fmt.dtype.kind in "iu":
        info = np.iinfo(fmt.dtype)
        values = np.clip(np.rint(values) if values.dtype.kind == "f" else values, info.min, info.max)
    data = values.astype(fmt.dtype)
    data[invalid] = fmt.nodata
    return data


# ---- the pipeline ---------------------------------------------------------------------------------


_DONE = object()
BACKGROUND_NICENESS = 10  # reader and writer threads: scheduled in the model's idle time first


def yield_to_the_model() -> None:
    """Lower this thread's scheduling priority (Linux: per thread). On a busy CPU, TensorFlow's
    threads then run first and reading/writing fill the gaps, instead of preempting a convolution
    whose other threads then wait for it."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)
    except (AttributeError, OSError):  # not Linux, or not allowed: the default priority
        pass


def threaded(producer: Iterator, stop: threading.Event) -> Iterator:
    """Items of ``producer`` made in a thread, QUEUE_BLOCKS ahead; its exceptions re-raised here."""
    items: queue.Queue = queue.Queue(QUEUE_BLOCKS)

    def run() -> None:
        yield_to_the_model()
        try:
            for item in producer:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            items.put(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def write_tile(ds: gdal.Dataset, fmt: OutputFormat, tile: Tile, result: np.ndarray | None,
               counts: dict[int, int]) -> None:
    """Encode a tile's outputs (nodata where its input is), count its classes, write it."""
    if result is None:
        data = np.full((tile.out_h, tile.out_w, fmt.channels), fmt.nodata, fmt.dtype)
    else:
        data = encode(result, tile.invalid, fmt)
        if fmt.kind == "class":
            count_classes(data[..., 0][~tile.invalid], counts)
    for index in range(data.shape[-1]):
        ds.GetRasterBand(index + 1).WriteArray(data[..., index], tile.out_x, tile.out_y)


def count_classes(values: np.ndarray, counts: dict[int, int]) -> None:
    if values.dtype.kind == "u":
        found = np.bincount(values.ravel())
        for value in np.flatnonzero(found).tolist():
            counts[value] = counts.get(value, 0) + int(found[value])
        return
    for value, number in zip(*(a.tolist() for a in np.unique(values, return_counts=True))):
        counts[value] = counts.get(value, 0) + number


class Writer:
    """Encodes, counts and writes finished tiles in a thread, off the model's path, so GDAL's
    compression overlaps the next inference."""

    def __init__(self, ds: gdal.Dataset, fmt: OutputFormat) -> None:
        self.ds, self.fmt = ds, fmt
        self.items: queue.Queue = queue.Queue(QUEUE_BLOCKS)
        self.error: BaseException | None = None
        self.counts: dict[int, int] = {}
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        yield_to_the_model()
        while True:
            item = self.items.get()
            if item is _DONE:
                return
            if self.error is None:
                try:
                    tile, result = item
                    write_tile(self.ds, self.fmt, tile, result, self.counts)
                except BaseException as exc:  # noqa: BLE001 - re-raised by close()
                    self.error = exc

    def put(self, tile: Tile, result: np.ndarray | None) -> None:
        if self.error is not None:
            raise self.error
        self.items.put((tile, result))

    def close(self) -> None:
        self.items.put(_DONE)
        self.thread.join()
        if self.error is not None:
            raise self.error


def batches(plan: ServingPlan, stream: Iterator[Tile]) -> Iterator[list[Tile]]:
    """Tiles grouped for one model call: up to BATCH_SIZE blocks (fully convolutional; blocks all
    have one size), one strip (patch-based); a tile with nothing valid alone."""
    size = plan.batch if plan.mode == "fully_convolutional" else 1
    pending: list[Tile] = []
    for tile in stream:
        if tile.inputs is None:
            yield [tile]
            continue
        pending.append(tile)
        if len(pending) >= size:
            yield pending
            pending = []
    if pending:
        yield pending


def infer_group(plan: ServingPlan, group: list[Tile]) -> list[np.ndarray]:
    if len(group) == 1:
        return [infer(plan, group[0])]
    inputs = [tile.inputs for tile in group if tile.inputs is not None]  # a group of 2 or more: all have inputs
    names = list(inputs[0])
    stacked = {name: np.concatenate([tile_inputs[name] for tile_inputs in inputs]) for name in names}
    values = predict(plan.model, stacked, plan.outputs, len(group))
    crop = plan.margin_units * plan.geometry.expression
    results = []
    for index, tile in enumerate(group):
        one = stacked_outputs({name: value[index:index + 1] for name, value in values.items()}, plan.outputs)
        results.append(one[crop:crop + tile.out_h, crop:crop + tile.out_w])
    return results


def serve(plan: ServingPlan, ds: gdal.Dataset, fmt: OutputFormat, context: RunContext) -> dict[int, int]:
    """Every tile read, run and written; returns per-class pixel counts for class maps (else empty)."""
    out_w, out_h = output_size(plan)
    total = out_w * out_h
    done = 0
    stop = threading.Event()
    writer = Writer(ds, fmt)
    try:
        for group in batches(plan, threaded(tiles(plan), stop)):
            if context.cancelled():
                raise Cancelled()
            results = [None] if group[0].inputs is None else infer_group(plan, group)
            for tile, result in zip(group, results):
                writer.put(tile, result)
                done += tile.out_w * tile.out_h
            context.reporter.progress(2 + 95 * done / total)
    finally:
        writer.close()
    return writer.counts


def run_apply_model(params: Params, context: RunContext) -> dict:
    """Apply a model to whole rasters: a tiled, compressed GeoTIFF with a QML style beside it."""
    from .. import checks

    checks.writable(params, "OUTPUT")
    checks.rasters(params, "SOURCE1", "SOURCE2", "SOURCE3", reporter=context.reporter)
    card = checks.card_of(params.string("MODEL"))
    checks.sources_against_card(params, card, MAX_SOURCES)
    checks.outputs_in_card(params.string("MODEL"), card, str(params.values.get("OUTPUTS") or "").split(";"), "OUTPUTS")
    checks.extent_overlaps(params, "SOURCE1")
    output = params.string("OUTPUT")
    plan = make_plan(params, context)
    g = plan.geometry
    out_w, out_h = output_size(plan)
    probe_values = probe(plan.model, plan.sources, plan.outputs, g.receptive)
    channels = sum(v.shape[-1] for v in probe_values.values())
    class_count = None
    if any(name.endswith(ARGMAX) for name in plan.outputs):  # the classes are the channels' indices
        base = probe(plan.model, plan.sources, [base_name(plan.outputs[0])], g.receptive)
        class_count = next(iter(base.values())).shape[-1]
    fmt = output_format(params, plan, channels, class_count)
    context.reporter.log(
        f"{plan.mode.replace('_', ' ')} serving: receptive field {g.receptive} px, expression field {g.expression} "
        f"px, scale factor {g.factor:g}" + (f", margin {plan.margin_units * g.unit} px, tiles of "
                                            f"{plan.tile_units * g.expression} px" if plan.mode != "patch"
                                            else f", stride {plan.stride}") +
        f"; output {out_w}x{out_h} px, {fmt.channels} band(s) {fmt.dtype.name}")
    staged = context.staging.stage(output, "OUTPUT")
    staged_style = context.staging.stage(sidecar_path(output), "OUTPUT")
    ds = create_output(staged, plan, fmt)
    counts = serve(plan, ds, fmt, context)
    classes = style(ds, staged_style, plan, fmt, sorted(counts))
    ds = None
    for info in classes:
        count = counts.get(int(info["id"]), 0)
        context.reporter.log(f"{info['id']} {info.get('name', '')}: {count} px")
    context.reporter.progress(100)
    return {"OUTPUT": output, "STYLE": sidecar_path(output), "KIND": fmt.kind, "WIDTH": out_w, "HEIGHT": out_h,
            "CLASSES": classes}


def set_category_names(band: gdal.Band, classes: list[dict]) -> None:
    ids = [int(c["id"]) for c in classes]
    if ids and 0 <= min(ids) and max(ids) < 65536:
        names = [""] * (max(ids) + 1)
        for info in classes:
            names[int(info["id"])] = str(info["name"])
        band.SetCategoryNames(names)


def style(ds: gdal.Dataset, qml_path: str, plan: ServingPlan, fmt: OutputFormat, found: list[int]) -> list[dict]:
    """Colour table and QML for a class map (the card's classes, else those found); pseudocolour for
    probabilities; an RGB (or grey) stretch for images and features."""
    card = plan.model.card
    classes = list(card.classes) if card and card.classes else []
    if fmt.kind == "class":
        if not classes:  # known only now: names (kept beside the TIFF) and the QML; no colour table
            classes = [{"id": c.id, "name": c.name, "color": c.color} for c in complete(found, {})]
            set_category_names(ds.GetRasterBand(1), classes)
        text = class_qml(classes)
    elif fmt.kind == "probabilities":
        text = probability_qml()
    else:
        text = image_qml(ds, fmt.nodata)
    write_qml(qml_path, text)
    return classes if fmt.kind == "class" else []
