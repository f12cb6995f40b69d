"""Assess image quality: a produced image (a super-resolved one, say) against a reference image on the
same grid, with PSNR, SSIM, SAM and ERGAS per band and overall; given the low-resolution input too, the
same scores of its bicubic upsampling, the baseline a super-resolution model has to beat.

Conventions (documented in the algorithm's help and the HTML report):

- Grid: the reference's. An INPUT on another grid of the same CRS is resampled to it with bilinear
  interpolation (GDAL warp); one whose pixels are the reference's (same size, whole-pixel offset) is placed
  on it without interpolation. The LOW_RESOLUTION input is upsampled to it with GDAL warp's cubic
  (Keys cubic convolution, a = -0.5): the bicubic baseline. A different CRS is refused.
- Valid pixels: finite and not nodata in any band of every image compared (reference, input, baseline),
  so every row of the table is scored on the same pixels.
- Data range R_b: DATA_RANGE for every band, else the reference band's max - min over the valid pixels.
- PSNR_b = 10 log10(R_b^2 / MSE_b); overall PSNR = 10 log10(1 / mean_b(MSE_b / R_b^2)): the PSNR of all bands
  together once each is divided by its range (with one DATA_RANGE: scikit-image's PSNR of the band stack).
  An MSE of 0 gives inf.
- SSIM_b: Wang et al. 2004 with scikit-image's defaults (7 x 7 uniform window, K1 0.01, K2 0.03, sample
  covariance), averaged over the pixels whose whole window lies on valid pixels. Without nodata that is
  scikit-image's crop of (7 - 1) // 2 = 3 pixels at the borders, so the numbers are scikit-image's
  ``structural_similarity`` of the whole image. Overall SSIM: the mean of the bands.
- SAM: the mean, over valid pixels whose two spectra are not zero, of the angle between the reference's and
  the image's band vectors, in degrees (2 bands or more).
- ERGAS = 100 (h/l) sqrt(mean_b(RMSE_b^2 / mu_b^2)), mu_b the reference band's mean and h/l the high- over
  the low-resolution pixel size: SCALE_FOR_ERGAS, else the reference's pixel size over LOW_RESOLUTION's,
  else 1.

Images are read in strips of whole rows (about STRIP_PIXELS pixels a band), each read with PAD rows more
above and below so that SSIM's window sees the same pixels as on the whole image; squared errors, means and
angles are summed strip by strip. Without DATA_RANGE the ranges are only known after a first pass, so SSIM
takes a second one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from osgeo import gdal, ogr

from ..errors import Cancelled, PatchFlowError
from ..geodata.raster import Grid, RasterStack, Window, crs_label
from ..geodata.raster import parse_extent as raster_extent
from ..params import Params, RunContext
from ..report.tables import check_table_format, write_csv, write_table
from ..reporting import Reporter

STRIP_PIXELS = 1 << 20  # pixels of one band read per strip (the tests make it small)
WIN_SIZE = 7  # SSIM window, scikit-image's default
PAD = (WIN_SIZE - 1) // 2
K1, K2 = 0.01, 0.03
FLOAT_TYPES = (gdal.GDT_Float32, gdal.GDT_Float64, gdal.GDT_CFloat32, gdal.GDT_CFloat64)
RESAMPLING_NAMES = {"near": "no", "bilinear": "bilinear", "cubic": "bicubic (cubic convolution)"}


# ---- images on the reference grid ----------------------------------------------------------------


class OnGrid:
    """One or more rasters stacked as bands, read on the reference grid as float64 with the mask of valid
    pixels (finite and not nodata in any band). ``warped`` holds GDAL warped VRTs when the rasters are on
    another grid (nodata and the area outside them come back as NaN)."""

    def __init__(self, stack: RasterStack, warped: list[gdal.Dataset] | None, note: str) -> None:
        self.stack, self.warped, self.note = stack, warped, note

    @property
    def band_count(self) -> int:
        return self.stack.band_count

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        if self.warped is None:
            raw = self.stack.read(window)
            values = raw.astype(np.float64)
            valid = ~self.stack.nodata_mask(raw)
        else:
            parts = [ds.ReadAsArray(*window) for ds in self.warped]
            values = np.concatenate([p[np.newaxis] if p.ndim == 2 else p for p in parts]).astype(np.float64)
            valid = np.ones(values.shape[1:], dtype=bool)
        valid &= np.isfinite(values).all(axis=0)
        return values, valid


def _pixel_shift(own: Grid, grid: Grid) -> tuple[float, float] | None:
    """How many reference pixels ``own``'s origin is from the reference's, when the pixel sizes are the same.
    (Grid.same_as compares origins with a relative tolerance, too loose for projected coordinates.)"""
    if not all(math.isclose(a, b, rel_tol=1e-6) for a, b in ((own.dx, grid.dx), (own.dy, grid.dy))):
        return None
    return (own.x0 - grid.x0) / grid.dx, (own.y0 - grid.y0) / grid.dy


def _aligned(own: Grid, grid: Grid) -> bool:
    """Same pixel size and an origin a whole number of pixels away: no interpolation needed."""
    shift = _pixel_shift(own, grid)
    return shift is not None and all(abs(s - round(s)) < 1e-6 for s in shift)


def _same_grid(own: Grid, grid: Grid) -> bool:
    shift = _pixel_shift(own, grid)
    return (shift is not None and all(abs(s) < 1e-6 for s in shift)
            and (own.width, own.height) == (grid.width, grid.height))


def _warp(ds: gdal.Dataset, grid: Grid, method: str) -> gdal.Dataset:
    xmin, ymin, xmax, ymax = grid.extent
    band = ds.GetRasterBand(1)
    # floating-point bands without a nodata value: NaN is nodata (left out of the interpolation, as a
    # declared nodata value is); infinity still spreads to the pixels it touches, which are then not valid
    source_nodata = float("nan") if band.GetNoDataValue() is None and band.DataType in FLOAT_TYPES else None
    options = gdal.WarpOptions(
        format="VRT", outputBounds=(xmin, ymin, xmax, ymax), width=grid.width, height=grid.height,
        dstSRS=grid.crs_wkt or None, resampleAlg=method, outputType=gdal.GDT_Float64, dstNodata=float("nan"),
        srcNodata=source_nodata)
    return gdal.Warp("", ds, options=options)


def window_extent(grid: Grid, window: Window) -> tuple[float, float, float, float]:
    c0, r0, w, h = window
    xs = (grid.x0 + c0 * grid.dx, grid.x0 + (c0 + w) * grid.dx)
    ys = (grid.y0 + r0 * grid.dy, grid.y0 + (r0 + h) * grid.dy)
    return min(xs), min(ys), max(xs), max(ys)


def _format_extent(extent: tuple[float, float, float, float]) -> str:
    xmin, ymin, xmax, ymax = extent
    return f"x {xmin:.2f} to {xmax:.2f}, y {ymin:.2f} to {ymax:.2f}"


def place_on_grid(paths: Sequence[str], parameter: str, grid: Grid, window: Window, resampling: str,
                  with_extent: bool) -> OnGrid:
    """The rasters of ``parameter`` on the reference grid: as they are, placed without interpolation, or
    warped with ``resampling``; errors name ``parameter`` (other CRS, no overlap with ``window``)."""
    stack = RasterStack(paths, parameter)
    own = stack.grid
    if not grid.same_crs_as(own):
        raise PatchFlowError(
            f"{os.path.basename(stack.paths[0])} is in {crs_label(own.crs_wkt)} but the reference is in "
            f"{crs_label(grid.crs_wkt)}. Reproject it onto the reference's CRS first (gdalwarp -t_srs).", parameter)
    ax0, ay0, ax1, ay1 = own.extent
    bx0, by0, bx1, by1 = window_extent(grid, window)
    tolerance = 1e-6 * abs(grid.dx)
    if min(ax1, bx1) - max(ax0, bx0) <= tolerance or min(ay1, by1) - max(ay0, by0) <= tolerance:
        where = "the reference within EXTENT" if with_extent else "the reference"
        raise PatchFlowError(
            f"{os.path.basename(stack.paths[0])} ({_format_extent(own.extent)}) does not overlap {where} "
            f"({_format_extent((bx0, by0, bx1, by1))}). Choose images of the same area.", parameter)
    if _same_grid(own, grid):
        return OnGrid(stack, None, f"{parameter} is on the reference grid")
    method = "near" if _aligned(own, grid) else resampling
    warped = [_warp(ds, grid, method) for ds in stack.datasets]
    size = f"{own.width}x{own.height} px of {abs(own.dx):g} x {abs(own.dy):g}"
    if method == "near":
        note = f"placed {parameter} ({size}) on the reference grid without interpolation (same pixels)"
    else:
        note = (f"resampled {parameter} ({size}) to the reference grid ({grid.width}x{grid.height} px of "
                f"{abs(grid.dx):g} x {abs(grid.dy):g}) with {RESAMPLING_NAMES[method]} interpolation (GDAL warp)")
    return OnGrid(stack, warped, note)


# ---- the compared window -------------------------------------------------------------------------


def parse_extent(text: str, grid: Grid) -> tuple[float, float, float, float]:
    return raster_extent(text, grid, "the reference's")


def compare_window(text: str, grid: Grid) -> Window:
    """The reference pixels to compare: EXTENT grown to whole pixels and clipped, else the whole grid."""
    if not text.strip():
        window = (0, 0, grid.width, grid.height)
    else:
        xmin, xmax, ymin, ymax = parse_extent(text, grid)
        cols, rows = grid.fractional_pixel(np.array([xmin, xmax]), np.array([ymax, ymin]))
        cols, rows = np.round(cols, 6), np.round(rows, 6)  # a millionth of a pixel is rounding
        c0, c1 = max(0, math.floor(cols.min())), min(grid.width, math.ceil(cols.max()))
        r0, r1 = max(0, math.floor(rows.min())), min(grid.height, math.ceil(rows.max()))
        if c1 <= c0 or r1 <= r0:
            raise PatchFlowError(
                f"the extent {xmin:g},{xmax:g},{ymin:g},{ymax:g} lies outside the reference "
                f"({_format_extent(grid.extent)}). Choose an extent that overlaps it.", "EXTENT")
        window = (c0, r0, c1 - c0, r1 - r0)
    if min(window[2], window[3]) < WIN_SIZE:
        raise PatchFlowError(
            f"the compared area is {window[2]}x{window[3]} px; SSIM needs at least {WIN_SIZE}x{WIN_SIZE}. "
            "Choose a larger extent.", "EXTENT" if text.strip() else "REFERENCE")
    return window


def strips(window: Window, rows_per_strip: int) -> Iterator[tuple[Window, int, int]]:
    """(window read, with up to PAD rows of overlap above and below; its first own row; its own rows)."""
    c0, r0, width, height = window
    for top in range(0, height, rows_per_strip):
        bottom = min(height, top + rows_per_strip)
        read_top, read_bottom = max(0, top - PAD), min(height, bottom + PAD)
        yield (c0, r0 + read_top, width, read_bottom - read_top), top - read_top, bottom - top


# ---- metrics -------------------------------------------------------------------------------------


def ssim_map(x: np.ndarray, y: np.ndarray, data_range: float) -> np.ndarray:
    """SSIM at every pixel of two 2-D float64 images: scikit-image's ``structural_similarity`` computation
    (uniform WIN_SIZE window, sample covariance), without the border crop."""
    from scipy.ndimage import uniform_filter

    count = WIN_SIZE * WIN_SIZE
    cov_norm = count / (count - 1)
    ux, uy = uniform_filter(x, WIN_SIZE), uniform_filter(y, WIN_SIZE)
    uxx, uyy, uxy = (uniform_filter(a * b, WIN_SIZE) for a, b in ((x, x), (y, y), (x, y)))
    vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))


def window_valid(valid: np.ndarray) -> np.ndarray:
    """Where the whole SSIM window around a pixel is valid (outside the array counts as not valid)."""
    from scipy.ndimage import minimum_filter

    return minimum_filter(valid.astype(np.uint8), size=WIN_SIZE, mode="constant", cval=0).astype(bool)


def spectral_angles(reference: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Angles in degrees between the (bands, n) spectra, for the pixels where neither is zero; computed as
    2 atan2(|u - v|, |u + v|) of the unit vectors, which stays accurate near 0 and 180 degrees."""
    norm_r, norm_i = np.linalg.norm(reference, axis=0), np.linalg.norm(image, axis=0)
    keep = (norm_r > 0) & (norm_i > 0)
    u, v = reference[:, keep] / norm_r[keep], image[:, keep] / norm_i[keep]
    return np.degrees(2 * np.arctan2(np.linalg.norm(u - v, axis=0), np.linalg.norm(u + v, axis=0)))


