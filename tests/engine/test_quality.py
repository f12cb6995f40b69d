"""Assess image quality: PSNR, SSIM, SAM, ERGAS against scikit-image and hand-computed values, the bicubic
baseline, grids, nodata, strips, bad inputs, and the real Spot-6 and Landsat scenes."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from osgeo import gdal
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from patchflow.plugin.engine.errors import Cancelled, PatchFlowError
from patchflow.plugin.engine.evaluate import qualityscores

ORIGIN = (500000.0, 5800000.0)


def smooth(bands: int, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Positive, spatially smooth bands (a few sines), different per band."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    out = np.empty((bands, rows, cols))
    for band in range(bands):
        fx, fy, phase = rng.uniform(0.05, 0.2), rng.uniform(0.05, 0.2), rng.uniform(0, 6)
        out[band] = 100 + 40 * band + 30 * np.sin(fx * x + phase) * np.cos(fy * y) + 10 * np.sin(0.3 * x * fy)
    return out


def noisy(image: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    return image + np.random.default_rng(seed).normal(0, sigma, image.shape)


def outputs(folder) -> dict:
    return {"OUTPUT_CSV": str(folder / "out" / "scores.csv"), "OUTPUT_HTML": str(folder / "out" / "report.html"),
            "OUTPUT_TABLE": str(folder / "out" / "scores.gpkg")}


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture
def pair(tmp_path, gd):
    """A 3-band 50 x 61 reference and a noisy version of it, float64."""
    reference = smooth(3, 50, 61)
    image = noisy(reference, 4.0)
    return (gd.write_raster(tmp_path / "ref.tif", reference, origin=ORIGIN), reference,
            gd.write_raster(tmp_path / "img.tif", image, origin=ORIGIN), image)


# ---- against scikit-image --------------------------------------------------------------------------


def test_psnr_and_ssim_match_scikit_image(run_op, pair, tmp_path):
    ref_path, reference, image_path, image = pair
    result, reporter = run_op("assess_image_quality", INPUT=image_path, REFERENCE=ref_path, DATA_RANGE=200,
                              **outputs(tmp_path))
    rows = [row for row in result["BANDS"] if row["band"] != "all"]
    for band, row in enumerate(rows):
        assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(reference[band], image[band], data_range=200),
                                            rel=1e-6)
        assert row["ssim"] == pytest.approx(structural_similarity(reference[band], image[band], data_range=200),
                                            rel=1e-4)
    # one data range for all bands: the overall PSNR is scikit-image's on the band stack
    assert result["PSNR"] == pytest.approx(peak_signal_noise_ratio(reference, image, data_range=200), rel=1e-6)
    expected_ssim = structural_similarity(reference, image, data_range=200, channel_axis=0)
    assert result["SSIM"] == pytest.approx(expected_ssim, rel=1e-4) and 0.5 < result["SSIM"] < 1
    assert result["PIXELS"] == 50 * 61 and result["STRIPS"] == 1 and not result["RESAMPLED"]
    assert result["BASELINE_PSNR"] is None and result["SCALE_FOR_ERGAS"] == 1.0
    table = read_csv(result["OUTPUT_CSV"])
    assert [r["band"] for r in table] == ["1", "2", "3", "all"]
    assert float(table[3]["psnr"]) == pytest.approx(result["PSNR"], rel=1e-12)
    page = open(result["OUTPUT_HTML"], encoding="utf-8").read()
    assert f"{result['PSNR']:.4f}" in page and "ERGAS" in page and "cubic" in page
    assert "INPUT is on the reference grid." in reporter.logs


def test_default_data_range_is_the_reference_bands_range(run_op, tmp_path, gd):
    reference = (smooth(2, 40, 40) * 10).astype(np.int16)
    image = (noisy(reference.astype(np.float64), 30.0)).astype(np.int16)
    result, _ = run_op("assess_image_quality", INPUT=gd.write_raster(tmp_path / "i.tif", image),
                       REFERENCE=gd.write_raster(tmp_path / "r.tif", reference))
    for band in range(2):
        data_range = float(reference[band].max() - reference[band].min())
        assert result["DATA_RANGE"][band] == data_range
        row = result["BANDS"][band]
        assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(reference[band], image[band],
                                                                    data_range=data_range), rel=1e-6)
        assert row["ssim"] == pytest.approx(structural_similarity(reference[band], image[band],
                                                                  data_range=data_range), rel=1e-4)
    mse = ((image.astype(np.float64) - reference) ** 2).mean(axis=(1, 2))
    ranges = np.array(result["DATA_RANGE"])
    assert result["PSNR"] == pytest.approx(-10 * math.log10(np.mean(mse / ranges ** 2)), rel=1e-9)


@pytest.mark.parametrize("strip_pixels", [1, 5 * 61, 13 * 61 + 7])
def test_ssim_in_strips_equals_the_whole_image(run_op, pair, monkeypatch, strip_pixels):
    ref_path, reference, image_path, image = pair
    whole, _ = run_op("assess_image_quality", INPUT=image_path, REFERENCE=ref_path)
    monkeypatch.setattr(qualityscores, "STRIP_PIXELS", strip_pixels)
    stripped, reporter = run_op("assess_image_quality", INPUT=image_path, REFERENCE=ref_path)
    assert whole["STRIPS"] == 1 and stripped["STRIPS"] == math.ceil(50 / max(1, strip_pixels // 61)) > 3
    assert any(f"({stripped['STRIPS']} strips)" in line for line in reporter.logs)
    for band, (a, b) in enumerate(zip(whole["BANDS"][:3], stripped["BANDS"][:3])):
        expected = structural_similarity(reference[band], image[band], data_range=whole["DATA_RANGE"][band])
        assert b["ssim"] == pytest.approx(expected, rel=1e-4)
        assert b["ssim"] == pytest.approx(a["ssim"], rel=1e-10)
        assert b["psnr"] == pytest.approx(a["psnr"], rel=1e-10)
    assert (stripped["SAM"], stripped["ERGAS"]) == pytest.approx((whole["SAM"], whole["ERGAS"]), rel=1e-10)


def test_extent_scores_the_sub_window(run_op, pair):
    ref_path, reference, image_path, image = pair
    # columns 10..39, rows 5..24 (an extent not on pixel edges grows to whole pixels)
    extent = f"{ORIGIN[0] + 10.2},{ORIGIN[0] + 39.6},{ORIGIN[1] - 24.5},{ORIGIN[1] - 5.0}"
    result, _ = run_op("assess_image_quality", INPUT=image_path, REFERENCE=ref_path, EXTENT=extent, DATA_RANGE=150)
    crop = (slice(None), slice(5, 25), slice(10, 40))
    assert result["PIXELS"] == 20 * 30
    assert result["PSNR"] == pytest.approx(peak_signal_noise_ratio(reference[crop], image[crop], data_range=150),
                                           rel=1e-6)
    assert result["SSIM"] == pytest.approx(
        structural_similarity(reference[crop], image[crop], data_range=150, channel_axis=0), rel=1e-4)


# ---- SAM and ERGAS ---------------------------------------------------------------------------------


def test_sam_of_a_scaled_image_is_zero_and_of_orthogonal_spectra_ninety(run_op, tmp_path, gd):
    reference = smooth(4, 20, 20)
    scaled, _ = run_op("assess_image_quality", INPUT=gd.write_raster(tmp_path / "s.tif", 3 * reference),
                       REFERENCE=gd.write_raster(tmp_path / "r.tif", reference))
    assert scaled["SAM"] == pytest.approx(0, abs=1e-9)
    assert scaled["PSNR"] < 10  # the values differ a lot; only their spectra's directions agree
    checker = (np.add.outer(np.arange(20), np.arange(20)) % 2).astype(bool)
    a = 1 + np.arange(400, dtype=np.float64).reshape(20, 20)
    ref = np.stack([np.where(checker, a, 0), np.where(checker, 0, a)])
    orthogonal = np.stack([np.where(checker, 0, 2 * a), np.where(checker, 2 * a, 0)])
    result, _ = run_op("assess_image_quality", INPUT=gd.write_raster(tmp_path / "o.tif", orthogonal),
                       REFERENCE=gd.write_raster(tmp_path / "ro.tif", ref))
    assert result["SAM"] == pytest.approx(90.0, abs=1e-9)
    diagonal = np.stack([np.where(checker, a, a), np.where(checker, a, a)])  # (1, 1) against (1, 0): 45 degrees
    result, _ = run_op("assess_image_quality", INPUT=gd.write_raster(tmp_path / "d.tif", diagonal),
                       REFERENCE=gd.write_raster(tmp_path / "rd.tif", ref))
    assert result["SAM"] == pytest.approx(45.0, abs=1e-9)


def test_ergas_identical_is_zero_and_a_hand_computed_case(run_op, tmp_path, gd):
    checker = (np.add.outer(np.arange(16), np.arange(16)) % 2).astype(np.float64)
    reference = np.stack([90 + 20 * checker, 180 + 40 * checker])  # band means 100 and 200
    ref_path = gd.write_raster(tmp_path / "r.tif", reference)
    same, reporter = run_op("assess_image_quality", INPUT=ref_path, REFERENCE=ref_path, **outputs(tmp_path))
    assert (same["ERGAS"], same["SAM"], same["SSIM"]) == (0.0, 0.0, 1.0)
    assert same["PSNR"] == math.inf and all(row["psnr"] == math.inf for row in same["BANDS"])
    assert "PSNR inf dB" in reporter.logs[-1]
    assert read_csv(same["OUTPUT_CSV"])[-1]["psnr"] == "inf"
    # errors of 10 and 20 on means of 100 and 200: sqrt(mean(0.1², 0.1²)) = 0.1; 100 * 0.25 * 0.1 = 2.5
    shifted = reference + np.array([10.0, 20.0])[:, None, None]
    result, _ = run_op("assess_image_quality", INPUT=gd.write_raster(tmp_path / "i.tif", shifted),
                       REFERENCE=ref_path, SCALE_FOR_ERGAS=0.25)
    assert result["ERGAS"] == pytest.approx(2.5, rel=1e-12)
    assert [row["rmse"] for row in result["BANDS"][:2]] == pytest.approx([10.0, 20.0], rel=1e-12)
    # PSNR per band with the default ranges 20 and 40: 10 log10(20² / 10²) and 10 log10(40² / 20²)
    assert [row["psnr"] for row in result["BANDS"][:2]] == pytest.approx([10 * math.log10(4)] * 2, rel=1e-12)


# ---- the bicubic baseline --------------------------------------------------------------------------


def bicubic_on_reference_grid(low_path: str, reference_path: str) -> np.ndarray:
    ref = gdal.Open(reference_path)
    gt = ref.GetGeoTransform()
    bounds = (gt[0], gt[3] + gt[5] * ref.RasterYSize, gt[0] + gt[1] * ref.RasterXSize, gt[3])
    warped = gdal.Warp("", low_path, format="MEM", outputBounds=bounds, width=ref.RasterXSize,
                       height=ref.RasterYSize, resampleAlg="cubic", outputType=gdal.GDT_Float64)
    return warped.ReadAsArray()


def test_bicubic_baseline_of_the_low_resolution_input(run_op, tmp_path, gd):
    reference = smooth(3, 64, 64, seed=4)
    low = reference.reshape(3, 16, 4, 16, 4).mean(axis=(2, 4))  # 4 m pixels, block means
    ref_path = gd.write_raster(tmp_path / "ref.tif", reference, origin=ORIGIN)
    low_path = gd.write_raster(tmp_path / "low.tif", low, origin=ORIGIN, pixel=4.0)
    image_path = gd.write_raster(tmp_path / "sr.tif", noisy(reference, 0.1), origin=ORIGIN)
    result, reporter = run_op("assess_image_quality", INPUT=image_path, REFERENCE=ref_path, LOW_RESOLUTION=low_path,
                              DATA_RANGE=200, **outputs(tmp_path))
    assert 25 < result["BASELINE_PSNR"] < result["PSNR"] and math.isfinite(result["BASELINE_PSNR"])
    assert result["BASELINE_SSIM"] < result["SSIM"] and result["BASELINE_ERGAS"] > result["ERGAS"]
    assert result["SCALE_FOR_ERGAS"] == 0.25
    assert any("resampled LOW_RESOLUTION" in line and "bicubic" in line for line in reporter.logs)
    expected = bicubic_on_reference_grid(low_path, ref_path)
    assert result["BASELINE_PSNR"] == pytest.approx(peak_signal_noise_ratio(reference, expected, data_range=200),
                                                    rel=1e-6)
    assert result["BASELINE_SSIM"] == pytest.approx(
        structural_similarity(reference, expected, data_range=200, channel_axis=0), rel=1e-4)
    table = read_csv(result["OUTPUT_CSV"])
    assert [r["image"] for r in table] == [image for image in ("input", "bicubic baseline", "Lanczos baseline",
                                                               "sharpened bicubic baseline") for _ in range(4)]
    assert "bicubic baseline" in open(result["OUTPUT_HTML"], encoding="utf-8").read()


# ---- grids and nodata ------------------------------------------------------------------------------


def test_input_on_another_grid(run_op, pair, tmp_path, gd):
    ref_path, reference, _, _ = pair
    # the same pixels, cropped: placed without interpolation, identical where it covers the reference
    cropped = gd.write_raster(tmp_path / "crop.tif", reference[:, 10:40, 5:50], origin=(ORIGIN[0] + 5, ORIGIN[1] - 10))
    result, reporter = run_op("assess_image_quality", INPUT=cropped, REFERENCE=ref_path)
    assert result["PIXELS"] == 30 * 45 and result["PSNR"] == math.inf and result["SSIM"] == pytest.approx(1.0)
    assert any("without interpolation" in line for line in reporter.logs) and result["RESAMPLED"]
    # half a pixel off: bilinear
    shifted = gd.write_raster(tmp_path / "shift.tif", reference, origin=(ORIGIN[0] + 0.5, ORIGIN[1]))
    result, reporter = run_op("assess_image_quality", INPUT=shifted, REFERENCE=ref_path)
    assert any("resampled INPUT" in line and "bilinear" in line for line in reporter.logs)
    # the first column's centre lies on the input's edge: bilinear still gives it a value
    assert 25 < result["PSNR"] < math.inf and result["PIXELS"] == 50 * 61


def test_nodata_pixels_are_left_out(run_op, pair, tmp_path, gd):
    ref_path, reference, _, image = pair
    image = image.copy()
    image[:, 20:30, 25:35] = -9999.0
    image_path = gd.write_raster(tmp_path / "nd.tif", image, origin=ORIGIN, nodata=-9999.0)
    result, _ = run_op("assess_image_quality", INPUT=image_path, REFERENCE=ref_path, DATA_RANGE=200)
    valid = image[0] != -9999.0
    assert result["PIXELS"] == valid.sum() == 50 * 61 - 100
    mse = ((image[:, valid] - reference[:, valid]) ** 2).mean()
    assert result["PSNR"] == pytest.approx(10 * math.log10(200 ** 2 / mse), rel=1e-9)
    # SSIM: scikit-image's map averaged where the whole 7 x 7 window is valid (and inside the image)
    counted = np.zeros(valid.shape, dtype=bool)
    for r in range(3, 47):
        for c in range(3, 58):
            counted[r, c] = valid[r - 3:r + 4, c - 3:c + 4].all()
    for band in range(3):
        _, full = structural_similarity(reference[band], np.where(valid, image[band], reference[band]),
                                        data_range=200, full=True)
        assert result["BANDS"][band]["ssim"] == pytest.approx(full[counted].mean(), rel=1e-4)


# ---- bad inputs ------------------------------------------------------------------------------------


def test_bad_inputs_name_the_parameter_and_write_nothing(run_op, pair, tmp_path, gd):
    ref_path, reference, image_path, _ = pair
    out = outputs(tmp_path / "bad")
    cases = [
        ({"INPUT": gd.write_raster(tmp_path / "two.tif", reference[:2], origin=ORIGIN)}, "INPUT", "2 bands"),
        ({"INPUT": gd.write_raster(tmp_path / "crs.tif", reference, origin=ORIGIN, epsg=32632)}, "INPUT",
         "Reproject"),
        ({"INPUT": gd.write_raster(tmp_path / "far.tif", reference, origin=(ORIGIN[0] + 1000, ORIGIN[1]))},
         "INPUT", "does not overlap"),
        ({"INPUT": image_path, "LOW_RESOLUTION": gd.write_raster(tmp_path / "low1.tif", reference[:1], pixel=2.0,
                                                                 origin=ORIGIN)}, "LOW_RESOLUTION", "1 bands"),
        ({"INPUT": image_path, "EXTENT": f"{ORIGIN[0] + 500},{ORIGIN[0] + 600},{ORIGIN[1]},{ORIGIN[1] + 50}"},
         "EXTENT", "outside"),
        ({"INPUT": image_path, "DATA_RANGE": 0}, "DATA_RANGE", "above 0"),
        ({"INPUT": image_path, "OUTPUT_TABLE": str(tmp_path / "bad" / "t.xlsx")}, "OUTPUT_TABLE", "unsupported"),
    ]
    for parameters, parameter, message in cases:
        with pytest.raises(PatchFlowError, match=message) as caught:
            run_op("assess_image_quality", REFERENCE=ref_path, **{**out, **parameters})
        assert caught.value.parameter == parameter
        assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_constant_reference_needs_a_data_range(run_op, tmp_path, gd):
    flat = np.full((2, 12, 12), 5.0)
    path = gd.write_raster(tmp_path / "flat.tif", flat)
    with pytest.raises(PatchFlowError, match="constant") as caught:
        run_op("assess_image_quality", INPUT=gd.write_raster(tmp_path / "i.tif", flat + 1), REFERENCE=path)
    assert caught.value.parameter == "DATA_RANGE"
    result, _ = run_op("assess_image_quality", INPUT=gd.write_raster(tmp_path / "i2.tif", flat + 1), REFERENCE=path,
                       DATA_RANGE=10)
    assert result["PSNR"] == pytest.approx(20.0)


def test_cancel_writes_nothing(run_cancelled, pair, tmp_path, monkeypatch):
    ref_path, _, image_path, _ = pair
    monkeypatch.setattr(qualityscores, "STRIP_PIXELS", 61 * 5)
    error = run_cancelled("assess_image_quality", after=2, INPUT=image_path, REFERENCE=ref_path,
                          **outputs(tmp_path))
    assert isinstance(error, Cancelled)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ---- real data -------------------------------------------------------------------------------------


def test_spot6_against_itself_and_a_blurred_copy(run_op, spot6, tmp_path, gd):
    scene = str(spot6 / "fake_spot6.jp2")
    same, _ = run_op("assess_image_quality", INPUT=scene, REFERENCE=scene, **outputs(tmp_path / "self"))
    assert same["PSNR"] == math.inf and same["SSIM"] == 1.0 and same["SAM"] == 0.0 and same["ERGAS"] == 0.0
    assert same["PIXELS"] == 1024 * 1024
    assert all(row["psnr"] == "inf" for row in read_csv(same["OUTPUT_CSV"]))
    assert ">inf<" in open(same["OUTPUT_HTML"], encoding="utf-8").read()
    table = gdal.OpenEx(same["OUTPUT_TABLE"])
    assert [f.GetField("psnr") for f in table.GetLayer(0)] == [math.inf] * 5
    table = None

    ds = gdal.Open(scene)
    reference = ds.ReadAsArray()
    blurred = np.stack([ndimage.gaussian_filter(band.astype(np.float64), 1.0) for band in reference])
    blurred = np.round(blurred).astype(np.int16)
    gt = ds.GetGeoTransform()
    blurred_path = gd.write_raster(tmp_path / "blurred.tif", blurred, origin=(gt[0], gt[3]), pixel=gt[1])
    result, _ = run_op("assess_image_quality", INPUT=blurred_path, REFERENCE=scene)
    assert 20 < result["PSNR"] < math.inf and 0.5 < result["SSIM"] < 1 and 0 < result["SAM"] and result["ERGAS"] > 0
    for band in (0, 3):
        data_range = float(reference[band].max() - reference[band].min())
        row = result["BANDS"][band]
        assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(reference[band], blurred[band],
                                                                    data_range=data_range), rel=1e-6)
        assert row["ssim"] == pytest.approx(structural_similarity(reference[band], blurred[band],
                                                                  data_range=data_range), rel=1e-4)


def test_landsat_with_a_bicubic_baseline(run_op, nc, tmp_path):
    """The NC Landsat scene as the reference and as the 'produced' image, a 2x block mean of it as the
    low-resolution input: the bicubic baseline is scored, imperfect, with ERGAS's ratio 0.5."""
    source = gdal.Open(str(nc / "landsat_multiband.tif"))
    reference = source.ReadAsArray().astype(np.float64)[:, :442, :488]
    gt = source.GetGeoTransform()
    nodata = (reference == -99999).any(axis=0)
    low = reference.reshape(5, 221, 2, 244, 2).mean(axis=(2, 4))
    low[:, nodata.reshape(221, 2, 244, 2).any(axis=(1, 3))] = -99999
    low_path = str(tmp_path / "low.tif")
    ds = gdal.GetDriverByName("GTiff").Create(low_path, 244, 221, 5, gdal.GDT_Float32)
    ds.SetGeoTransform((gt[0], 2 * gt[1], 0, gt[3], 0, 2 * gt[5]))
    ds.SetProjection(source.GetProjection())
    ds.WriteArray(low.astype(np.float32))
    for band in range(5):
        ds.GetRasterBand(band + 1).SetNoDataValue(-99999)
    ds = None
    result, reporter = run_op("assess_image_quality", INPUT=str(nc / "landsat_multiband.tif"),
                              REFERENCE=str(nc / "landsat_multiband.tif"), LOW_RESOLUTION=low_path)
    assert result["PSNR"] == math.inf and result["SCALE_FOR_ERGAS"] == pytest.approx(0.5)
    assert 15 < result["BASELINE_PSNR"] < 60 and 0 < result["BASELINE_SSIM"] < 1
    assert result["BASELINE_SAM"] > 0 and result["BASELINE_ERGAS"] > 0
    # the low-resolution input covers 488 x 442 of the 489 x 443 pixels, less its nodata: only those are compared
    assert 0.9 * (~nodata).sum() < result["PIXELS"] <= (~nodata).sum()
    assert any("resampled LOW_RESOLUTION" in line and "bicubic" in line for line in reporter.logs)
