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
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from osgeo import gdal

from ..errors import Cancelled, PatchFlowError
from ..geodata.geotiff import create_geotiff, creation_options
from ..geodata.raster import Grid, RasterStack, crs_label
from ..params import Params, RunContext
from ..reporting import Reporter
from .manifest import FORMAT, VERSION, source_entry, write_manifest
from .patches import MAX_CACHE_BYTES, BandStats, PatchesImage, PatchesImageWriter, Source, read_patches
from .split import UNUSED, assign_sets, drop_overlaps

NYQUIST_GAIN = 0.25  # the degradation filter's gain at the LR Nyquist frequency
ALIGN_TOLERANCE = 0.05  # LR pixels: how far HR pixel edges may lie from LR pixel edges
SIZE_TOLERANCE = 1e-6  # how close p x ratio must be to a whole number of HR pixels
SCALE_TOLERANCE = 1e-4  # relative: SCALE against the ratio measured from pixel sizes
DEGRADE_TILE = 256  # LR pixels per side of a degraded block (and of the LR GeoTIFF's tiles)
LR_OPTIONS = creation_options(tiled=True, block=DEGRADE_TILE, deflate=True, predictor=3)
REWRITE_CHUNK = 256  # patches per read when the HR patches are calibrated
FIT_CHUNK = 64  # HR patches averaged at once for the radiometric fit
SETS = ("train", "valid")
SET_WORDS = {"train": "training", "valid": "validation"}


# ---- degradation (Wald's protocol) -----------------------------------------------------------


def gaussian_sigma(scale: float, gain: float = NYQUIST_GAIN) -> float:
    """Standard deviation (HR pixels) of the Gaussian low-pass whose gain at the LR Nyquist
    frequency is ``gain``.

    A Gaussian of standard deviation s has the transfer function H(f) = exp(-2 pi^2 s^2 f^2) (f in
    cycles per HR pixel). The LR grid's Nyquist frequency is f_N = 1 / (2 r). Setting H(f_N) = g:

        s = r * sqrt(-2 ln g) / pi        (g = 0.25: s = 2 r sqrt(ln 2) / pi ~ 0.530 r)

    i.e. a full width at half maximum of 2 sqrt(2 ln 2) s ~ 1.25 r. This is the MTF-matched filter
    of Wald's protocol (Wald, Ranchin & Mangolini 1997, PE&RS 63(6)) as pansharpening and SR
    practice build it (Aiazzi et al. 2006, PE&RS 72(5); Vivone et al. 2015, IEEE TGRS 53(5)):
    optical sensors' MTF at Nyquist is typically 0.2-0.3, so the degraded image looks like one the
    coarser sensor would have taken, with little aliasing.
    """
    return scale * math.sqrt(-2.0 * math.log(gain)) / math.pi


def degradation_kernel(scale: int, sigma: float) -> tuple[np.ndarray, int]:
    """1-D weights of the Gaussian centred on LR pixel 0's centre, and the HR index of its first tap:
    LR pixel i = sum over t of w[t] * HR[i * scale + first + t] (truncated at 3 sigma, normalised).

    The centre of LR pixel i is HR index i r + (r - 1) / 2 (between two HR pixels when r is even):
    decimation samples the blurred image at LR pixel centres, so the Gaussian is the whole system
    response and LR pixel (i, j) is centred on the HR block [i r, (i + 1) r)."""
    centre = (scale - 1) / 2
    first = math.floor(centre - 3 * sigma)
    last = math.ceil(centre + 3 * sigma)
    taps = np.arange(first, last + 1)
    weights = np.exp(-((taps - centre) ** 2) / (2 * sigma**2))
    return weights / weights.sum(), first


def decimate_axis(values: np.ndarray, weights: np.ndarray, scale: int, count: int, axis: int) -> np.ndarray:
    """``count`` weighted sums along ``axis``, ``scale`` apart; ``values`` starts at the first tap."""
    result = None
    for tap, weight in enumerate(weights):
        index = [slice(None)] * values.ndim
        index[axis] = slice(tap, tap + (count - 1) * scale + 1, scale)
        term = values[tuple(index)] * np.float32(weight)
        if result is None:
            result = term
        else:
            result += term
    assert result is not None  # one tap at least
    return result


def blur_decimate(values: np.ndarray, weights: np.ndarray, scale: int, rows: int, cols: int) -> np.ndarray:
    """(bands, HR rows, HR cols) with the kernel's margins -> (bands, rows, cols) LR pixels (separable)."""
    return decimate_axis(decimate_axis(values, weights, scale, rows, 1), weights, scale, cols, 2)


