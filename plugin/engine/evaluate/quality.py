"""Assess image quality: a produced image (a super-resolved one, say) against a reference image on the
same grid, with PSNR, SSIM, SAM and ERGAS per band and overall; given the low-resolution input too, the
same scores of its bicubic and Lanczos upsamplings and of a sharpened bicubic (an unsharp mask fitted on a
training part), the baselines a super-resolution model has to beat. The images on the reference grid
(referencegrid), the scores (qualityscores), the other baselines (qualitybaselines) and the outputs
(qualityreport) have their modules; this one runs the operation.
"""

# Conventions (documented in the algorithm's help and the HTML report):
#
# - Grid: the reference's. An INPUT on another grid of the same CRS is resampled to it with bilinear
#   interpolation (GDAL warp); one whose pixels are the reference's (same size, whole-pixel offset) is placed
#   on it without interpolation. The LOW_RESOLUTION input is upsampled to it with GDAL warp's cubic
#   (Keys cubic convolution, a = -0.5): the bicubic baseline; and with GDAL warp's lanczos (3 lobes): the Lanczos
#   baseline. The sharpened bicubic is an unsharp mask on the bicubic image, fitted on FIT_EXTENT less the
#   compared pixels, by default on the reference outside EXTENT, else (nothing to fit on) on the compared pixels,
#   which the report says (qualitybaselines). A different CRS is refused.
# - Valid pixels: finite and not nodata in any band of every image compared (reference, input, baseline),
#   so every row of the table is scored on the same pixels (the baselines' too).
# - Data range R_b: DATA_RANGE for every band, else the reference band's max - min over the valid pixels.
# - PSNR_b = 10 log10(R_b^2 / MSE_b); overall PSNR = 10 log10(1 / mean_b(MSE_b / R_b^2)): the PSNR of all bands
#   together once each is divided by its range (with one DATA_RANGE: scikit-image's PSNR of the band stack).
#   An MSE of 0 gives inf.
# - SSIM_b: Wang et al. 2004 with scikit-image's defaults (7 x 7 uniform window, K1 0.01, K2 0.03, sample
#   covariance), averaged over the pixels whose whole window lies on valid pixels. Without nodata that is
#   scikit-image's crop of (7 - 1) // 2 = 3 pixels at the borders, so the numbers are scikit-image's
#   ``structural_similarity`` of the whole image. Overall SSIM: the mean of the bands.
# - SAM: the mean, over valid pixels whose two spectra are not zero, of the angle between the reference's and
#   the image's band vectors, in degrees (2 bands or more).
# - ERGAS = 100 (h/l) sqrt(mean_b(RMSE_b^2 / mu_b^2)), mu_b the reference band's mean and h/l the high- over
#   the low-resolution pixel size: SCALE_FOR_ERGAS, else the reference's pixel size over LOW_RESOLUTION's,
#   else 1.
#
# Images are read in strips of whole rows (about STRIP_PIXELS pixels a band), each read with PAD rows more
# above and below so that SSIM's window sees the same pixels as on the whole image; squared errors, means and
# angles are summed strip by strip. Without DATA_RANGE the ranges are only known after a first pass, so SSIM
# takes a second one.

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..errors import PatchFlowError
from ..geodata.raster import Grid, RasterStack, Window, crs_label
from ..params import Params, RunContext
from ..report.tables import check_table_format
from ..reporting import Reporter
from .qualitybaselines import Fit, Sharpened, comparison, fit_part, fit_sharpening, sharpened_note
from .qualityreport import table_rows, write_outputs
from .qualityscores import WIN_SIZE, ReferenceSums, Scores, Sums, scan, scores_of
from .referencegrid import OnGrid, compare_window, format_extent, place_on_grid, window_extent


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
    lanczos: OnGrid | None = None
    sharpened: Sharpened | None = None
    fit: Fit | None = None

    @property
    def compared(self) -> list[OnGrid]:
        return [self.image] + [b for b in (self.baseline, self.lanczos, self.sharpened) if b is not None]

    @property
    def labels(self) -> list[str]:
        return ["input"] + [label for b, label in ((self.baseline, "bicubic baseline"),
                                                    (self.lanczos, "Lanczos baseline"),
                                                    (self.sharpened, "sharpened bicubic baseline")) if b is not None]


def open_inputs(params: Params) -> Inputs:
    """REFERENCE, and INPUT and LOW_RESOLUTION on its grid; the compared window (EXTENT)."""
    reference = OnGrid(RasterStack(params.paths("REFERENCE"), "REFERENCE"), None, "")
    grid = reference.stack.grid
    extent_text = params.string("EXTENT") or ""
    window = compare_window(extent_text, grid)
    image = place_on_grid(params.paths("INPUT"), "INPUT", grid, window, "bilinear", bool(extent_text.strip()))
    _check_bands(reference, image, "INPUT")
    low_paths = params.paths("LOW_RESOLUTION", required=False)
    baseline = lanczos = None
    if low_paths:
        baseline = place_on_grid(low_paths, "LOW_RESOLUTION", grid, window, "cubic", bool(extent_text.strip()))
        _check_bands(reference, baseline, "LOW_RESOLUTION")
        lanczos = place_on_grid(low_paths, "LOW_RESOLUTION", grid, window, "lanczos", bool(extent_text.strip()))
    return Inputs(reference, image, baseline, window, lanczos)


