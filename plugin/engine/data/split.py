"""Grid split (OTBTF PatchesSelection): patch centres on a regular grid, split into training,
validation and test sets whose patches never overlap across sets."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..errors import Cancelled, PatchFlowError
from ..geodata.classes import ClassInfo, classes_from_raster, complete
from ..geodata.raster import Grid, RasterStack, nodata_mask, open_raster
from ..geodata.vector import PointWriter
from ..params import Params, RunContext
from ..report.pointstyle import write_point_style
from ..reporting import Reporter
from .stratify import Blocks, class_groups, stratify, warn_missing

STRATEGIES = ("split", "chessboard", "all", "balanced")
SETS = ("train", "valid", "test")
OUTPUTS = ("OUTPUT_TRAIN", "OUTPUT_VALID", "OUTPUT_TEST")
UNUSED = -1


def grid_starts(size: int, patch_size: int, step: int) -> np.ndarray:
    """First pixel of every patch on the grid that fits entirely in ``size``."""
    return np.arange(0, size - patch_size + 1, step, dtype=np.int64)


def patches_free_of_nodata(stack: RasterStack, patch_size: int, step: int, cancelled: Callable[[], bool],
                           reporter: Reporter | None = None) -> np.ndarray:
    """Boolean grid (rows x cols of patches): True where the patch has no nodata in any band."""
    reporter = reporter or Reporter()
    rows0 = grid_starts(stack.grid.height, patch_size, step)
    cols0 = grid_starts(stack.grid.width, patch_size, step)
    valid = np.ones((len(rows0), len(cols0)), dtype=bool)
    if not stack.may_hold_nodata:  # no nodata value declared and integer bands (floats may hold NaN)
        return valid
    reporter.stage("finding the patches free of nodata", 0)
    for i, row0 in enumerate(rows0):
        if cancelled():
            raise Cancelled()
        strip = stack.read((0, int(row0), stack.grid.width, patch_size))
        bad_columns = stack.nodata_mask(strip).any(axis=0)
        bad_before = np.concatenate([[0], np.cumsum(bad_columns)])
        valid[i] = (bad_before[cols0 + patch_size] - bad_before[cols0]) == 0
        reporter.stage(f"nodata: grid rows {i + 1}/{len(rows0)}", 100.0 * (i + 1) / len(rows0), log=False)
    return valid


def assign_sets(shape: tuple[int, ...], strategy: str, proportions: tuple[float, float, float],
                block: int, seed: int) -> np.ndarray:
    """Set index (0 train, 1 valid, 2 test) per grid cell, decided per block of ``block`` cells."""
    return expand_blocks(block_sets(shape, strategy, proportions, block, seed), block, shape)


def expand_blocks(per_block: np.ndarray, block: int, shape: tuple[int, ...]) -> np.ndarray:
    """Per-cell values of a (blocks rows, blocks cols) array of ``block`` x ``block`` cells."""
    return np.repeat(np.repeat(per_block, block, axis=0), block, axis=1)[: shape[0], : shape[1]]


def block_sets(shape: tuple[int, ...], strategy: str, proportions: tuple[float, float, float],
               block: int, seed: int) -> np.ndarray:
    """Set index per block of ``block`` x ``block`` cells of a grid of ``shape`` cells."""
    by, bx = math.ceil(shape[0] / block), math.ceil(shape[1] / block)
    if strategy == "all":
        per_block = np.zeros((by, bx), dtype=np.int64)
    elif strategy == "chessboard":
        per_block = (np.add.outer(np.arange(by), np.arange(bx)) % 2).astype(np.int64)
    else:
        n = by * bx
        total = sum(proportions)
        n_train = round(n * proportions[0] / total)
        n_valid = round(n * (proportions[0] + proportions[1]) / total) - n_train  # a 0 share stays empty
        labels = np.full(n, 2, dtype=np.int64)
        labels[:n_train] = 0
        labels[n_train:n_train + n_valid] = 1
        per_block = np.random.default_rng(seed).permutation(labels).reshape(by, bx)
    return per_block


def drop_overlaps(sets: np.ndarray, patch_size: int, step: int) -> np.ndarray:
    """Where patches of different sets overlap, drop the training one (the test one beats the
    validation one), so no pixel is seen by two sets."""
    reach = math.ceil(patch_size / step) - 1
    result = sets.copy()
    rows, cols = sets.shape
    for di in range(-reach, reach + 1):
        for dj in range(-reach, reach + 1):
            if di == 0 and dj == 0:
                continue
            here = sets[max(0, -di): rows - max(0, di), max(0, -dj): cols - max(0, dj)]
            there = sets[max(0, di): rows + min(0, di), max(0, dj): cols + min(0, dj)]
            loses = (here != UNUSED) & (there != UNUSED) & (here != there) & (here < there)
            view = result[max(0, -di): rows - max(0, di), max(0, -dj): cols - max(0, dj)]
            view[loses] = UNUSED
    return result


def balance(sets: np.ndarray, classes: np.ndarray, seed: int) -> np.ndarray:
    """In each set, keep as many patches of every class as the set's rarest class has."""
    rng = np.random.default_rng(seed + 7)
    result = sets.copy()
    for set_index in range(len(SETS)):
        members = np.flatnonzero(sets.ravel() == set_index)
        if len(members) == 0:
            continue
        member_classes = classes.ravel()[members]
        values, counts = np.unique(member_classes, return_counts=True)
        smallest = counts.min()
        for value in values:
            of_class = members[member_classes == value]
            drop = rng.permutation(of_class)[smallest:]
            result.ravel()[drop] = UNUSED
    return result


