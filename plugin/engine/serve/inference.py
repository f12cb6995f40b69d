"""Inference: a tile's (or a batch of tiles') chosen outputs computed and stacked as (h, w, channels), the
margin cropped; patch-based as batches of patches, or for a fully convolutional model once per phase of the
stride, the phases interleaved (shift and stitch).
"""

from __future__ import annotations

import numpy as np

from .binding import predict
from .plan import ServingPlan
from .tiles import Tile


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
    """Patch-based outputs, one receptive field per output pixel, ``plan.batch`` patches a call; a source
    on other pixels has its patches gathered at ``tile.gather``'s origins."""
    from numpy.lib.stride_tricks import sliding_window_view

    s, r = plan.stride, plan.geometry.receptive
    assert tile.inputs is not None  # a tile with nothing valid is not inferred
    views = {name: sliding_window_view(data, (r, r), axis=(0, 1))[::s, ::s].transpose(0, 1, 3, 4, 2)  # type: ignore[call-overload]
             for name, data in tile.inputs.items() if name not in tile.gather}  # (rows, cols, r, r, bands), no copy
    windows = {name: sliding_window_view(tile.inputs[name], (p, p), axis=(0, 1))  # type: ignore[call-overload]
               for name, (_, _, p) in tile.gather.items()}  # (rows, cols, bands, p, p), no copy
    step = max(1, plan.batch // max(1, tile.out_w))  # output rows per batch
    rows = []
    for start in range(0, tile.out_h, step):
        batch = {name: np.ascontiguousarray(view[start:start + step]).reshape(-1, *view.shape[2:])
                 for name, view in views.items()}
        for name, window in windows.items():
            first_rows, first_cols, p = tile.gather[name]
            picked = window[first_rows[start:start + step][:, None], first_cols[None, :]]  # (n, out_w, bands, p, p)
            batch[name] = picked.transpose(0, 1, 3, 4, 2).reshape(-1, p, p, window.shape[2])
        values = predict(plan.model, batch, plan.outputs, len(next(iter(batch.values()))))
        parts = [values[name].reshape(len(values[name]), -1) for name in plan.outputs]
        rows.append(np.concatenate(parts, axis=1).reshape(-1, tile.out_w, sum(p.shape[1] for p in parts)))
    return np.concatenate(rows, axis=0)


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
