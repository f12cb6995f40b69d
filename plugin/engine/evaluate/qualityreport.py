"""The image-quality outputs: the table rows (one per band and an overall row per image), the CSV and table
files and the HTML report with its guide to reading the numbers.
"""

from __future__ import annotations

import numpy as np
from osgeo import ogr

from ..errors import Cancelled
from ..params import RunContext
from ..report.tables import write_csv, write_table
from .qualityscores import Scores

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
    "over the low-resolution pixel size; lower is better, 0 is a perfect match. The baselines are the "
    "low-resolution input upsampled to the reference grid with GDAL's cubic convolution (bicubic, Keys a = -0.5) "
    "and with GDAL's Lanczos (windowed sinc, 3 lobes), and a sharpened bicubic: an unsharp mask on the bicubic "
    "image, B + amount (B - Gaussian(B)), whose sigma and amount are fitted (least squares) on a training part "
    "of the reference, FIT_EXTENT or by default the reference outside the compared extent, and applied "
    "unchanged on the compared pixels; the summary says where it was fitted. A super-resolution model should "
    "beat all three: a gain over bicubic alone is mostly what sharpening gives.")


def html_report(facts: dict, rows: list[dict], against: str = "") -> str:
    from ..report import htmlreport

    overall = [{"image": r["image"], "PSNR (dB)": r["psnr"], "SSIM": r["ssim"], "SAM (°)": r["sam_degrees"],
                "ERGAS": r["ergas"], "RMSE": r["rmse"]} for r in rows if r["band"] == "all"]
    per_band = [{"image": r["image"], "band": f"{r['band']} {r['name']}", "data range": r["data_range"],
                 "RMSE": r["rmse"], "PSNR (dB)": r["psnr"], "SSIM": r["ssim"]} for r in rows if r["band"] != "all"]
    sections = [
        ("Summary", htmlreport.table([{"": key, "value": value} for key, value in facts.items()])),
        ("Scores", htmlreport.table(overall)),
        *([("Against the baselines", htmlreport.paragraph(f"The produced image: {against}"))] if against else []),
        ("Per band", htmlreport.table(per_band)),
        ("Reading the numbers", htmlreport.paragraph(READING)),
    ]
    return htmlreport.page(f"Image quality: {facts['image']}", sections)


def write_outputs(outputs: dict, rows: list[dict], facts: dict, context: RunContext, against: str = "") -> None:
    _, csv_path = outputs["OUTPUT_CSV"]
    _, html_path = outputs["OUTPUT_HTML"]
    _, table_path = outputs["OUTPUT_TABLE"]
    if csv_path:
        write_csv(csv_path, rows, list(COLUMNS))  # floats in full precision; inf as "inf"
    if table_path:
        write_table(table_path, rows, COLUMNS, "OUTPUT_TABLE", keep_infinite=True)  # GeoJSON: left empty
    if html_path:
        from ..report import htmlreport

        htmlreport.write(html_path, html_report(facts, rows, against))
    if context.cancelled():
        raise Cancelled()