def run_grid_split(params: Params, context: RunContext) -> dict:
    """OTBTF PatchesSelection: grid patch centres (or existing samples) split into training / validation / test."""
    from .. import checks

    checks.writable(params, *OUTPUTS)
    checks.rasters(params, "INPUT", "LABELS", reporter=context.reporter, labels={"LABELS": None})
    patch_size = params.integer("PATCH_SIZE")
    step = params.integer("STEP", patch_size)
    strategy = params.choice("STRATEGY")
    proportions = tuple(params.number(name) for name in ("TRAIN", "VALID", "TEST"))
    block = params.integer("BLOCK_SIZE")
    seed = params.integer("SEED")
    stack = RasterStack(params.paths("INPUT"), "INPUT")
    nodata = params.nodata("NODATA")
    if nodata is not None:
        for band in stack.bands:
            band.nodata = nodata
    grid = stack.grid
    if patch_size > min(grid.width, grid.height):
        raise PatchFlowError(f"patch size {patch_size} is bigger than the raster ({grid.width}x{grid.height} px).",
                             "PATCH_SIZE")
    if strategy == "split" and sum(proportions) <= 0:
        raise PatchFlowError("the proportions TRAIN, VALID and TEST add up to 0.", "TRAIN")
    labels_path = params.string("LABELS")
    samples_uri = params.string("SAMPLES")
    if strategy == "balanced" and not labels_path and not samples_uri:  # samples bring their class field
        raise PatchFlowError("the 'balanced' strategy needs a label raster.", "LABELS")
    outputs = {name: params.string(name, None) for name in OUTPUTS}
    staged = {name: context.staging.stage(path, name) for name, path in outputs.items() if path}
    if "OUTPUT_TRAIN" not in staged:
        raise PatchFlowError("a value is required.", "OUTPUT_TRAIN")

    reporter = context.reporter
    if samples_uri:
        return with_styles(context, _split_samples(
            samples_uri, params.string("CLASS_FIELD"), grid, patch_size, step * block, strategy, proportions,
            seed, staged, outputs, reporter, params.boolean("STRATIFY")))
    rows0 = grid_starts(grid.height, patch_size, step)
    cols0 = grid_starts(grid.width, patch_size, step)
    valid = patches_free_of_nodata(stack, patch_size, step, context.cancelled, reporter.span(0, 50))
    reporter.progress(50)
    centre_rows, centre_cols = rows0 + patch_size // 2, cols0 + patch_size // 2
    class_grid: np.ndarray | None = None
    classes: dict[int, ClassInfo] = {}
    if labels_path:
        class_grid, classes = _centre_classes(labels_path, grid, centre_rows, centre_cols, reporter.span(50, 60))
        valid &= class_grid != UNUSED
    if not valid.any():
        raise PatchFlowError("every grid patch touches nodata (or has no label): nothing to split. "
                             "Check the nodata value, or use a smaller patch size.", "INPUT")
    mode = "split" if strategy == "balanced" else strategy
    reporter.stage(f"assigning the blocks to the sets ({strategy})", 60, 80)
    per_block = block_sets(valid.shape, mode, proportions, block, seed)
    blocks = _grid_blocks(per_block.shape, block, valid, class_grid, patch_size, step) if (
        class_grid is not None and mode == "split") else None
    wanted = [s for s in range(len(SETS)) if OUTPUTS[s] in staged and (per_block == s).any()]
    if blocks is not None and params.boolean("STRATIFY"):
        per_block = stratify(per_block.ravel(), blocks, wanted, seed).reshape(per_block.shape)
    sets = expand_blocks(per_block, block, valid.shape)
    sets[~valid] = UNUSED
    sets = drop_overlaps(sets, patch_size, step)
    if strategy == "balanced":
        assert class_grid is not None  # 'balanced' without LABELS is refused above
        sets = balance(sets, class_grid, seed)
    if blocks is not None:
        assert class_grid is not None
        warn_missing(reporter, _counts(sets, class_grid, blocks.classes), blocks, wanted, classes,
                     f"BLOCK_SIZE {block}: blocks of {block * step} px")
    else:
        from ..checks import classes_missing_from_sets

        classes_missing_from_sets(reporter, sets, class_grid, classes, staged)
    reporter.progress(80)

    result: dict = {}
    for set_index, name in enumerate(OUTPUTS):
        rr, cc = np.nonzero(sets == set_index)
        result[name.replace("OUTPUT", "COUNT")] = int(len(rr))
        reporter.log(f"{SETS[set_index]}: {len(rr)} patches")
        if name not in staged:
            continue
        reporter.stage(f"writing the {SETS[set_index]} points", 80 + 6 * set_index, 86 + 6 * set_index)
        writer = PointWriter(staged[name], grid.crs_wkt, name)
        xs, ys = grid.pixel_centres(centre_cols[cc], centre_rows[rr])
        writer.write(xs, ys, class_grid[rr, cc] if class_grid is not None else None, classes)
        writer.close()
        result[name] = outputs[name]
    result["CLASSES"] = [info.as_dict() for info in classes.values()]
    dropped = int(valid.sum()) - sum(result[n.replace("OUTPUT", "COUNT")] for n in OUTPUTS)
    reporter.log(f"grid: {len(rows0)} x {len(cols0)} patches, {int((~valid).sum())} with nodata, "
                 f"{dropped} dropped to keep sets apart or balanced")
    reporter.progress(100)
    return with_styles(context, result)


