"""Windows of a serving plan (scale/windows.py): they cover the output exactly once, and each window's plan
makes exactly the tiles (positions, sizes, input reads) a one-process run makes there, for fully convolutional
plans (scale factors 1, 4 and 1/4, an extent off the origin) and patch-based ones (strips)."""

from __future__ import annotations

import numpy as np
import pytest

from patchflow.plugin.engine.scale.windows import window_plan, windows
from patchflow.plugin.engine.serve.geometry import Geometry
from patchflow.plugin.engine.serve.plan import ServingPlan, output_size
from patchflow.plugin.engine.serve.tiles import fcn_tiles, patch_rows


def plan(mode="fully_convolutional", window=(0, 0, 489, 443), receptive=64, expression=64, factor=1.0,
         tile_units=1, stride=1) -> ServingPlan:
    return ServingPlan(None, [], ["class"], Geometry(receptive, expression, factor), mode, 1,  # type: ignore[arg-type]
                       tile_units, stride, False, 1, window)


def fcn_global(p: ServingPlan) -> list[tuple[int, int, int, int, int, int]]:
    """(input x, input y, output x, output y, output width, output height) of every tile, in output pixels."""
    out_w, out_h = output_size(p)
    e = p.tile_units * p.geometry.expression
    return sorted((x, y, ox, oy, min(e, out_w - ox), min(e, out_h - oy)) for x, y, ox, oy in fcn_tiles(p))


def covered(p: ServingPlan, found) -> np.ndarray:
    out_w, out_h = output_size(p)
    hits = np.zeros((out_h, out_w), int)
    for w in found:
        ox, oy, ow, oh = w.output
        hits[oy:oy + oh, ox:ox + ow] += 1
    return hits


@pytest.mark.parametrize("kwargs", [
    {}, {"tile_units": 2}, {"window": (64, 128, 300, 211)},
    {"expression": 256, "factor": 4.0}, {"expression": 4, "factor": 0.25, "window": (0, 0, 230, 198)},
])
@pytest.mark.parametrize("tiles", [1, 2, 3, 0])
def test_fully_convolutional_windows_are_the_one_process_tiles(kwargs, tiles):
    whole = plan(**kwargs)
    found = windows(whole, tiles)
    assert (covered(whole, found) == 1).all()
    expected = fcn_global(whole)
    pieces = []
    for w in found:
        part = window_plan(whole, w)
        assert output_size(part) == w.output[2:]
        ox, oy = w.output[:2]
        pieces += [(x, y, px + ox, py + oy, pw, ph) for x, y, px, py, pw, ph in fcn_global(part)]
    assert sorted(pieces) == expected
    if tiles:
        assert len(found) == len({(t[0] - whole.window[0]) // (tiles * whole.tile_units * whole.geometry.unit)
                                  for t in expected}) * len({(t[1] - whole.window[1]) // (
                                      tiles * whole.tile_units * whole.geometry.unit) for t in expected})


@pytest.mark.parametrize("stride,window", [(1, (0, 0, 2500, 3000)), (2, (3, 5, 3001, 2999)), (4, (0, 0, 489, 443))])
@pytest.mark.parametrize("strips", [1, 2, 0])
def test_patch_windows_are_whole_strips_of_the_one_process_run(stride, window, strips):
    whole = plan("patch", window, 16, 1, 1.0, stride=stride)
    found = windows(whole, strips)
    assert (covered(whole, found) == 1).all()
    out_w, out_h = output_size(whole)
    expected = list(patch_rows(whole, out_h))
    pieces = []
    for w in found:
        part = window_plan(whole, w)
        x0, y0, width, height = w.inputs
        assert (x0, width) == (whole.window[0], whole.window[2]) and w.output[2] == out_w
        assert y0 == whole.window[1] + w.output[1] * stride  # the strip's input rows as in the whole plan
        assert output_size(part) == w.output[2:]
        pieces += [(start + w.output[1], rows) for start, rows in patch_rows(part, output_size(part)[1])]
    assert pieces == expected
    assert len(found) == -(-len(expected) // (strips or 1))
