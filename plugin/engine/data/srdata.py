"""Super-resolution datasets (SR4RS-style): pairs of low- and high-resolution patches covering the
same ground, split spatially into training and validation sets.

The LR side is either a raster co-registered with the HR one (same CRS, any pixel-size ratio, the
HR grid nested in the LR grid), or the HR image itself degraded by Wald's protocol (Gaussian
low-pass matched to the ratio, then decimation), so any HR image is a training set.

Geometry: LR pixel (i, j) covers the ground of HR pixels [i r, (i + 1) r) when the ratio r is a
whole number (the degraded LR has the HR origin and pixels r times larger). A patch of p LR pixels
starting at LR pixel c pairs with the patch of round(p r) HR pixels starting where that LR pixel
starts on the ground; both are written as OTBTF patches-images ``<stem>_lr.tif`` and
``<stem>_hr.tif`` beside a patchflow-dataset manifest (sources "lr", role "image", and "hr", role
"target", plus a "super_resolution" entry).

This module runs the operation; its parts are srdegrade (Wald's protocol), srpairing (ratio and
patch pairs), srradiometry (the linear fit) and srsets (split, extraction, manifests).
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..errors import PatchFlowError
from ..geodata.raster import RasterStack, crs_label
from ..params import Params, RunContext
from ..reporting import Reporter
from .srdegrade import NYQUIST_GAIN, degrade, degraded_grid, gaussian_sigma
from .srpairing import Pairing, degrade_scale, measured_ratio, plan_pairs
from .srsets import SET_WORDS, SETS, split_grid, write_datasets


def manifest_path(params: Params, name: str, required: bool) -> str | None:
    path = params.string(name, None)
    if path is None:
        if required:
            raise PatchFlowError("a value is required.", name)
        return None
    return path if path.lower().endswith(".json") else path + ".json"


def override_nodata(stack: RasterStack, nodata: float | None) -> None:
    if nodata is not None:
        for band in stack.bands:
            band.nodata = nodata


def read_outputs(params: Params, valid: float) -> tuple[str, str | None]:
    train = manifest_path(params, "OUTPUT_TRAIN", True)
    assert train is not None  # required
    valid_path = manifest_path(params, "OUTPUT_VALID", False)
    if valid > 0 and valid_path is None:
        raise PatchFlowError(f"VALID is {valid:g}: give a manifest path for the validation set (or set VALID to 0).",
                             "OUTPUT_VALID")
    if valid_path is not None and os.path.abspath(valid_path) == os.path.abspath(train):
        raise PatchFlowError("the validation manifest is the training manifest. Choose another path.", "OUTPUT_VALID")
    return train, (valid_path if valid > 0 else None)


def check_sets(sets: np.ndarray, valid: float, block: int) -> None:
    blocks = math.ceil(sets.shape[0] / block) * math.ceil(sets.shape[1] / block)
    for index, name in enumerate(SETS):
        if (index == 0 or valid > 0) and not (sets == index).any():
            raise PatchFlowError(
                f"the {SET_WORDS[name]} set is empty: the grid of {sets.shape[1]}x{sets.shape[0]} patches makes "
                f"{blocks} block(s) of {block}x{block} patches, too few to split with VALID {valid:g}. Use a smaller "
                "BLOCK_SIZE (or patch size).", "BLOCK_SIZE")



def run_build_sr_dataset(params: Params, context: RunContext) -> dict:
    """Pairs of LR / HR patches on a grid over both images (the LR made by degrading the HR when
    none is given), split spatially into training and validation datasets."""
    from .. import checks

    checks.writable(params, "OUTPUT_TRAIN", "OUTPUT_VALID", "OUTPUT_LR")
    checks.rasters(params, "HR", "LR", reporter=context.reporter)
    patch = params.integer("PATCH_SIZE")
    step = params.integer("STEP", patch)
    valid = params.number("VALID")
    if valid >= 1:
        raise PatchFlowError(f"{valid:g} leaves nothing for training: use a fraction below 1 (e.g. 0.3).", "VALID")
    block = params.integer("BLOCK_SIZE")
    seed = params.integer("SEED")
    radiometric = params.boolean("RADIOMETRIC")
    nodata = params.nodata("NODATA")
    train_path, valid_path = read_outputs(params, valid)
    hr = RasterStack(params.paths("HR"), "HR")
    override_nodata(hr, nodata)
    lr, pairing = _pairing(params, hr, patch, step, nodata)
    if radiometric and lr is not None and lr.band_count != hr.band_count:
        raise PatchFlowError(f"radiometric matching fits each HR band to the LR band of the same rank, but LR has "
                             f"{lr.band_count} bands and HR {hr.band_count}. Stack matching bands, or untick it.",
                             "RADIOMETRIC")
    sets = split_grid(pairing, valid, block, seed)
    check_sets(sets, valid, block)
    _log_plan(context.reporter, params, lr, hr, pairing, sets, valid)

    lr_output = params.string("OUTPUT_LR")
    if lr is not None and lr_output:
        context.reporter.warning("OUTPUT_LR is only written when the LR image is made by degrading HR (no LR given).")
        lr_output = None
    temporary_lr = None
    if lr is None:
        target = lr_output or os.path.join(os.path.dirname(os.path.abspath(train_path)),
                                           f".{os.path.basename(train_path)}.degraded_lr.tif")
        staged = context.staging.stage(target, "OUTPUT_LR" if lr_output else "OUTPUT_TRAIN")
        temporary_lr = None if lr_output else staged
        lr_nodata = nodata if nodata is not None else next((v for v in hr.nodata if v is not None), None)
        if lr_nodata is None and hr.dtype.kind in "fc":
            lr_nodata = float("nan")  # where the HR holds NaN/infinity and no nodata value is declared
        context.reporter.stage(f"degrading HR by {pairing.ratio:g} (Wald's protocol) into the LR image", 0)
        degrade(hr, int(pairing.ratio), staged, lr_nodata, context.reporter.span(0, 40), context.cancelled)
        lr = RasterStack([staged], "OUTPUT_LR")
    try:
        result = write_datasets(context, lr, hr, pairing, sets, radiometric, train_path, valid_path,
                                 lr_output, valid, block, seed)
    finally:
        del lr, hr  # closes the rasters before the outputs are moved in place
        if temporary_lr and os.path.exists(temporary_lr):
            os.remove(temporary_lr)
    context.reporter.progress(100)
    return result


def _pairing(params: Params, hr: RasterStack, patch: int, step: int,
             nodata: float | None) -> tuple[RasterStack | None, Pairing]:
    """The LR stack (None when it is to be degraded from HR) and the patch pairs' geometry."""
    scale = params.number("SCALE")
    lr_paths = params.paths("LR", required=False)
    if not lr_paths:
        factor = degrade_scale(4.0 if scale is None else scale)
        return None, plan_pairs(degraded_grid(hr.grid, factor), hr.grid, float(factor), patch, step, degraded=True)
    lr = RasterStack(lr_paths, "LR")
    override_nodata(lr, nodata)
    if not hr.grid.same_crs_as(lr.grid):
        raise PatchFlowError(
            f"the LR image is in {crs_label(lr.grid.crs_wkt)} but the HR image is in {crs_label(hr.grid.crs_wkt)}. "
            "Both must share one CRS: reproject one of them (gdalwarp -t_srs), keeping the grids nested.", "LR")
    ratio = measured_ratio(lr.grid, hr.grid, scale)
    return lr, plan_pairs(lr.grid, hr.grid, ratio, patch, step, degraded=False)


