"""Reading blocks: the tiles of a plan read from the sources, normalised (nodata and outside pixels at the
normalised mean, 0), with the output pixels whose input is nodata: blocks of ``rf + (n - 1 + 2 m) unit``
input pixels (fully convolutional) or strips of patches (patch-based).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..geodata.raster import RasterStack
from .binding import Source
from .plan import ServingPlan, output_size
from .sourcegrids import aligned, block_start, input_sizes, to_source


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
    # patch-based, a source on other pixels: (first row, first column of each output row's / column's patch in
    # its array, patch size); the others are sliding windows of their array
    gather: dict[str, tuple[np.ndarray, np.ndarray, int]] = field(default_factory=dict)


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
    reference = plan.sources[0].stack.grid
    sizes = input_sizes(plan.sources, size, patch=False)  # blocks of the same ground
    for source in plan.sources:
        # the input pixel under each output pixel's centre
        rows = y + (np.arange(height) + 0.5) / g.factor
        cols = x + (np.arange(width) + 0.5) / g.factor
        if source is plan.sources[0] or source.stack.grid.same_as(reference):
            left, top = x - before, y - before
        else:  # the block of the same ground, from the source's pixel nearest SOURCE1's block corner
            grid = source.stack.grid
            left, top = block_start(reference, grid, x - before, y - before)
            cols, rows = to_source(reference, grid, cols, rows)
        values, missing = read_padded_rect(source.stack, left, top, sizes[source.name], sizes[source.name])
        inputs[source.name] = normalised(source, values, missing)[np.newaxis]
        here = invalid_on_output(missing, np.floor(rows).astype(int) - top, np.floor(cols).astype(int) - left)
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
    every ``stride``-th pixel ((rows - 1) stride + r high); output row i's patches start at row i stride.
    A source on other pixels (sourcegrids.aligned) is read once around the strip, its patches gathered
    where extraction centres them (``patches.matching_origins``): ``Tile.gather``."""
    g, (x0, y0, width, _) = plan.geometry, plan.window
    s, r = plan.stride, g.receptive
    out_w = math.ceil(width / s)
    centre = s // 2
    top, left = y0 + oy * s + centre - r // 2, x0 + centre - r // 2
    span_h, span_w = (rows - 1) * s + r, (out_w - 1) * s + r
    inputs: dict[str, np.ndarray] = {}
    gather: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    invalid: np.ndarray | None = None
    first = plan.sources[0]
    for source in plan.sources:
        if source is first:
            values, missing = read_padded_rect(source.stack, left, top, span_w, span_h)
            here = missing[r // 2::s, r // 2::s][:rows, :out_w]
        else:
            cols_i, rows_i = matching_pixels(first, source, left + s * np.arange(out_w), top + s * np.arange(rows))
            p = source.receptive or r
            if aligned(first, source):  # SOURCE1's pixels shifted by whole pixels: one sliding window
                values, missing = read_padded_rect(source.stack, int(cols_i[0]), int(rows_i[0]), span_w, span_h)
                here = missing[r // 2::s, r // 2::s][:rows, :out_w]
            else:
                c0, r0 = int(cols_i.min()), int(rows_i.min())
                values, missing = read_padded_rect(source.stack, c0, r0, int(cols_i.max()) - c0 + p,
                                                   int(rows_i.max()) - r0 + p)
                gather[source.name] = (rows_i - r0, cols_i - c0, p)
                here = missing[(rows_i - r0 + p // 2)[:, None], (cols_i - c0 + p // 2)[None, :]]
        inputs[source.name] = normalised(source, values, missing)
        invalid = here if invalid is None else invalid | here
    assert invalid is not None  # a model has one input at least
    return Tile(0, oy, out_w, rows, None if invalid.all() else inputs, invalid, gather)


def matching_pixels(first: Source, source: Source, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-left pixels in ``source`` of the patches centred where SOURCE1's patches at these top-left columns and
    rows are centred (across and down apart: a pixel's column does not depend on its row)."""
    from ..data.patches import Source as PatchSource
    from ..data.patches import matching_origins

    reference = PatchSource(first.name, first.parameter, first.stack, first.receptive)
    other = PatchSource(source.name, source.parameter, source.stack, source.receptive or first.receptive)
    cols_i = matching_origins(reference, cols, np.zeros_like(cols), other)[0]
    rows_i = matching_origins(reference, np.zeros_like(rows), rows, other)[1]
    return cols_i, rows_i


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


def tile_count(plan: ServingPlan) -> int:
    """How many tiles ``tiles`` yields."""
    if plan.mode == "patch":
        return sum(1 for _ in patch_rows(plan, output_size(plan)[1]))
    return sum(1 for _ in fcn_tiles(plan))


def tiles(plan: ServingPlan) -> Iterator[Tile]:
    out_w, out_h = output_size(plan)
    if plan.mode == "patch":
        for oy, rows in patch_rows(plan, out_h):
            yield read_patch_strip(plan, oy, rows)
        return
    for x, y, ox, oy in fcn_tiles(plan):
        yield read_fcn_tile(plan, x, y, ox, oy, out_w, out_h)
