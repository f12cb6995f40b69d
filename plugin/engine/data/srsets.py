"""The training and validation sets of a super-resolution dataset: the spatial split of the pair
grid, the staged patches-images and their writers, the extraction of every pair free of nodata into
its set (feeding the radiometric fit), and each set's patchflow-dataset manifest.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import Cancelled, PatchFlowError
from ..geodata.raster import RasterStack, crs_label
from ..params import RunContext
from ..reporting import Reporter
from .manifest import FORMAT, VERSION, source_entry, write_manifest
from .patches import BandStats, PatchesImageWriter, Source, read_patches
from .split import UNUSED, assign_sets, drop_overlaps
from .srdegrade import NYQUIST_GAIN, gaussian_sigma
from .srpairing import Pairing
from .srradiometry import FIT_CHUNK, LinearFit, area_average, area_matrix, calibrate_patches

SETS = ("train", "valid")
SET_WORDS = {"train": "training", "valid": "validation"}


@dataclass
class SetOutput:
    """One dataset (train or valid): its writers, statistics and counts."""

    name: str
    manifest: str  # final path
    staged_manifest: str
    lr_path: str  # final paths of the patches-images
    hr_path: str
    lr_writer: PatchesImageWriter
    hr_writer: PatchesImageWriter
    hr_staged: str  # where the HR patches-image ends up (the writer may write a raw one first)
    lr_stats: BandStats
    hr_stats: BandStats
    dropped_nodata: int = 0


def split_grid(pairing: Pairing, valid: float, block: int, seed: int) -> np.ndarray:
    """Set per grid cell (0 train, 1 valid, UNUSED), blocks of ``block`` x ``block`` patches
    decided together; where patches of the two sets would overlap, the training one is dropped."""
    shape = (len(pairing.rows.lr), len(pairing.cols.lr))
    sets = assign_sets(shape, "split", (1.0 - valid, valid, 0.0), block, seed)
    return drop_overlaps(sets, pairing.patch, pairing.step)


def extract_pairs(lr: RasterStack, hr: RasterStack, pairing: Pairing, sets: np.ndarray, outputs: list[SetOutput],
                  fit: LinearFit | None, reporter: Reporter, cancelled: Callable[[], bool]) -> None:
    """Read every kept pair a grid row at a time (one window per source), drop pairs touching
    nodata on either side, write each to its set, and feed the fit with the training pairs."""
    matrix = area_matrix(pairing.patch, pairing.hr_patch, pairing.ratio) if fit else None
    check_lr, check_hr = lr.may_hold_nodata, hr.may_hold_nodata  # a nodata value, or NaN/infinity
    reporter.stage("extracting the patch pairs", 0)
    for i, (lr_row, hr_row) in enumerate(zip(pairing.rows.lr, pairing.rows.hr)):
        if cancelled():
            raise Cancelled()
        members = np.flatnonzero(sets[i] != UNUSED)
        if len(members) == 0:
            continue
        lr_batch = read_patches(lr, pairing.cols.lr[members], np.full(len(members), lr_row), pairing.patch)
        hr_batch = read_patches(hr, pairing.cols.hr[members], np.full(len(members), hr_row), pairing.hr_patch)
        good = np.ones(len(members), dtype=bool)
        if check_lr:
            good &= ~lr.nodata_mask(lr_batch.transpose(1, 0, 2, 3)).any(axis=(1, 2))
        if check_hr:
            good &= ~hr.nodata_mask(hr_batch.transpose(1, 0, 2, 3)).any(axis=(1, 2))
        for index, output in enumerate(outputs):
            in_set = sets[i, members] == index
            chosen = in_set & good
            output.dropped_nodata += int((in_set & ~good).sum())
            output.lr_writer.add(lr_batch[chosen])
            output.hr_writer.add(hr_batch[chosen])
            output.lr_stats.add(lr_batch[chosen])
            if fit is None:
                output.hr_stats.add(hr_batch[chosen])
            elif index == 0:
                assert matrix is not None  # made when fitting
                kept = np.flatnonzero(chosen)
                for start in range(0, len(kept), FIT_CHUNK):  # float64 copies of HR patches: bounded
                    part = kept[start:start + FIT_CHUNK]
                    fit.add(area_average(hr_batch[part], matrix), lr_batch[part])
        reporter.stage(f"pairs: grid rows {i + 1}/{len(pairing.rows.lr)}", 100.0 * (i + 1) / len(pairing.rows.lr),
                       log=False)


def open_set(name: str, manifest: str, parameter: str, context: RunContext, lr: RasterStack, hr: RasterStack,
             pairing: Pairing, capacity: int, calibrate: bool) -> SetOutput:
    """Stage a set's manifest and patches-images and open their writers (the HR one writes a raw
    patches-image first when it is calibrated afterwards)."""
    stem = os.path.splitext(manifest)[0]
    lr_path, hr_path = f"{stem}_lr.tif", f"{stem}_hr.tif"
    staged_manifest = context.staging.stage(manifest, parameter)
    staged_lr = context.staging.stage(lr_path, parameter)
    staged_hr = context.staging.stage(hr_path, parameter)
    hr_written = staged_hr + ".raw.tif" if calibrate else staged_hr
    return SetOutput(
        name, manifest, staged_manifest, lr_path, hr_path,
        PatchesImageWriter(staged_lr, capacity, lr.band_count, pairing.patch, lr.dtype),
        PatchesImageWriter(hr_written, capacity, hr.band_count, pairing.hr_patch, hr.dtype),
        staged_hr, BandStats(lr.band_count, lr.nodata), BandStats(hr.band_count, None if calibrate else hr.nodata))


def write_datasets(context: RunContext, lr: RasterStack, hr: RasterStack, pairing: Pairing, sets: np.ndarray,
                    radiometric: bool, train_path: str, valid_path: str | None, lr_output: str | None,
                    valid: float, block: int, seed: int) -> dict:
    reporter = context.reporter
    start = 40 if pairing.degraded else 0
    manifests = [(train_path, "OUTPUT_TRAIN")] + ([(valid_path, "OUTPUT_VALID")] if valid_path else [])
    outputs = [open_set(SETS[index], path, parameter, context, lr, hr, pairing, int((sets == index).sum()), radiometric)
               for index, (path, parameter) in enumerate(manifests)]
    fit = LinearFit(hr.band_count) if radiometric else None
    extract_pairs(lr, hr, pairing, sets, outputs, fit, reporter.span(start, 90), context.cancelled)
    for output in outputs:
        output.lr_writer.close([b.description for b in lr.bands], lr.nodata)
        output.hr_writer.close([b.description for b in hr.bands], hr.nodata)
    coefficients = None
    if fit is not None:
        if fit.count[0] == 0:
            raise PatchFlowError("no training pair is free of nodata: nothing to fit.", "RADIOMETRIC")
        reporter.stage("fitting the radiometry and calibrating the HR patches", 90, 97)
        coefficients = fit.solve()
        for output in outputs:
            output.hr_writer.written = calibrate_patches(
                output.hr_writer.path, output.hr_staged, np.asarray(coefficients["gain"]),
                np.asarray(coefficients["offset"]), output.hr_stats)
        reporter.log("radiometric fit (LR = gain x HR + offset): " + ", ".join(
            f"band {b + 1}: {g:.4g} x HR {o:+.4g} (r2 {r:.3f})"
            for b, (g, o, r) in enumerate(zip(coefficients["gain"], coefficients["offset"], coefficients["r2"]))))
    for output in outputs:
        if output.lr_writer.written == 0:
            raise PatchFlowError(f"every {SET_WORDS[output.name]} patch pair touches nodata: nothing to write. Check "
                                 "the images' nodata value (NODATA), or use a smaller patch size.", "HR")
        reporter.log(f"{output.name}: {output.lr_writer.written} patch pairs"
                     + (f" ({output.dropped_nodata} dropped: nodata)" if output.dropped_nodata else ""))
    info = sr_info(pairing, coefficients, lr_output, valid, block, seed)
    reporter.stage("writing the manifests", 97)
    for output in outputs:
        manifest = dataset_manifest(output, lr, hr, pairing, info, radiometric, lr_output)
        write_manifest(output.staged_manifest, manifest)
    counts = {o.name: o.lr_writer.written for o in outputs}
    return {
        "OUTPUT_TRAIN": train_path, "OUTPUT_VALID": valid_path, "OUTPUT_LR": lr_output,
        "COUNT_TRAIN": counts["train"], "COUNT_VALID": counts.get("valid", 0), "SCALE": pairing.ratio,
        "OFFSET_X": pairing.cols.offset, "OFFSET_Y": pairing.rows.offset,
    }


def sr_info(pairing: Pairing, coefficients: dict | None, lr_output: str | None, valid: float, block: int,
            seed: int) -> dict:
    lr = pairing.lr_grid
    hr_pixel = abs(lr.dx) / pairing.ratio
    degradation = None
    if pairing.degraded:
        degradation = {"method": "Wald's protocol: Gaussian low-pass, sampled at LR pixel centres",
                       "sigma_hr_pixels": gaussian_sigma(pairing.ratio), "gain_at_nyquist": NYQUIST_GAIN,
                       "lr_raster": lr_output}
    return {
        "scale": pairing.ratio, "lr_pixel": abs(lr.dx), "hr_pixel": hr_pixel, "degraded": pairing.degraded,
        "radiometric_fit": coefficients, "degradation": degradation,
        "alignment_offset_lr_pixels": [pairing.cols.offset, pairing.rows.offset],
        "patch_size": pairing.patch, "hr_patch_size": pairing.hr_patch, "step": pairing.step,
        "split": {"valid_fraction": valid, "block_size": block, "seed": seed},
    }


def dataset_manifest(output: SetOutput, lr: RasterStack, hr: RasterStack, pairing: Pairing, info: dict,
                     calibrated: bool, lr_output: str | None) -> dict:
    count = output.lr_writer.written
    lr_entry = source_entry(Source("lr", "LR", lr, pairing.patch), os.path.basename(output.lr_path),
                            output.lr_stats.as_list())
    if pairing.degraded:
        lr_entry["rasters"] = [lr_output] if lr_output else []
        lr_entry["degraded_from"] = hr.paths
        for band in lr_entry["bands"]:  # not the staged file, gone after the run: OUTPUT_LR, else none
            band["raster"] = lr_output
    hr_entry = source_entry(Source("hr", "HR", hr, pairing.hr_patch, role="target"),
                            os.path.basename(output.hr_path), output.hr_stats.as_list())
    if calibrated:
        hr_entry["dtype"] = "float32"
        for band in hr_entry["bands"]:
            band["nodata"] = None
    return {
        "format": FORMAT,
        "version": VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "crs": lr.grid.crs_wkt,
        "crs_label": crs_label(lr.grid.crs_wkt),
        "points": None,
        "n_patches": count,
        "n_points": count + output.dropped_nodata,
        "dropped": {"outside": 0, "nodata": output.dropped_nodata},
        "sources": [lr_entry, hr_entry],
        "labels": None,
        "classes": [],
        "set": output.name,
        "super_resolution": info,
    }