def _log_plan(reporter: Reporter, params: Params, lr: RasterStack | None, hr: RasterStack, pairing: Pairing,
              sets: np.ndarray, valid: float) -> None:
    if valid == 0 and params.string("OUTPUT_VALID"):
        reporter.warning("VALID is 0: no validation dataset is written.")
    if lr is None:
        reporter.log(f"degrading HR by {pairing.ratio:g}: Gaussian sigma {gaussian_sigma(pairing.ratio):.3f} HR px "
                     f"(gain {NYQUIST_GAIN:g} at the LR Nyquist frequency), sampled at LR pixel centres")
    else:
        reporter.log(f"ratio {pairing.ratio:g} (LR pixel {abs(lr.grid.dx):g}, HR {abs(hr.grid.dx):g}); the HR image "
                     f"starts at LR pixel ({(hr.grid.x0 - lr.grid.x0) / lr.grid.dx:.3f}, "
                     f"{(hr.grid.y0 - lr.grid.y0) / lr.grid.dy:.3f}); HR grid off the LR grid by "
                     f"{pairing.cols.offset:+.3f}, {pairing.rows.offset:+.3f} LR px")
    reporter.log(f"grid of {len(pairing.cols.lr)} x {len(pairing.rows.lr)} patch pairs ({pairing.patch} LR px, "
                 f"{pairing.hr_patch} HR px, step {pairing.step}): {int((sets == 0).sum())} training, "
                 f"{int((sets == 1).sum())} validation before nodata checks")
