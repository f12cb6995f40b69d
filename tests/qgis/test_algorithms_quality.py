"""Assess image quality through processing.run on the North Carolina Landsat scene: a blurred copy scored
against the scene, with a bicubic baseline from a 2x coarser copy; outputs, extent and bad inputs."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsVectorLayer


def engine_result(**parameters) -> dict:
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    return run_job(protocol.Job("assess_image_quality", parameters, "qgis-test"), Reporter())


def write_like(path: Path, source: gdal.Dataset, array: np.ndarray, factor: int = 1) -> str:
    """``array`` (bands, rows, cols) as a Float32 GeoTIFF on ``source``'s grid, pixels ``factor`` times larger."""
    gt = source.GetGeoTransform()
    ds = gdal.GetDriverByName("GTiff").Create(str(path), array.shape[2], array.shape[1], array.shape[0],
                                              gdal.GDT_Float32)
    ds.SetGeoTransform((gt[0], gt[1] * factor, 0, gt[3], 0, gt[5] * factor))
    ds.SetProjection(source.GetProjection())
    for index, band in enumerate(array, start=1):
        ds.GetRasterBand(index).WriteArray(band.astype(np.float32))
        ds.GetRasterBand(index).SetNoDataValue(-99999)
    ds = None
    return str(path)


@pytest.fixture(scope="module")
def scene(nc, tmp_path_factory) -> dict[str, str]:
    """The Landsat scene (reference), a 3x3-mean blurred copy (produced image) and a 2x block mean (low
    resolution), nodata kept."""
    from scipy import ndimage

    folder = tmp_path_factory.mktemp("quality")
    reference_path = str(nc / "landsat_multiband.tif")
    source = gdal.Open(reference_path)
    image = source.ReadAsArray().astype(np.float64)
    nodata = (image == -99999).any(axis=0)
    blurred = np.stack([ndimage.uniform_filter(band, 3) for band in image])
    blurred[:, ndimage.binary_dilation(nodata, iterations=1)] = -99999
    crop = image[:, :442, :488]
    low = crop.reshape(5, 221, 2, 244, 2).mean(axis=(2, 4))
    low[:, nodata[:442, :488].reshape(221, 2, 244, 2).any(axis=(1, 3))] = -99999
    return {"reference": reference_path, "blurred": write_like(folder / "blurred.tif", source, blurred),
            "low": write_like(folder / "low.tif", source, low, factor=2),
            "two_bands": write_like(folder / "two.tif", source, blurred[:2])}