@dataclass
class HrRange:
    """HR pixels a run of LR pixels needs along one axis: what to read and what to mirror beyond the edge."""

    start: int
    stop: int
    before: int
    after: int

    @classmethod
    def of(cls, lr_start: int, lr_count: int, scale: int, first: int, taps: int, size: int) -> HrRange:
        start = lr_start * scale + first
        stop = (lr_start + lr_count - 1) * scale + first + taps
        return cls(max(0, start), min(size, stop), max(0, -start), max(0, stop - size))


def degrade_window(stack: RasterStack, window: tuple[int, int, int, int], scale: int, weights: np.ndarray,
                   first: int) -> tuple[np.ndarray, np.ndarray | None]:
    """LR pixels of ``window`` (LR col, row, width, height) and where their HR block holds nodata
    (None when it cannot). Beyond the image the HR is mirrored; near nodata the Gaussian is
    renormalised over valid pixels (normalised convolution), so nodata values never leak in."""
    col0, row0, cols, rows = window
    grid = stack.grid
    across = HrRange.of(col0, cols, scale, first, len(weights), grid.width)
    down = HrRange.of(row0, rows, scale, first, len(weights), grid.height)
    values = stack.read((across.start, down.start, across.stop - across.start, down.stop - down.start))
    values = values.astype(np.float32)
    invalid = stack.nodata_mask(values) if stack.may_hold_nodata else None  # NaN/infinity are nodata too
    pad = ((down.before, down.after), (across.before, across.after))
    if invalid is None or not invalid.any():
        values = np.pad(values, ((0, 0), *pad), mode="symmetric")
        return blur_decimate(values, weights, scale, rows, cols), None
    valid = np.pad(~invalid, pad, mode="symmetric")
    values = np.pad(np.where(invalid, np.float32(0), values), ((0, 0), *pad), mode="symmetric")
    weight = valid.astype(np.float32)[np.newaxis]
    total = blur_decimate(values * weight, weights, scale, rows, cols)
    norm = blur_decimate(weight, weights, scale, rows, cols)
    lr = np.divide(total, norm, out=np.zeros_like(total), where=norm > 0)
    inner = -first  # the padded arrays start at HR index (first LR pixel) * scale + first
    block = ~valid[inner:inner + rows * scale, inner:inner + cols * scale]
    return lr, block.reshape(rows, scale, cols, scale).any(axis=(1, 3))


def degraded_grid(grid: Grid, scale: int) -> Grid:
    """The LR grid of a degraded HR: same origin, pixels ``scale`` times larger, partial blocks dropped."""
    return Grid(grid.width // scale, grid.height // scale, grid.x0, grid.dx * scale, grid.y0, grid.dy * scale,
                grid.crs_wkt)


def degrade(stack: RasterStack, scale: int, output: str, nodata: float | None, reporter: Reporter,
            cancelled: Callable[[], bool] = lambda: False) -> Grid:
    """Write ``stack`` degraded by ``scale`` (Wald's protocol) to the float32 GeoTIFF ``output``,
    block by block (HR windows read with the kernel's margin). LR pixels whose HR block touches
    nodata get ``nodata``."""
    sigma = gaussian_sigma(scale)
    weights, first = degradation_kernel(scale, sigma)
    grid = degraded_grid(stack.grid, scale)
    bands = stack.band_count
    if "GDAL_CACHEMAX" not in os.environ:  # the HR blocks of one row of LR tiles, read once
        row_bytes = stack.grid.width * (DEGRADE_TILE * scale + len(weights)) * bands * stack.dtype.itemsize
        gdal.SetCacheMax(max(gdal.GetCacheMax(), min(MAX_CACHE_BYTES, row_bytes)))
    ds = create_geotiff(output, grid.width, grid.height, bands, np.dtype(np.float32), LR_OPTIONS, "OUTPUT_LR",
                        grid.geotransform, grid.crs_wkt)
    windows = [(c, r, min(DEGRADE_TILE, grid.width - c), min(DEGRADE_TILE, grid.height - r))
               for r in range(0, grid.height, DEGRADE_TILE) for c in range(0, grid.width, DEGRADE_TILE)]
    for done, window in enumerate(windows, start=1):
        if cancelled():
            raise Cancelled()
        lr, invalid = degrade_window(stack, window, scale, weights, first)
        if invalid is not None and nodata is not None:
            lr[:, invalid] = nodata
        ds.WriteRaster(window[0], window[1], window[2], window[3], np.ascontiguousarray(lr, np.float32).tobytes(),
                       buf_type=gdal.GDT_Float32, band_list=list(range(1, bands + 1)))
        reporter.progress(100.0 * done / len(windows))
    for index, band in enumerate(stack.bands, start=1):
        ds.GetRasterBand(index).SetDescription(band.description)
        if nodata is not None:
            ds.GetRasterBand(index).SetNoDataValue(nodata)
    ds = None
    return grid


