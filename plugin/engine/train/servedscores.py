"""Scores of a fully convolutional segmentation model computed as Apply model serves it.

A U-Net scored on its 16 px validation patches can report a map it will not make: Apply model runs it on
large tiles with a measured margin, so each pixel sees far more context than in its patch. Here the model is
served on the dataset's source rasters exactly as Apply model (default parameters) would serve it: the same
plan (``serve.plan.plan_for``: geometry, tiles, measured margin), the same tiles read and padded
(``serve.tiles.read_fcn_tile``) and run (``serve.inference.infer_group``), only the tiles that hold validation
pixels; and each label pixel of the validation patches (the centre the per-patch scores use) is scored
against the map's pixel under it. Datasets without patch positions (``data.positions``), or whose rasters are
gone or changed, keep the per-patch scores, with a warning and a line in the report saying so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..data.datasets import LABELS, BatchStream
from ..data.positions import read_positions
from ..errors import Cancelled, PatchFlowError
from ..params import Params, RunContext

if TYPE_CHECKING:
    from ..evaluate.metrics import Scores
    from ..geodata.classes import ClassLike
    from ..geodata.raster import Grid, RasterStack
    from ..models.modelcard import ModelCard
    from ..serve.plan import ServingPlan
    from ..serve.tiles import Tile

NOT_SERVED = "on the {n} patches themselves ({size} px each), not as Apply model serves the model: {why}. " \
             "These figures are not those of the served map"


class NotServable(Exception):
    """Why the scores cannot be computed as Apply model serves the model."""


def as_served(model, stream: BatchStream, classes: Sequence[ClassLike], context: RunContext, card: ModelCard,
              per_patch: Scores) -> Scores:
    """The scores of ``model`` as Apply model serves it, when it is a fully convolutional segmentation
    model; else ``per_patch`` (with a note saying why, for a segmentation model)."""
    target = stream.target
    if target.kind != "classes" or target.source == LABELS or len(target.shape) != 2 or target.shape[0] <= 1:
        return per_patch  # one label per patch: patch-based serving scores what the patches score
    try:
        scores, method = served(model, stream, classes, context, card)
    except NotServable as why:
        per_patch.method = NOT_SERVED.format(n=stream.dataset.count, size=stream.feeds[0].size, why=why)
        context.reporter.warning(f"{stream.dataset.path}: scores computed {per_patch.method}.")
        return per_patch
    scores.method = f"{method}; on the patches alone (as trained) the figures would be OA " \
                    f"{per_patch.overall_accuracy:.4f}, kappa {per_patch.kappa:.4f}"
    context.reporter.log(f"{stream.dataset.path}: scores computed {scores.method}")
    return scores


def default_apply_params() -> Params:
    from ...declarations import OPERATIONS

    return Params({}, declaration=OPERATIONS["apply_model"])


def served(model, stream: BatchStream, classes: Sequence[ClassLike], context: RunContext,
           card: ModelCard) -> tuple[Scores, str]:
    from ..evaluate.metrics import Scores
    from ..models.modelio import InferenceModel
    from ..serve.plan import plan_for

    dataset = stream.dataset
    centres, why = read_positions(dataset.path, dataset.manifest)
    if centres is None:
        raise NotServable(why)
    sources = serving_sources(stream)
    label_grid = label_raster_grid(stream)
    try:
        plan = plan_for(default_apply_params(), InferenceModel.of_keras(model, card), sources)
    except PatchFlowError as exc:
        raise NotServable(f"Apply model cannot serve it ({exc.message})") from None
    if plan.mode != "fully_convolutional":
        raise NotServable("Apply model serves it patch by patch (it is not fully convolutional)")
    parts = list(label_pixels(stream, centres, label_grid, plan))
    truth, rows, cols = (np.concatenate([part[i] for part in parts]) for i in range(3))
    predicted, invalid = served_pixels(plan, rows, cols, context)
    keep = ~invalid
    nodata = int(invalid.sum())
    count = len(classes)
    matrix = np.bincount(truth[keep] * count + class_index(predicted[keep], card, stream),
                         minlength=count * count).reshape(count, count)
    if matrix.sum() == 0:
        raise NotServable("the served map is nodata at every validation pixel")
    g = plan.geometry
    rasters = ", ".join(os.path.basename(p) for s in sources for p in s.stack.paths)
    method = (f"as Apply model serves the model (fully convolutional, default parameters): margin "
              f"{plan.margin_units * g.unit} px, context: each pixel predicted inside its tile of "
              f"{plan.tile_units * g.expression} px of {rasters} plus the margin (zeros beyond the raster), not "
              f"from its {stream.feeds[0].size} px patch alone; {int(matrix.sum())} labelled pixels of "
              f"{dataset.count} patches" + (f", {nodata} where the map is nodata left out" if nodata else ""))
    return Scores.from_matrix(matrix, classes), method


def serving_sources(stream: BatchStream) -> list:
    """The serving sources (model input, raster stack, normalisation) of the stream's feeds, from the
    rasters the manifest names, checked to be those the patches were extracted from."""
    from ..geodata.raster import RasterStack
    from ..serve.binding import Source
    from ..serve.sourcegrids import check_grids

    sources = []
    for feed in stream.feeds:
        entry = stream.dataset.source(feed.source)
        paths = list(entry.get("rasters") or [])
        if not paths or not all(os.path.exists(p) for p in paths):
            raise NotServable(f"the rasters of its source '{feed.source}' ({', '.join(paths) or 'none named'}) "
                              "are not there")
        try:
            stack = RasterStack(paths, "VALID")
        except PatchFlowError as exc:
            raise NotServable(f"the rasters of its source '{feed.source}' cannot be read ({exc.message})") from None
        check_bands(stack, entry, feed.source)
        sources.append(Source(feed.input_name, stack, feed.normalization))
    try:  # as Apply model binds them: other pixel sizes served at their own pixels
        check_grids(sources, [f"SOURCE{i}" for i in range(1, len(sources) + 1)])
    except PatchFlowError as exc:
        raise NotServable(f"Apply model cannot serve its sources ({exc.message})") from None
    return sources


def check_bands(stack: RasterStack, entry: dict, name: str) -> None:
    bands = entry.get("bands") or []
    recorded = [(os.path.abspath(str(b.get("raster"))), int(b.get("raster_band") or 0)) for b in bands]
    found = [(os.path.abspath(b.path), b.band) for b in stack.bands]
    if recorded != found:
        raise NotServable(f"the rasters of its source '{name}' no longer have the bands its patches were "
                          "extracted from")


def label_raster_grid(stream: BatchStream) -> Grid:
    from ..geodata.raster import Grid, open_raster

    entry = stream.dataset.source(stream.target.source)
    paths = list(entry.get("rasters") or [])
    if len(paths) != 1 or not os.path.exists(paths[0]):
        raise NotServable("its label raster is not there")
    return Grid.of(open_raster(paths[0], "VALID"), "VALID")


def label_pixels(stream: BatchStream, centres: np.ndarray, label_grid: Grid,
                 plan: ServingPlan) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(class indices, map rows, map columns) of the labelled pixels the per-patch scores use (each label
    patch, centre-cropped to the model's output), chunk by chunk: the map pixel is the one under the label
    pixel's centre."""
    from ..data.datasets import CHUNK

    target, dataset = stream.target, stream.dataset
    size = int(dataset.source(target.source)["patch_size"])
    crop = target.shape[0]
    start = size // 2 - crop // 2  # datasets.centre_crop
    grid, factor = plan.sources[0].stack.grid, plan.geometry.factor
    offsets = np.arange(start, start + crop)
    for first in range(0, dataset.count, CHUNK):
        last = min(dataset.count, first + CHUNK)
        truth, weights = target.prepare(dataset.read(target.source, first, last))
        # the label patch's top-left pixel, as extraction placed it (patches.matching_origins)
        u, v = label_grid.fractional_pixel(centres[first:last, 0], centres[first:last, 1])
        col0 = np.floor(u - size / 2 + 0.5).astype(np.int64)
        row0 = np.floor(v - size / 2 + 0.5).astype(np.int64)
        label_cols = np.broadcast_to((col0[:, None] + offsets)[:, None, :], truth.shape)
        label_rows = np.broadcast_to((row0[:, None] + offsets)[:, :, None], truth.shape)
        xs, ys = label_grid.pixel_centres(label_cols, label_rows)
        cols, rows = grid.fractional_pixel(xs, ys)
        valid = weights > 0
        yield (truth[valid].astype(np.int64), np.floor(rows[valid] * factor).astype(np.int64),
               np.floor(cols[valid] * factor).astype(np.int64))