def test_quality_outputs_match_the_engine(run_alg, scene, tmp_path):
    result = run_alg("assessimagequality", INPUT=[scene["blurred"]], REFERENCE=[scene["reference"]],
                     LOW_RESOLUTION=[scene["low"]], OUTPUT_CSV=str(tmp_path / "q.csv"),
                     OUTPUT_HTML=str(tmp_path / "q.html"), OUTPUT_TABLE=str(tmp_path / "q.gpkg"))
    engine = engine_result(INPUT=[scene["blurred"]], REFERENCE=[scene["reference"]], LOW_RESOLUTION=[scene["low"]])
    for name in [f"{prefix}{score}" for prefix in ("", "BASELINE_", "LANCZOS_", "SHARPENED_")
                 for score in ("PSNR", "SSIM", "SAM", "ERGAS")] + ["SHARPEN_SIGMA", "SHARPEN_AMOUNT", "FIT_PIXELS"]:
        assert result[name] == pytest.approx(engine[name], rel=1e-9) and math.isfinite(result[name])
    assert result["COMPARISON"] == engine["COMPARISON"] and result["COMPARISON"].startswith("PSNR ")
    assert result["PIXELS"] == engine["PIXELS"] > 150_000
    assert 0 < result["SSIM"] < 1 and 0 < result["BASELINE_SSIM"] < 1
    with open(result["OUTPUT_CSV"], newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 24 and rows[5]["band"] == "all" and rows[11]["image"] == "bicubic baseline"
    assert rows[17]["image"] == "Lanczos baseline" and rows[23]["image"] == "sharpened bicubic baseline"
    assert float(rows[5]["ergas"]) == pytest.approx(engine["ERGAS"], rel=1e-12)
    page = open(result["OUTPUT_HTML"], encoding="utf-8").read()
    assert f"{engine['PSNR']:.4f}" in page and "bicubic" in page and "0.5000" in page  # ERGAS h/l
    table = QgsVectorLayer(result["OUTPUT_TABLE"], "scores", "ogr")
    assert table.isValid() and not table.isSpatial() and table.featureCount() == 24
    last = list(table.getFeatures())[-1]
    assert last["image"] == "sharpened bicubic baseline" and last["psnr"] == pytest.approx(engine["SHARPENED_PSNR"])


def test_extent_and_html_output(run_alg, provider, scene, tmp_path):
    from qgis.core import QgsApplication

    algorithm = QgsApplication.processingRegistry().algorithmById("patchflow:assessimagequality")
    assert algorithm.groupId() == "accuracy" and algorithm.outputDefinition("OUTPUT_HTML").type() == "outputHtml"
    gt = gdal.Open(scene["reference"]).GetGeoTransform()
    xmin, ymax = gt[0] + 100 * gt[1], gt[3] + 50 * gt[5]
    extent = f"{xmin},{xmin + 120 * gt[1]},{ymax + 80 * gt[5]},{ymax} [EPSG:3358]"
    result = run_alg("assessimagequality", INPUT=[scene["blurred"]], REFERENCE=[scene["reference"]], EXTENT=extent,
                     OUTPUT_CSV=str(tmp_path / "q.csv"), OUTPUT_HTML=str(tmp_path / "q.html"))
    engine = engine_result(INPUT=[scene["blurred"]], REFERENCE=[scene["reference"]],
                           EXTENT=f"{xmin},{xmin + 120 * gt[1]},{ymax + 80 * gt[5]},{ymax}")
    assert result["PIXELS"] == engine["PIXELS"] <= 120 * 80
    assert result["PSNR"] == pytest.approx(engine["PSNR"]) and result["BASELINE_PSNR"] is None
    # the sharpened bicubic fitted on FIT_EXTENT (another CRS's coordinates too), outside the compared extent
    fit = f"{gt[0] + 300 * gt[1]},{gt[0] + 420 * gt[1]},{ymax + 80 * gt[5]},{ymax}"
    result = run_alg("assessimagequality", INPUT=[scene["blurred"]], REFERENCE=[scene["reference"]], EXTENT=extent,
                     LOW_RESOLUTION=[scene["low"]], FIT_EXTENT=f"{fit} [EPSG:3358]",
                     OUTPUT_CSV=str(tmp_path / "f.csv"), OUTPUT_HTML=str(tmp_path / "f.html"))
    engine = engine_result(INPUT=[scene["blurred"]], REFERENCE=[scene["reference"]], LOW_RESOLUTION=[scene["low"]],
                           EXTENT=f"{xmin},{xmin + 120 * gt[1]},{ymax + 80 * gt[5]},{ymax}", FIT_EXTENT=fit)
    assert result["SHARPEN_AMOUNT"] == pytest.approx(engine["SHARPEN_AMOUNT"], rel=1e-9)
    assert result["FIT_PIXELS"] == engine["FIT_PIXELS"] <= 120 * 80
    assert "FIT_EXTENT" in open(result["OUTPUT_HTML"], encoding="utf-8").read()


def test_band_count_mismatch_is_refused(run_alg, scene, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException, match=r"Produced image.*\(INPUT\): 2 bands against the reference's 5"):
        run_alg("assessimagequality", INPUT=[scene["two_bands"]], REFERENCE=[scene["reference"]],
                OUTPUT_CSV=str(out / "q.csv"), OUTPUT_HTML=str(out / "q.html"))
    assert not out.exists() or not any(out.iterdir())
