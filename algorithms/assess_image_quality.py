"""Image quality of a produced image (a super-resolved one, say) against a reference: PSNR, SSIM, SAM and
ERGAS, with bicubic and Lanczos upsamplings of the low-resolution input and a sharpened bicubic as the
baselines."""

from __future__ import annotations

from .base import PatchFlowAlgorithm


class AssessImageQuality(PatchFlowAlgorithm):
    NAME = "assessimagequality"
    DISPLAY_NAME = "Assess image quality"
    GROUP_ID = "accuracy"
    OPERATION = "assess_image_quality"
    SHORT = "An image against a reference: PSNR, SSIM, SAM, ERGAS, with bicubic baselines."
    TAGS = ("image quality", "psnr", "ssim", "sam", "ergas", "super-resolution", "assessment")
    HELP = (
        "Scores a produced image (a super-resolved one, say) against a reference image of the same area and "
        "bands: PSNR, SSIM, SAM (spectral angle) and ERGAS, per band and overall. Given the low-resolution "
        "input too, the same scores of three baselines to beat: its bicubic (cubic convolution) and Lanczos "
        "upsamplings, and a sharpened bicubic, an unsharp mask on the bicubic image whose Gaussian sigma and "
        "amount are fitted on a training part (the <i>fit extent</i>, by default the reference outside the "
        "compared extent; with neither, the compared pixels themselves, which the report then says) and applied "
        "unchanged on the compared pixels. A sentence says how the image compares to the best baseline for each "
        "score.<br><br>"
        "<b>Grid</b>: the reference's. An image on another grid (same CRS) is resampled to it with bilinear "
        "interpolation (placed without interpolation when its pixels are the reference's); the "
        "low-resolution input is upsampled with GDAL's cubic convolution (bicubic). The log and the report "
        "say what was done. Images in another CRS are refused: reproject them first. Each input may be "
        "several rasters stacked as bands; all must have the reference's band count.<br>"
        "<b>Pixels</b>: those valid (not nodata in any band, finite) in every image compared; the extent "
        "limits them to part of the reference.<br><br>"
        "<b>Formulas</b> (R the data range, µ the reference band's mean):<ul>"
        "<li>PSNR = 10 log10(R² / MSE) per band; overall, 10 log10(1 / mean over bands of MSE / R²); "
        "inf for a perfect match. R is the <i>data range</i>, else the reference band's max − min.</li>"
        "<li>SSIM: scikit-image's structural_similarity defaults (7×7 uniform window, K1 0.01, K2 0.03, "
        "sample covariance), leaving out 3 pixels at the borders as it does; overall, the mean of the "
        "bands.</li>"
        "<li>SAM: the mean angle between the reference's and the image's spectra at each pixel, in degrees "
        "(2 bands or more).</li>"
        "<li>ERGAS = 100 (h/l) √(mean over bands of RMSE² / µ²), h/l the high- over the low-resolution pixel "
        "size: the <i>ERGAS ratio</i>, else the reference's pixel size over the low-resolution input's, "
        "else 1.</li></ul>"
        "Outputs: a CSV (a row per image and band, then an 'all' row per image), an HTML report (shown in "
        "the Results Viewer) and optionally the same table as a layer without geometry."
    )