def _counts(sets: np.ndarray, class_ids: np.ndarray, ids: list[int]) -> np.ndarray:
    """(3, classes) patches of each class in each set."""
    used = sets != UNUSED
    index = np.searchsorted(ids, class_ids[used])
    return np.bincount(sets[used] * len(ids) + index, minlength=3 * len(ids)).reshape(3, len(ids))


def _grid_blocks(block_shape: tuple[int, ...], block: int, valid: np.ndarray, class_grid: np.ndarray,
                 patch_size: int, step: int) -> Blocks:
    """The blocks of grid mode for stratification: each one's classes, and the split they give."""
    ids = sorted(int(v) for v in np.unique(class_grid[valid]))
    n = int(np.prod(block_shape))
    block_of = expand_blocks(np.arange(n).reshape(block_shape), block, valid.shape)
    rows, cols = np.nonzero(valid)
    own, index = block_of[rows, cols], np.searchsorted(ids, class_grid[rows, cols])
    # a patch is in its block's set, unless a patch of a later set overlaps it: with its neighbours'
    # blocks (within reach of an overlap) in its set too, it stays
    reach = math.ceil(patch_size / step) - 1
    around = [own]
    for di in range(-reach, reach + 1):
        for dj in range(-reach, reach + 1):
            rr = np.clip(rows + di, 0, valid.shape[0] - 1)
            cc = np.clip(cols + dj, 0, valid.shape[1] - 1)
            around.append(np.where(valid[rr, cc], block_of[rr, cc], own))
    groups = [sorted(set(a) | set(b)) for a, b in zip(class_groups(own[:, None], index, len(ids)),
                                                      class_groups(np.stack(around, axis=1), index, len(ids)))]
    sizes = np.bincount(own, minlength=n)

    def outcome(labels: np.ndarray) -> np.ndarray:
        sets = labels[block_of]
        sets[~valid] = UNUSED
        return _counts(drop_overlaps(sets, patch_size, step), class_grid, ids)

    return Blocks(ids, groups, sizes, outcome)