def add_sharpened(params: Params, inputs: Inputs, given_range: float | None, context: RunContext) -> None:
    """The sharpened bicubic baseline, its unsharp mask fitted on the training part (FIT_EXTENT)."""
    if inputs.baseline is None:
        if (params.string("FIT_EXTENT") or "").strip():
            context.reporter.warning("FIT_EXTENT is only used with LOW_RESOLUTION (the sharpened bicubic): ignored.")
        return
    grid = inputs.reference.stack.grid
    part = fit_part(params.string("FIT_EXTENT") or "", bool((params.string("EXTENT") or "").strip()),
                    inputs.window, grid, context.reporter)
    context.reporter.stage("fitting the sharpened bicubic baseline", 5, 10)
    fit = fit_sharpening(inputs.reference, inputs.baseline, grid, part, given_range, context.reporter,
                         context.cancelled)
    if fit.evaluated and part.evaluated:  # (a fit part without valid pixels warned already)
        context.reporter.warning("the sharpened bicubic was fitted on the evaluated pixels (no separate training "
                                 "part): give EXTENT (and FIT_EXTENT) to fit it elsewhere.")
    inputs.sharpened = Sharpened(inputs.baseline, grid, fit.sigma, fit.amount, sharpened_note(fit))
    inputs.fit = fit


def measure(inputs: Inputs, given_range: float | None,
            context: RunContext) -> tuple[ReferenceSums, list[Sums], np.ndarray, int]:
    """Both passes (one when DATA_RANGE is given): the sums, the data ranges and the number of strips."""
    reporter, reference, window = context.reporter.span(10, 100), inputs.reference, inputs.window
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
    reporter.stage("placing the images on the reference's grid", 0, 5)
    inputs = open_inputs(params)
    given_range = _given_range(params)
    scale = ergas_scale(params, inputs.reference.stack.grid, inputs.baseline, reporter)
    outputs = _stage_outputs(params, context)
    add_sharpened(params, inputs, given_range, context)
    for image in inputs.compared:
        reporter.log(image.note + ".")
    ref_sums, sums, ranges, strip_count = measure(inputs, given_range, context)
    all_scores = [scores_of(label, s, ref_sums, ranges, scale) for label, s in zip(inputs.labels, sums)]
    against = comparison(all_scores[0], all_scores[1:])
    if against:
        reporter.log(f"against the baselines: {against}")
    _warn_undefined(reporter, all_scores[0], sums[0], inputs.reference.band_count)
    window = inputs.window
    reporter.log(f"compared {ref_sums.pixels} pixels of {window[2]}x{window[3]} ({strip_count} strips); "
                 f"SSIM over {sums[0].ssim_pixels} pixels whose {WIN_SIZE}x{WIN_SIZE} window is valid.")
    for scores in all_scores:
        reporter.log(f"{scores.label}: PSNR {_text(scores.overall_psnr)} dB, SSIM {_text(scores.overall_ssim)}, "
                     f"SAM {_text(scores.sam)} degrees, ERGAS {_text(scores.ergas)}")
    rows = table_rows(all_scores, [b.description for b in inputs.reference.stack.bands], ranges, ref_sums.pixels)
    reporter.stage("writing the tables and the report", 96, 99)
    write_outputs(outputs, rows, _facts(params, inputs, ref_sums.pixels, given_range, scale), context, against)
    reporter.progress(100)
    result = {"PIXELS": ref_sums.pixels, "DATA_RANGE": [float(r) for r in ranges], "SCALE_FOR_ERGAS": scale,
              "STRIPS": strip_count, "RESAMPLED": inputs.image.warped is not None,
              "NOTES": [image.note for image in inputs.compared], "BANDS": rows}
    result.update(_score_outputs("", all_scores[0]))
    by_label = dict(zip(inputs.labels, all_scores))
    for prefix, label in (("BASELINE_", "bicubic baseline"), ("LANCZOS_", "Lanczos baseline"),
                          ("SHARPENED_", "sharpened bicubic baseline")):
        result.update(_score_outputs(prefix, by_label.get(label)))
    fit = inputs.fit
    result.update({"SHARPEN_SIGMA": fit.sigma if fit else None, "SHARPEN_AMOUNT": fit.amount if fit else None,
                   "FIT_PIXELS": fit.pixels if fit else None, "FIT_ON_EVALUATED": fit.evaluated if fit else None,
                   "COMPARISON": against})
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
                           f"({format_extent(window_extent(grid, window))})",
        "image on the grid": image.note,
        **({"baseline on the grid": baseline.note} if baseline else {}),
        **({"Lanczos baseline": inputs.lanczos.note} if inputs.lanczos else {}),
        **({"sharpened bicubic baseline": inputs.sharpened.note} if inputs.sharpened else {}),
        "valid pixels compared": pixels,
        "data range": f"{given_range:g} (DATA_RANGE)" if given_range is not None
        else "per band, the reference's max - min over the compared pixels",
        "ERGAS h/l": scale,
    }
