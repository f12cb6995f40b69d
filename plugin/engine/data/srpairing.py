"""Pairing of LR and HR patches for super-resolution datasets: the LR/HR pixel-size ratio (measured,
checked against SCALE), the checks that the two grids overlap and nest, and where on each grid every
patch pair starts (a ``Pairing``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import PatchFlowError
from ..geodata.raster import Grid, crs_label

ALIGN_TOLERANCE = 0.05  # LR pixels: how far HR pixel edges may lie from LR pixel edges
SIZE_TOLERANCE = 1e-6  # how close p x ratio must be to a whole number of HR pixels
SCALE_TOLERANCE = 1e-4  # relative: SCALE against the ratio measured from pixel sizes


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