# ---- pairing LR and HR patches -----------------------------------------------------------------


@dataclass
class AxisPlan:
    """Patch starts along one axis: LR pixels, the HR pixels covering the same ground, and the
    shift of the HR patches from the LR ones (LR pixels; 0 when the grids nest)."""

    lr: np.ndarray
    hr: np.ndarray
    offset: float


def axis_plan(lr_size: int, hr_size: int, hr_origin: float, ratio: float, patch: int, hr_patch: int,
              step: int) -> AxisPlan:
    """Grid of LR patch starts ``step`` apart whose LR and HR patches both fit, the HR starts on
    the nearest HR pixel edge. ``hr_origin``: the HR raster's first edge in LR pixel coordinates.
    With a non-integer ratio only some LR edges fall on HR edges (every 2nd for 2.5): the grid
    starts on the best one, and (p and step times the ratio being whole) every patch shares it."""
    period = math.gcd(patch, step)
    first = max(0, math.ceil(hr_origin - 0.5 / ratio - 1e-9))
    candidates = np.arange(first, first + period)
    exact = (candidates - hr_origin) * ratio
    residuals = exact - np.round(exact)
    best = int(np.argmin(np.abs(residuals)))
    lr = np.arange(candidates[best], lr_size - patch + 1, step, dtype=np.int64)
    hr = np.round((lr - hr_origin) * ratio).astype(np.int64)
    keep = (hr >= 0) & (hr + hr_patch <= hr_size)
    return AxisPlan(lr[keep], hr[keep], float(-residuals[best] / ratio) + 0.0)  # + 0.0: no -0.0


@dataclass
class Pairing:
    lr_grid: Grid
    ratio: float
    patch: int
    hr_patch: int
    step: int
    cols: AxisPlan
    rows: AxisPlan
    degraded: bool


def whole_multiple(size: int, ratio: float) -> bool:
    return abs(size * ratio - round(size * ratio)) <= SIZE_TOLERANCE


def sizes_that_work(size: int, ratio: float) -> str:
    below = next((s for s in range(size - 1, 0, -1) if whole_multiple(s, ratio)), None)
    above = next((s for s in range(size + 1, size + 1001) if whole_multiple(s, ratio)), None)
    found = [str(s) for s in (below, above) if s is not None]
    return " or ".join(found) if found else "none near it"


def check_sizes(patch: int, step: int, ratio: float) -> int:
    """The HR patch size round(p x ratio), or errors naming PATCH_SIZE / STEP when p or the step
    does not make a whole number of HR pixels."""
    if not whole_multiple(patch, ratio):
        raise PatchFlowError(
            f"{patch} LR pixels make {patch * ratio:g} HR pixels at a ratio of {ratio:g}: the HR patch must be a "
            f"whole number of pixels. Use a patch size of {sizes_that_work(patch, ratio)}.", "PATCH_SIZE")
    if not whole_multiple(step, ratio):
        raise PatchFlowError(
            f"a step of {step} LR pixels makes {step * ratio:g} HR pixels at a ratio of {ratio:g}: patch centres "
            f"must fall on HR pixels too. Use a step of {sizes_that_work(step, ratio)}.", "STEP")
    return int(round(patch * ratio))


def check_hr_size(hr: Grid, hr_patch: int, patch: int, ratio: float) -> None:
    if hr_patch > min(hr.width, hr.height):
        raise PatchFlowError(
            f"the HR image ({hr.width}x{hr.height} px) is smaller than one HR patch ({hr_patch} px = PATCH_SIZE "
            f"{patch} x {ratio:g}). Use a smaller patch size, or a larger HR image.", "PATCH_SIZE")


def measured_ratio(lr: Grid, hr: Grid, scale: float | None) -> float:
    """LR pixel / HR pixel, the same across and down; errors name HR (not finer) or SCALE (differs)."""
    across, down = abs(lr.dx / hr.dx), abs(lr.dy / hr.dy)
    if abs(across - down) > SIZE_TOLERANCE * across:
        raise PatchFlowError(
            f"the LR/HR pixel-size ratio is {across:g} across but {down:g} down (LR pixel {abs(lr.dx):g} x "
            f"{abs(lr.dy):g}, HR {abs(hr.dx):g} x {abs(hr.dy):g}). Resample one of them so the ratio is the same "
            "both ways.", "HR")
    if across <= 1 + SIZE_TOLERANCE:
        raise PatchFlowError(
            f"the HR pixel ({abs(hr.dx):g}) is not finer than the LR pixel ({abs(lr.dx):g}): the ratio is "
            f"{across:g}. HR must be the high-resolution image; swap HR and LR if they are the other way round.",
            "HR")
    if scale is not None and abs(scale - across) > SCALE_TOLERANCE * across:
        raise PatchFlowError(
            f"SCALE is {scale:g} but the pixel sizes give a ratio of {across:g} (LR {abs(lr.dx):g}, HR "
            f"{abs(hr.dx):g}). Leave SCALE empty when an LR image is given (it is measured), or give rasters with "
            "that ratio.", "SCALE")
    return across