@dataclass
class Sums:
    """What one image's scores are made of, summed strip by strip."""

    bands: int
    squared_error: np.ndarray = field(init=False)
    ssim_sum: np.ndarray = field(init=False)
    ssim_pixels: int = 0
    angle_sum: float = 0.0
    angle_pixels: int = 0

    def __post_init__(self) -> None:
        self.squared_error = np.zeros(self.bands)
        self.ssim_sum = np.zeros(self.bands)


@dataclass
class ReferenceSums:
    bands: int
    pixels: int = 0
    total: np.ndarray = field(init=False)
    minimum: np.ndarray = field(init=False)
    maximum: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.total = np.zeros(self.bands)
        self.minimum = np.full(self.bands, np.inf)
        self.maximum = np.full(self.bands, -np.inf)

    def add(self, values: np.ndarray) -> None:
        """(bands, n) valid reference values."""
        self.pixels += values.shape[1]
        if values.shape[1]:
            self.total += values.sum(axis=1)
            self.minimum = np.minimum(self.minimum, values.min(axis=1))
            self.maximum = np.maximum(self.maximum, values.max(axis=1))


def scan(reference: OnGrid, images: list[OnGrid], window: Window, ranges: np.ndarray | None, first_pass: bool,
         reporter: Reporter, cancelled: Callable[[], bool]) -> tuple[ReferenceSums, list[Sums], int]:
    """One pass over the strips: errors, reference statistics and angles (``first_pass``), SSIM (when the
    ``ranges`` are known). Returns the sums and the number of strips."""
    bands = reference.band_count
    ref_sums, sums = ReferenceSums(bands), [Sums(bands) for _ in images]
    rows_per_strip = max(1, STRIP_PIXELS // window[2])
    planned = list(strips(window, rows_per_strip))
    for index, (read, first, own_rows) in enumerate(planned):
        if cancelled():
            raise Cancelled()
        ref_values, valid = reference.read(read)
        read_images = [image.read(read) for image in images]
        for _, image_valid in read_images:
            valid &= image_valid
        own = slice(first, first + own_rows)
        own_valid = valid[own]
        if first_pass:
            ref_own = ref_values[:, own][:, own_valid]
            ref_sums.add(ref_own)
            for (values, _), image_sums in zip(read_images, sums):
                _add_errors(image_sums, ref_own, values[:, own][:, own_valid])
        if ranges is not None:
            counted = window_valid(valid)[own]
            ref_filled = np.where(valid, ref_values, 0.0)
            for (values, _), image_sums in zip(read_images, sums):
                _add_ssim(image_sums, ref_filled, np.where(valid, values, 0.0), ranges, own, counted)
        reporter.progress(100.0 * (index + 1) / len(planned))
    return ref_sums, sums, len(planned)


def _add_errors(sums: Sums, reference: np.ndarray, image: np.ndarray) -> None:
    sums.squared_error += ((image - reference) ** 2).sum(axis=1)
    if sums.bands > 1:
        angles = spectral_angles(reference, image)
        sums.angle_sum += float(angles.sum())
        sums.angle_pixels += angles.size


def _add_ssim(sums: Sums, reference: np.ndarray, image: np.ndarray, ranges: np.ndarray, own: slice,
              counted: np.ndarray) -> None:
    for band in range(sums.bands):
        sums.ssim_sum[band] += ssim_map(reference[band], image[band], float(ranges[band]))[own][counted].sum()
    sums.ssim_pixels += int(counted.sum())


@dataclass
class Scores:
    """One image's scores: per band and overall (None where a score is undefined)."""

    label: str
    psnr: list[float]
    ssim: list[float | None]
    rmse: list[float]
    overall_psnr: float
    overall_ssim: float | None
    sam: float | None
    ergas: float | None
    overall_rmse: float


def psnr(mse: float, data_range: float) -> float:
    return math.inf if mse == 0 else 10 * math.log10(data_range ** 2 / mse)


def scores_of(label: str, sums: Sums, ref_sums: ReferenceSums, ranges: np.ndarray, scale: float) -> Scores:
    n = ref_sums.pixels
    mse = sums.squared_error / n
    normalised = float(np.mean(mse / ranges ** 2))
    overall_psnr = math.inf if normalised == 0 else -10 * math.log10(normalised)
    ssim = [float(v) / sums.ssim_pixels if sums.ssim_pixels else None for v in sums.ssim_sum]
    means = ref_sums.total / n
    ergas = None if np.any(means == 0) else float(100 * scale * math.sqrt(float(np.mean(mse / means ** 2))))
    return Scores(
        label=label, psnr=[psnr(float(m), float(r)) for m, r in zip(mse, ranges)], ssim=ssim,
        rmse=[math.sqrt(float(m)) for m in mse], overall_psnr=overall_psnr,
        overall_ssim=float(np.mean(np.array(ssim, dtype=np.float64))) if sums.ssim_pixels else None,
        sam=sums.angle_sum / sums.angle_pixels if sums.angle_pixels else None, ergas=ergas,
        overall_rmse=math.sqrt(float(mse.mean())))


# ---- outputs -------------------------------------------------------------------------------------

COLUMNS = {"image": ogr.OFTString, "band": ogr.OFTString, "name": ogr.OFTString, "pixels": ogr.OFTInteger64,
           "data_range": ogr.OFTReal, "rmse": ogr.OFTReal, "psnr": ogr.OFTReal, "ssim": ogr.OFTReal,
           "sam_degrees": ogr.OFTReal, "ergas": ogr.OFTReal}


def table_rows(all_scores: list[Scores], band_names: list[str], ranges: np.ndarray, pixels: int) -> list[dict]:
    """Per image: one row per band, then its overall row (band "all")."""
    rows = []
    for scores in all_scores:
        for band, name in enumerate(band_names):
            rows.append({"image": scores.label, "band": str(band + 1), "name": name, "pixels": pixels,
                         "data_range": float(ranges[band]), "rmse": scores.rmse[band], "psnr": scores.psnr[band],
                         "ssim": scores.ssim[band], "sam_degrees": None, "ergas": None})
        same_range = float(ranges[0]) if np.all(ranges == ranges[0]) else None
        rows.append({"image": scores.label, "band": "all", "name": "all bands", "pixels": pixels,
                     "data_range": same_range, "rmse": scores.overall_rmse, "psnr": scores.overall_psnr,
                     "ssim": scores.overall_ssim, "sam_degrees": scores.sam, "ergas": scores.ergas})
    return rows


READING = (
    "All images are compared on the reference's grid and on the same pixels: those that are valid (finite, "
    "not nodata in any band) in the reference, the image and the baseline. R is the data range: DATA_RANGE, "
    "else the reference band's maximum minus minimum over those pixels. PSNR = 10 log10(R² / MSE) per band; "
    "the overall PSNR is 10 log10(1 / mean over bands of MSE / R²), the PSNR of all bands together once each "
    "is divided by its range; a perfect match gives inf. SSIM is Wang et al.'s structural similarity with "
    "scikit-image's defaults (7 x 7 uniform window, K1 = 0.01, K2 = 0.03, sample covariance), averaged over "
    "the pixels whose whole window is valid (so 3 pixels are left out at the borders, as scikit-image does); "
    "overall, the mean of the bands. SAM is the mean angle, in degrees, between the reference's and the "
    "image's spectra (band vectors) at each pixel: 0 when they are proportional, 90 when orthogonal. "
    "ERGAS = 100 (h/l) sqrt(mean over bands of RMSE² / µ²), µ the reference band's mean and h/l the high- "
    "over the low-resolution pixel size; lower is better, 0 is a perfect match. The baseline is the "
    "low-resolution input upsampled to the reference grid with GDAL's cubic convolution (bicubic): a "
    "super-resolution model should beat it.")


def html_report(facts: dict, rows: list[dict]) -> str:
    from ..report import htmlreport

    overall = [{"image": r["image"], "PSNR (dB)": r["psnr"], "SSIM": r["ssim"], "SAM (°)": r["sam_degrees"],
                "ERGAS": r["ergas"], "RMSE": r["rmse"]} for r in rows if r["band"] == "all"]
    per_band = [{"image": r["image"], "band": f"{r['band']} {r['name']}", "data range": r["data_range"],
                 "RMSE": r["rmse"], "PSNR (dB)": r["psnr"], "SSIM": r["ssim"]} for r in rows if r["band"] != "all"]
    sections = [
        ("Summary", htmlreport.table([{"": key, "value": value} for key, value in facts.items()])),
        ("Scores", htmlreport.table(overall)),
        ("Per band", htmlreport.table(per_band)),
        ("Reading the numbers", htmlreport.paragraph(READING)),
    ]
    return htmlreport.page(f"Image quality: {facts['image']}", sections)


# ---- the operation -------------------------------------------------------------------------------


def ergas_scale(params: Params, grid: Grid, low_resolution: OnGrid | None, reporter: Reporter) -> float:
    scale = params.number("SCALE_FOR_ERGAS")
    if scale is not None:
        if scale <= 0:
            raise PatchFlowError(f"{scale:g} is not a pixel-size ratio; give h/l > 0 (0.25 for x4).",
                                 "SCALE_FOR_ERGAS")
        if scale > 1:
            reporter.warning(f"SCALE_FOR_ERGAS {scale:g} is above 1: ERGAS's ratio is the high- over the "
                             f"low-resolution pixel size (0.25 for x4); did you mean {1 / scale:g}?")
        return scale
    if low_resolution is None:
        return 1.0
    return abs(grid.dx) / abs(low_resolution.stack.grid.dx)


def _check_bands(reference: OnGrid, image: OnGrid, parameter: str) -> None:
    if image.band_count != reference.band_count:
        raise PatchFlowError(
            f"{image.band_count} bands against the reference's {reference.band_count}. Give the same bands, in "
            "the same order (stack rasters or choose the matching ones).", parameter)


def _data_ranges(ref_sums: ReferenceSums, names: list[str]) -> np.ndarray:
    """The reference bands' max - min over the compared pixels; a constant band needs DATA_RANGE."""
    ranges = ref_sums.maximum - ref_sums.minimum
    flat = [names[b] for b in np.flatnonzero(ranges == 0)]
    if flat:
        raise PatchFlowError(f"the reference is constant over the compared pixels in {', '.join(flat)}: PSNR and "
                             "SSIM need a data range. Give DATA_RANGE (e.g. the sensor's value range).", "DATA_RANGE")
    return ranges


def _given_range(params: Params) -> float | None:
    given = params.number("DATA_RANGE")
    if given is not None and given <= 0:
        raise PatchFlowError(f"{given:g} is not a data range; give a value above 0, or none for the "
                             "reference's max - min.", "DATA_RANGE")
    return given


def _stage_outputs(params: Params, context: RunContext) -> dict[str, tuple[str | None, str | None]]:
    """{parameter: (final path, staged path)}, both None when the output is not asked for."""
    table_final = params.string("OUTPUT_TABLE")
    check_table_format(table_final, "OUTPUT_TABLE")
    outputs = {}
    for name in ("OUTPUT_CSV", "OUTPUT_HTML", "OUTPUT_TABLE"):
        final = params.string(name, None)
        outputs[name] = (final, context.staging.stage(final, name) if final else None)
    return outputs


@dataclass
class Inputs:
    reference: OnGrid
    image: OnGrid
    baseline: OnGrid | None
    window: Window

    @property
    def compared(self) -> list[OnGrid]:
        return [self.image] + ([self.baseline] if self.baseline else [])


def open_inputs(params: Params) -> Inputs:
    """REFERENCE, and INPUT and LOW_RESOLUTION on its grid; the compared window (EXTENT)."""
    reference = OnGrid(RasterStack(params.paths("REFERENCE"), "REFERENCE"), None, "")
    grid = reference.stack.grid
    extent_text = params.string("EXTENT") or ""
    window = compare_window(extent_text, grid)
    image = place_on_grid(params.paths("INPUT"), "INPUT", grid, window, "bilinear", bool(extent_text.strip()))
    _check_bands(reference, image, "INPUT")
    low_paths = params.paths("LOW_RESOLUTION", required=False)
    baseline = None
    if low_paths:
        baseline = place_on_grid(low_paths, "LOW_RESOLUTION", grid, window, "cubic", bool(extent_text.strip()))
        _check_bands(reference, baseline, "LOW_RESOLUTION")
    return Inputs(reference, image, baseline, window)


def measure(inputs: Inputs, given_range: float | None,
            context: RunContext) -> tuple[ReferenceSums, list[Sums], np.ndarray, int]:
    """Both passes (one when DATA_RANGE is given): the sums, the data ranges and the number of strips."""
    reporter, reference, window = context.reporter, inputs.reference, inputs.window
    ranges = None if given_range is None else np.full(reference.band_count, given_range)
    ref_sums, sums, strip_count = scan(reference, inputs.compared, window, ranges, True,
                                       reporter.span(0, 50 if ranges is None else 95), context.cancelled)
    if ref_sums.pixels == 0:
        raise PatchFlowError(
            "no pixel is valid in the reference, INPUT" + (" and the baseline" if inputs.baseline else "") +
            " together (nodata or outside). Check the images cover the same area and their nodata.", "INPUT")
    if ranges is None:
        names = [f"band {i + 1} ({b.description})" for i, b in enumerate(reference.stack.bands)]
        ranges = _data_ranges(ref_sums, names)
        _, ssim_sums, _ = scan(reference, inputs.compared, window, ranges, False, reporter.span(50, 95),
                               context.cancelled)
        for image_sums, pass_two in zip(sums, ssim_sums):
            image_sums.ssim_sum, image_sums.ssim_pixels = pass_two.ssim_sum, pass_two.ssim_pixels
    return ref_sums, sums, ranges, strip_count


def run_assess_image_quality(params: Params, context: RunContext) -> dict:
    """PSNR, SSIM, SAM and ERGAS of INPUT against REFERENCE, and of a bicubic LOW_RESOLUTION baseline."""
    from .. import checks

    reporter = context.reporter
    checks.writable(params, "OUTPUT_CSV", "OUTPUT_HTML", "OUTPUT_TABLE")
    checks.rasters(params, "INPUT", "REFERENCE", "LOW_RESOLUTION", reporter=reporter)
    inputs = open_inputs(params)
    given_range = _given_range(params)
    scale = ergas_scale(params, inputs.reference.stack.grid, inputs.baseline, reporter)
    outputs = _stage_outputs(params, context)
    for image in inputs.compared:
        reporter.log(image.note + ".")
    ref_sums, sums, ranges, strip_count = measure(inputs, given_range, context)
    labels = ["input", "bicubic baseline"]
    all_scores = [scores_of(label, s, ref_sums, ranges, scale) for label, s in zip(labels, sums)]
    _warn_undefined(reporter, all_scores[0], sums[0], inputs.reference.band_count)
    window = inputs.window
    reporter.log(f"compared {ref_sums.pixels} pixels of {window[2]}x{window[3]} ({strip_count} strips); "
                 f"SSIM over {sums[0].ssim_pixels} pixels whose {WIN_SIZE}x{WIN_SIZE} window is valid.")
    for scores in all_scores:
        reporter.log(f"{scores.label}: PSNR {_text(scores.overall_psnr)} dB, SSIM {_text(scores.overall_ssim)}, "
                     f"SAM {_text(scores.sam)} degrees, ERGAS {_text(scores.ergas)}")
    rows = table_rows(all_scores, [b.description for b in inputs.reference.stack.bands], ranges, ref_sums.pixels)
    _write_outputs(outputs, rows, _facts(params, inputs, ref_sums.pixels, given_range, scale), context)
    reporter.progress(100)
    result = {"PIXELS": ref_sums.pixels, "DATA_RANGE": [float(r) for r in ranges], "SCALE_FOR_ERGAS": scale,
              "STRIPS": strip_count, "RESAMPLED": inputs.image.warped is not None,
              "NOTES": [image.note for image in inputs.compared], "BANDS": rows}
    result.update(_score_outputs("", all_scores[0]))
    result.update(_score_outputs("BASELINE_", all_scores[1] if inputs.baseline else None))
    result.update({name: final for name, (final, _) in outputs.items()})
    return result


def _score_outputs(prefix: str, scores: Scores | None) -> dict:
    values = (scores.overall_psnr, scores.overall_ssim, scores.sam, scores.ergas) if scores else (None,) * 4
    return {f"{prefix}{key}": value for key, value in zip(("PSNR", "SSIM", "SAM", "ERGAS"), values)}


def _text(value: float | None) -> str:
    return "n/a" if value is None else ("inf" if math.isinf(value) else f"{value:.4f}")


def _warn_undefined(reporter: Reporter, scores: Scores, sums: Sums, bands: int) -> None:
    if bands < 2:
        reporter.warning("SAM needs 2 bands or more: not computed.")
    elif sums.angle_pixels == 0:
        reporter.warning("SAM: every pixel has a zero spectrum in one image: not computed.")
    if scores.ergas is None:
        reporter.warning("ERGAS: a reference band's mean is 0, so ERGAS is undefined: not computed.")
    if scores.overall_ssim is None:
        reporter.warning(f"SSIM: no pixel has a whole {WIN_SIZE}x{WIN_SIZE} window of valid pixels: not computed.")


def _facts(params: Params, inputs: Inputs, pixels: int, given_range: float | None, scale: float) -> dict:
    image, baseline, window, grid = inputs.image, inputs.baseline, inputs.window, inputs.reference.stack.grid
    return {
        "image": ", ".join(os.path.basename(p) for p in image.stack.paths),
        "reference": ", ".join(os.path.basename(p) for p in inputs.reference.stack.paths),
        "low resolution (baseline)": ", ".join(os.path.basename(p) for p in baseline.stack.paths) if baseline
        else "none",
        "grid": f"{crs_label(grid.crs_wkt)}, {abs(grid.dx):g} x {abs(grid.dy):g} px",
        "compared window": f"{window[2]}x{window[3]} px at column {window[0]}, row {window[1]} "
                           f"({_format_extent(window_extent(grid, window))})",
        "image on the grid": image.note,
        **({"baseline on the grid": baseline.note} if baseline else {}),
        "valid pixels compared": pixels,
        "data range": f"{given_range:g} (DATA_RANGE)" if given_range is not None
        else "per band, the reference's max - min over the compared pixels",
        "ERGAS h/l": scale,
    }


def _write_outputs(outputs: dict, rows: list[dict], facts: dict, context: RunContext) -> None:
    _, csv_path = outputs["OUTPUT_CSV"]
    _, html_path = outputs["OUTPUT_HTML"]
    _, table_path = outputs["OUTPUT_TABLE"]
    if csv_path:
        write_csv(csv_path, rows, list(COLUMNS))  # floats in full precision; inf as "inf"
    if table_path:
        write_table(table_path, rows, COLUMNS, "OUTPUT_TABLE", keep_infinite=True)  # GeoJSON: left empty
    if html_path:
        from ..report import htmlreport

        htmlreport.write(html_path, html_report(facts, rows))
    if context.cancelled():
        raise Cancelled()