def with_styles(context, result: dict) -> dict:
    """Each written set's QML sidecar (STYLE_TRAIN, ...: None without classes), written by the engine."""
    for name in OUTPUTS:
        path = result.get(name)
        result[name.replace("OUTPUT", "STYLE")] = (write_point_style(context.staging, path, result["CLASSES"], name)
                                                   if path else None)
    return result


def _centre_classes(path: str, grid: Grid, rows: np.ndarray, cols: np.ndarray,
                    reporter: Reporter) -> tuple[np.ndarray, dict[int, ClassInfo]]:
    """Label at each grid centre (UNUSED where nodata), read from a raster on the image's grid."""
    ds = open_raster(path, "LABELS")
    labels_grid = Grid.of(ds, "LABELS")
    if not labels_grid.same_as(grid):
        raise PatchFlowError("the label raster is not on the image's grid (size, origin and pixel size must "
                             "match). Resample it onto the image first.", "LABELS")
    band = ds.GetRasterBand(1)
    values = np.empty((len(rows), len(cols)), dtype=np.int64)
    mask = np.zeros(values.shape, dtype=bool)
    reporter.stage("reading the labels at the patch centres", 0)
    for i, row in enumerate(rows):
        line = band.ReadAsArray(0, int(row), grid.width, 1)[0]
        mask[i] = nodata_mask(line[cols], band.GetNoDataValue())  # NaN and infinity included
        values[i] = np.where(mask[i], 0, line[cols]).astype(np.int64)
        reporter.stage(f"labels: grid rows {i + 1}/{len(rows)}", 100.0 * (i + 1) / len(rows), log=False)
    values[mask] = UNUSED
    present = sorted(int(v) for v in np.unique(values) if v != UNUSED)
    classes = {info.id: info for info in complete(present, classes_from_raster(path))}
    return values, classes


