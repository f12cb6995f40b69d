"""Windows of a serving plan: its processing window cut into rectangles made of whole tiles of the plan's grid
(fully convolutional: whole blocks of ``tile_units`` units, which are whole periods of every source; patch-based:
whole strips of output rows, full width), so that the tiles a window's plan makes are exactly those a one-process
run makes there, and the windows' outputs put together are that run's output."""

from __future__ import annotations

from dataclasses import dataclass

from ..serve.plan import ServingPlan, output_size
from ..serve.tiles import patch_rows

WINDOW_PIXELS = 1024  # input pixels along a window's side by default (fully convolutional), about


@dataclass(frozen=True)
class Window:
    index: int
    inputs: tuple[int, int, int, int]  # input pixels of SOURCE1: xoff, yoff, width, height (a part of plan.window)
    output: tuple[int, int, int, int]  # output pixels: xoff, yoff, width, height in the output raster


def _fcn_windows(plan: ServingPlan, tiles: int) -> list[Window]:
    x0, y0, width, height = plan.window
    g = plan.geometry
    step = plan.tile_units * g.unit  # input pixels between tiles
    tiles = tiles or max(1, round(WINDOW_PIXELS / step))
    side = step * tiles
    out_w, out_h = output_size(plan)
    found: list[Window] = []
    for wy in range(0, height, side):
        for wx in range(0, width, side):
            w, h = min(side, width - wx), min(side, height - wy)
            ox, oy = int(round(wx * g.factor)), int(round(wy * g.factor))  # whole: step * factor = tile outputs
            ow = min(out_w - ox, int(round(side * g.factor))) if wx + side < width else out_w - ox
            oh = min(out_h - oy, int(round(side * g.factor))) if wy + side < height else out_h - oy
            found.append(Window(len(found), (x0 + wx, y0 + wy, w, h), (ox, oy, ow, oh)))
    return found


def _patch_windows(plan: ServingPlan, strips: int) -> list[Window]:
    x0, y0, width, height = plan.window
    s = plan.stride
    out_w, out_h = output_size(plan)
    starts = [start for start, _ in patch_rows(plan, out_h)]
    strips = strips or 1  # a strip is already about 4 Mpixel of input
    found: list[Window] = []
    for first in range(0, len(starts), strips):
        row = starts[first]
        end = starts[first + strips] if first + strips < len(starts) else out_h
        h = (end - row) * s if end < out_h else height - row * s
        found.append(Window(len(found), (x0, y0 + row * s, width, h), (0, row, out_w, end - row)))
    return found


def windows(plan: ServingPlan, tiles: int = 0) -> list[Window]:
    """The plan's windows, row by row; ``tiles``: tiles along a window's side (fully convolutional) or strips
    per window (patch-based), 0: about WINDOW_PIXELS input pixels."""
    if plan.mode == "patch":
        return _patch_windows(plan, tiles)
    return _fcn_windows(plan, tiles)


def window_plan(plan: ServingPlan, window: Window) -> ServingPlan:
    """The plan restricted to ``window``: its tiles are the whole plan's tiles there."""
    from dataclasses import replace

    return replace(plan, window=window.inputs, size=window.output[2:])