def served_pixels(plan: ServingPlan, rows: np.ndarray, cols: np.ndarray,
                  context: RunContext) -> tuple[np.ndarray, np.ndarray]:
    """The served map's values at these output pixels, and where it is nodata: every tile of the plan
    that holds one of them read, run and cropped as Apply model does."""
    from ..serve.inference import infer_group
    from ..serve.pipeline import batches
    from ..serve.plan import output_size
    from ..serve.tiles import fcn_tiles, read_fcn_tile

    out_w, out_h = output_size(plan)
    inside = (rows >= 0) & (rows < out_h) & (cols >= 0) & (cols < out_w)
    side = plan.tile_units * plan.geometry.expression
    where = np.flatnonzero(inside)
    keys = (cols[where] // side) * (out_h // side + 1) + rows[where] // side
    order = np.argsort(keys, kind="stable")
    found, starts = np.unique(keys[order], return_index=True)
    pixels_of = dict(zip(found.tolist(), np.split(where[order], starts[1:])))
    values = np.zeros(len(rows), np.int64)
    invalid = ~inside

    def needed() -> Iterator[Tile]:
        for x, y, ox, oy in fcn_tiles(plan):
            if (ox // side) * (out_h // side + 1) + oy // side in pixels_of:
                yield read_fcn_tile(plan, x, y, ox, oy, out_w, out_h)

    for group in batches(plan, needed()):
        if context.cancelled():
            raise Cancelled()
        results = [None] * len(group) if group[0].inputs is None else infer_group(plan, group)
        for tile, result in zip(group, results):
            here = pixels_of[(tile.out_x // side) * (out_h // side + 1) + tile.out_y // side]
            r, c = rows[here] - tile.out_y, cols[here] - tile.out_x
            if result is None:
                invalid[here] = True
            else:
                invalid[here] = tile.invalid[r, c]
                values[here] = result[r, c, 0]
    return values, invalid


def class_index(predicted: np.ndarray, card: ModelCard, stream: BatchStream) -> np.ndarray:
    """The served class map's values (the card's class ids, else indices) as indices of the scores' classes."""
    from ..data.datasets import class_indices

    if not card.classes:
        return predicted
    return class_indices(predicted, stream.target.class_ids)
