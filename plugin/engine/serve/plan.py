"""The serving plan: which mode (fully convolutional blocks, or patch-based: one receptive field per output
pixel every ``STRIDE`` input pixels, shift and stitch for a fully convolutional model), the tile size and the
margin cropped from each block (the card's crop margin or, at least, the measured influence radius, so tiled
outputs equal a whole-image run), the batch size, the processing window (EXTENT) and the output size.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..errors import PatchFlowError
from ..geodata.raster import RasterStack, parse_extent
from ..models.modelio import InferenceModel
from ..params import Params, RunContext
from ..reporting import Reporter
from .binding import Source, bind_sources, choose_outputs, load_model
from .geometry import (
    PROBE_MARGIN,
    Geometry,
    declared_geometry,
    fully_convolutional,
    influence_radius,
    measure_geometry,
)
from .sourcegrids import alignment, assign_receptive, input_sizes, multi_resolution

MODES = ("auto", "fully_convolutional", "patch")
DEFAULT_TILE = 512  # input (or output, when finer) pixels along a tile's side by default (fully convolutional)


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
    alignment: int = 1  # fully convolutional: SOURCE1 pixels blocks start on (whole periods of every source)
    size: tuple[int, int] | None = None  # output pixels of a part of a larger plan's window (scale/windows.py)


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
    """Apply model's plan, its stages reported between 4 % and 10 % of progress."""
    name = os.path.basename(os.path.normpath(params.string("MODEL") or ""))
    context.reporter.stage(f"loading the model {name}", 4, 7)
    model = load_model(params, context.reporter)
    context.reporter.stage("measuring the model's geometry and margin", 7, 10)
    return plan_for(params, model, bind_sources(params, model), context.reporter)


def plan_for(params: Params, model: InferenceModel, sources: list[Source],
             reporter: Reporter | None = None) -> ServingPlan:
    """The plan of serving ``model`` on ``sources`` (Apply model's, and training's served scores)."""
    outputs = choose_outputs(params, model)
    receptive, expression, factor = declared_geometry(params, model.card, outputs)
    assign_receptive(sources, model, receptive, bool((params.string("INPUT_NAMES") or "").strip()), reporter)
    geometry = measure_geometry(model, sources, outputs, receptive, expression, factor,
                                bool(params.integer("RECEPTIVE_FIELD")))
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
    align = alignment(geometry.unit, sources)
    step = align // geometry.unit  # units: tiles and margins are whole periods of every source
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
        tile_units, margin_units = step * math.ceil(tile_units / step), step * math.ceil(margin_units / step)
        # blocks of whole pixels of every source (else an error naming MODE)
        input_sizes(sources, geometry.receptive + (tile_units - 1 + 2 * margin_units) * geometry.unit, patch=False)
    else:
        align = stride
    window = processing_window(params, sources[0].stack, align)
    batch = params.integer("BATCH_SIZE") or default_batch(mode)
    stitch = (mode == "patch" and convolutional and geometry.unit % stride == 0
              and not multi_resolution(sources))
    return ServingPlan(model, sources, outputs, geometry, mode, margin_units, tile_units, stride, stitch, batch, window,
                       align if mode == "fully_convolutional" else 1)


def default_batch(mode: str) -> int:
    """Blocks per model call (fully convolutional): several keep a GPU busy, one is enough for CPU
    cores; patches per call (patch-based)."""
    if mode != "fully_convolutional":
        return 1024
    import tensorflow as tf

    return 4 if tf.config.list_physical_devices("GPU") else 1


def output_size(plan: ServingPlan) -> tuple[int, int]:
    if plan.size is not None:
        return plan.size
    _, _, width, height = plan.window
    if plan.mode == "patch":
        return math.ceil(width / plan.stride), math.ceil(height / plan.stride)
    f = plan.geometry.factor
    return max(1, int(round(width * f))), max(1, int(round(height * f)))