def degrade_scale(value: float) -> int:
    factor = int(round(value))
    if abs(value - factor) > 1e-9 or factor < 2:
        raise PatchFlowError(
            f"degrading the HR image needs a whole-number SCALE of 2 or more (LR pixel = SCALE HR pixels), not "
            f"{value:g}. For another ratio, give an LR image made elsewhere.", "SCALE")
    return factor


def check_overlap(lr: Grid, hr: Grid) -> None:
    lx0, ly0, lx1, ly1 = lr.extent
    hx0, hy0, hx1, hy1 = hr.extent
    if min(lx1, hx1) <= max(lx0, hx0) or min(ly1, hy1) <= max(ly0, hy0):
        raise PatchFlowError(
            f"the LR and HR images do not overlap (LR covers x {lx0:.1f}..{lx1:.1f}, y {ly0:.1f}..{ly1:.1f}; HR "
            f"covers x {hx0:.1f}..{hx1:.1f}, y {hy0:.1f}..{hy1:.1f}, in {crs_label(lr.crs_wkt)}). Give images of "
            "the same area.", "LR")


def check_alignment(lr: Grid, hr: Grid, cols: AxisPlan, rows: AxisPlan) -> None:
    """HR pixel edges must fall on LR pixel edges to within ALIGN_TOLERANCE LR pixels."""
    if max(abs(cols.offset), abs(rows.offset)) <= ALIGN_TOLERANCE:
        return
    lx0, ly0, lx1, ly1 = lr.extent
    hx0, hy0, hx1, hy1 = hr.extent
    x0, x1 = max(lx0, hx0), min(lx1, hx1)
    y0, y1 = max(ly0, hy0), min(ly1, hy1)
    dx, dy = abs(lr.dx), abs(lr.dy)
    snapped = (lr.x0 + math.ceil((x0 - lr.x0) / dx - 1e-9) * dx, lr.y0 - math.floor((lr.y0 - y0) / dy + 1e-9) * dy,
               lr.x0 + math.floor((x1 - lr.x0) / dx + 1e-9) * dx, lr.y0 - math.ceil((lr.y0 - y1) / dy - 1e-9) * dy)
    raise PatchFlowError(
        f"the HR grid is off the LR grid by {cols.offset:+.3f} LR pixels across and {rows.offset:+.3f} down "
        f"({cols.offset * dx:+.2f}, {rows.offset * dy:+.2f} map units): HR pixel edges must fall on LR pixel edges "
        f"to within {ALIGN_TOLERANCE:g} LR pixel so that patch pairs cover the same ground. Resample the HR image "
        f"onto a grid nested in the LR one, e.g. gdalwarp -tr {abs(hr.dx):g} {abs(hr.dy):g} -te "
        f"{snapped[0]:.6f} {snapped[1]:.6f} {snapped[2]:.6f} {snapped[3]:.6f} hr.tif hr_aligned.tif.", "HR")


def plan_pairs(lr: Grid, hr: Grid, ratio: float, patch: int, step: int, degraded: bool) -> Pairing:
    hr_patch = check_sizes(patch, step, ratio)
    check_hr_size(hr, hr_patch, patch, ratio)
    if patch > min(lr.width, lr.height):
        raise PatchFlowError(f"the LR image ({lr.width}x{lr.height} px) is smaller than one patch ({patch} px). Use "
                             "a smaller patch size.", "PATCH_SIZE")
    check_overlap(lr, hr)
    cols = axis_plan(lr.width, hr.width, (hr.x0 - lr.x0) / lr.dx, ratio, patch, hr_patch, step)
    rows = axis_plan(lr.height, hr.height, (hr.y0 - lr.y0) / lr.dy, ratio, patch, hr_patch, step)
    check_alignment(lr, hr, cols, rows)
    if len(cols.lr) == 0 or len(rows.lr) == 0:
        raise PatchFlowError(
            f"the area covered by both the LR and the HR image holds no whole patch of {patch} LR px ({hr_patch} HR "
            "px). Use a smaller patch size, or images that overlap more.", "PATCH_SIZE")
    return Pairing(lr, ratio, patch, hr_patch, step, cols, rows, degraded)


