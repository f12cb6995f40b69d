"""Reading blocks: the tiles of a plan read from the sources, normalised (nodata and outside pixels at the
normalised mean, 0), with the output pixels whose input is nodata: blocks of ``rf + (n - 1 + 2 m) unit``
input pixels (fully convolutional) or strips of patches (patch-based).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..geodata.raster import RasterStack
from .binding import Source
from .plan import ServingPlan, output_size


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