def _split_samples(uri: str, field: str | None, grid: Grid, patch_size: int, block_pixels: int, strategy: str,
                   proportions: tuple[float, float, float], seed: int, staged: dict, outputs: dict,
                   reporter: Reporter, stratified: bool = True) -> dict:
    """Split existing samples by spatial blocks of ``block_pixels``: a sample joins its block's set
    and is dropped when its patch reaches into a block of another set."""
    from ..geodata.vector import open_layer, read_points, resolve_class_field

    class_field = None
    if field:
        _, layer = open_layer(uri, "SAMPLES")
        class_field = resolve_class_field(layer, field, "CLASS_FIELD", uri)
    reporter.stage("reading the samples", 0, 30)
    points = read_points(uri, "SAMPLES", grid.crs_wkt, class_field)
    if len(points.xs) == 0:
        raise PatchFlowError("the sample layer has no point.", "SAMPLES")
    u, v = grid.fractional_pixel(points.xs, points.ys)
    c0 = np.floor(u).astype(np.int64) - patch_size // 2
    r0 = np.floor(v).astype(np.int64) - patch_size // 2
    shape = (grid.height // block_pixels + 1, grid.width // block_pixels + 1)
    mode = "split" if strategy == "balanced" else strategy
    reporter.stage(f"assigning the blocks to the sets ({strategy})", 30, 80)
    per_block = assign_sets(shape, mode, proportions, 1, seed).ravel()
    # every block the patch covers (not only its corners' when the patch spans more than two blocks)
    offsets = sorted(set(range(0, patch_size, block_pixels)) | {patch_size - 1})
    covered = [np.clip((r0 + dr) // block_pixels, 0, shape[0] - 1) * shape[1]
               + np.clip((c0 + dc) // block_pixels, 0, shape[1] - 1) for dr in offsets for dc in offsets]

    def sets_of(labels: np.ndarray) -> np.ndarray:
        corners = [labels[c] for c in covered]
        return np.where(np.all([c == corners[0] for c in corners], axis=0), corners[0], UNUSED)

    wanted = [s for s in range(len(SETS)) if OUTPUTS[s] in staged and (per_block == s).any()]
    blocks = None
    if points.class_ids is not None and mode == "split" and len(points.class_ids):
        ids = sorted(int(v) for v in np.unique(points.class_ids))
        index = np.searchsorted(ids, points.class_ids)
        # a sample needs every block its patch covers in its set
        groups = class_groups(np.stack(covered, axis=1), index, len(ids))
        home = np.all([c == covered[0] for c in covered], axis=0)  # the patch lies in one block
        sizes = np.bincount(covered[0][home], minlength=len(per_block))
        class_ids = points.class_ids
        blocks = Blocks(ids, groups, sizes, lambda labels: _counts(sets_of(labels), class_ids, ids))
        if stratified:
            per_block = stratify(per_block, blocks, wanted, seed)
    sets = sets_of(per_block)
    if strategy == "balanced":
        if points.class_ids is None:
            raise PatchFlowError("the 'balanced' strategy needs the samples' class field.", "CLASS_FIELD")
        sets = balance(sets[None, :], points.class_ids[None, :], seed)[0]
    classes = {c.id: c for c in class_field.class_list()} if class_field else {}
    if blocks is not None:
        assert points.class_ids is not None
        warn_missing(reporter, _counts(sets, points.class_ids, blocks.classes), blocks, wanted, classes,
                     f"blocks of {block_pixels} px")
    else:
        from ..checks import classes_missing_from_sets

        classes_missing_from_sets(reporter, sets, points.class_ids, classes, staged)
    result: dict = {}
    for set_index, name in enumerate(OUTPUTS):
        members = np.flatnonzero(sets == set_index)
        result[name.replace("OUTPUT", "COUNT")] = int(len(members))
        reporter.log(f"{SETS[set_index]}: {len(members)} samples")
        if name not in staged:
            continue
        reporter.stage(f"writing the {SETS[set_index]} points", 80 + 6 * set_index, 86 + 6 * set_index)
        writer = PointWriter(staged[name], grid.crs_wkt, name)
        writer.write(points.xs[members], points.ys[members],
                     points.class_ids[members] if points.class_ids is not None else None, classes)
        writer.close()
        result[name] = outputs[name]
    result["CLASSES"] = [info.as_dict() for info in classes.values()]
    reporter.log(f"{int((sets == UNUSED).sum())} of {len(sets)} samples dropped: their patch reaches into "
                 "a block of another set (or balancing)")
    reporter.progress(100)
    return result