# ---- radiometric matching ---------------------------------------------------------------------


def area_matrix(patch: int, hr_patch: int, ratio: float) -> np.ndarray:
    """(patch, hr_patch) weights averaging HR pixels over each LR pixel by overlap length (exact
    for non-integer ratios: an HR pixel split by an LR edge counts in both)."""
    lr_edges = np.arange(patch + 1) * ratio
    hr_edges = np.arange(hr_patch + 1, dtype=np.float64)
    low = np.maximum(lr_edges[:-1, None], hr_edges[None, :-1])
    high = np.minimum(lr_edges[1:, None], hr_edges[None, 1:])
    return np.clip(high - low, 0, None) / ratio


def area_average(hr: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(n, bands, P, P) HR patches -> (n, bands, p, p): each LR pixel's HR mean."""
    return np.einsum("ij,nbjk,lk->nbil", matrix, hr.astype(np.float64), matrix, optimize=True)


@dataclass
class LinearFit:
    """Per-band least squares LR ~ gain * HR_averaged + offset, accumulated batch by batch."""

    bands: int
    count: np.ndarray = field(init=False)
    sums: np.ndarray = field(init=False)  # x, y, xx, xy, yy per band

    def __post_init__(self) -> None:
        self.count = np.zeros(self.bands)
        self.sums = np.zeros((5, self.bands))

    def add(self, hr_averaged: np.ndarray, lr: np.ndarray) -> None:
        x = hr_averaged.transpose(1, 0, 2, 3).reshape(self.bands, -1)
        y = lr.astype(np.float64).transpose(1, 0, 2, 3).reshape(self.bands, -1)
        self.count += x.shape[1]
        self.sums += np.stack([x.sum(1), y.sum(1), (x * x).sum(1), (x * y).sum(1), (y * y).sum(1)])

    def solve(self) -> dict:
        n = np.maximum(self.count, 1)
        mx, my = self.sums[0] / n, self.sums[1] / n
        vx = self.sums[2] / n - mx**2
        vy = self.sums[4] / n - my**2
        cov = self.sums[3] / n - mx * my
        flat = vx <= 1e-12 * np.maximum(1.0, mx**2)
        gain = np.where(flat, 1.0, cov / np.where(flat, 1.0, vx))
        offset = my - gain * mx
        r2 = np.where(flat | (vy <= 0), 0.0, cov**2 / np.where(flat | (vy <= 0), 1.0, vx * vy))
        return {"gain": [float(g) for g in gain], "offset": [float(o) for o in offset],
                "r2": [float(v) for v in r2], "pixels": int(self.count[0]),
                "model": "LR = gain * HR + offset per band, HR averaged over each LR pixel, fitted on the "
                         "training pairs; the HR patches hold gain * HR + offset"}


def calibrate_patches(raw: str, output: str, gain: np.ndarray, offset: np.ndarray, stats: BandStats) -> int:
    """Rewrite an HR patches-image as float32 gain * HR + offset, chunk by chunk; returns the count."""
    image = PatchesImage(raw, None, "HR")
    writer = PatchesImageWriter(output, len(image), image.bands, image.patch_size, np.dtype(np.float32))
    g, o = gain.astype(np.float32)[:, None, None], offset.astype(np.float32)[:, None, None]
    for start in range(0, len(image), REWRITE_CHUNK):
        patches = image.read(start, start + REWRITE_CHUNK).transpose(0, 3, 1, 2).astype(np.float32) * g + o
        writer.add(patches)
        stats.add(patches)
    descriptions = [image.ds.GetRasterBand(i).GetDescription() for i in range(1, image.bands + 1)]
    image.ds = None
    writer.close(descriptions, [None] * len(descriptions))
    os.remove(raw)
    return writer.written


# ---- extraction -------------------------------------------------------------------------------


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
        reporter.progress(100.0 * (i + 1) / len(pairing.rows.lr))


# ---- the operation ----------------------------------------------------------------------------


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
        degrade(hr, int(pairing.ratio), staged, lr_nodata, context.reporter.span(0, 40), context.cancelled)
        lr = RasterStack([staged], "OUTPUT_LR")
    try:
        result = _write_datasets(context, lr, hr, pairing, sets, radiometric, train_path, valid_path,
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


def _write_datasets(context: RunContext, lr: RasterStack, hr: RasterStack, pairing: Pairing, sets: np.ndarray,
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

