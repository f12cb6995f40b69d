"""Super-resolution datasets: Wald-protocol degradation, LR/HR patch pairs covering the same ground
(integer and non-integer ratios), the spatial split, radiometric matching, manifests, bad inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from osgeo import gdal

from patchflow.plugin.engine.data.datasets import PatchDataset, Target
from patchflow.plugin.engine.data.patches import PatchesImage
from patchflow.plugin.engine.data.srdegrade import degradation_kernel, gaussian_sigma
from patchflow.plugin.engine.data.srradiometry import area_matrix
from patchflow.plugin.engine.errors import Cancelled, PatchFlowError
from patchflow.plugin.engine.models.modelcard import Normalization

ORIGIN = (500000.0, 5800000.0)


def error_of(call) -> PatchFlowError:
    with pytest.raises(PatchFlowError) as caught:
        call()
    return caught.value


def patches_of(path) -> np.ndarray:
    """(n, bands, p, p) patches of a patches-image."""
    return PatchesImage(str(path)).read().transpose(0, 3, 1, 2)


def block_mean(array: np.ndarray, r: int) -> np.ndarray:
    """(..., H, W) -> (..., H / r, W / r) means of r x r blocks."""
    *lead, h, w = array.shape
    return array.astype(np.float64).reshape(*lead, h // r, r, w // r, r).mean(axis=(-3, -1))


def pair_patches(manifest) -> tuple[np.ndarray, np.ndarray]:
    stem = str(manifest)[:-len(".json")]
    return patches_of(f"{stem}_lr.tif"), patches_of(f"{stem}_hr.tif")


@pytest.fixture
def build(run_op, tmp_path):
    """build(**parameters) -> (outputs, reporter); manifests in tmp_path/out unless given."""
    def run(**parameters):
        parameters.setdefault("OUTPUT_TRAIN", str(tmp_path / "out" / "train.json"))
        parameters.setdefault("OUTPUT_VALID", str(tmp_path / "out" / "valid.json"))
        return run_op("build_sr_dataset", **parameters)

    return run


# ---- degradation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_the_gaussian_passes_a_quarter_at_the_lr_nyquist_frequency(scale):
    sigma = gaussian_sigma(scale)
    assert math.exp(-2 * math.pi**2 * sigma**2 / (2 * scale) ** 2) == pytest.approx(0.25)
    weights, first = degradation_kernel(scale, sigma)
    taps = np.arange(first, first + len(weights)) - (scale - 1) / 2  # distance to the LR pixel centre
    assert np.allclose(taps, -taps[::-1]) and np.allclose(weights, weights[::-1])
    assert weights.sum() == pytest.approx(1.0)
    response = abs(np.sum(weights * np.exp(-2j * np.pi * taps / (2 * scale))))
    assert response == pytest.approx(0.25, abs=0.005)


def test_a_constant_hr_degrades_to_the_same_constant_on_a_grid_four_times_coarser(build, gd, tmp_path):
    hr = gd.write_raster(tmp_path / "hr.tif", np.full((2, 100, 130), 73, np.uint16), origin=ORIGIN, pixel=1.5)
    outputs, _ = build(HR=[hr], PATCH_SIZE=8, VALID=0.3, BLOCK_SIZE=1, OUTPUT_LR=str(tmp_path / "out" / "lr.tif"))
    lr = gdal.Open(outputs["OUTPUT_LR"])
    assert (lr.RasterXSize, lr.RasterYSize, lr.RasterCount) == (32, 25, 2)  # partial blocks dropped
    assert lr.GetGeoTransform() == (ORIGIN[0], 6.0, 0.0, ORIGIN[1], 0.0, -6.0)
    assert lr.GetRasterBand(1).DataType == gdal.GDT_Float32
    assert np.allclose(lr.ReadAsArray(), 73.0)
    assert outputs["SCALE"] == 4.0 and (outputs["OFFSET_X"], outputs["OFFSET_Y"]) == (0.0, 0.0)
    assert outputs["COUNT_TRAIN"] + outputs["COUNT_VALID"] == 4 * 3  # every grid cell: STEP = PATCH_SIZE
    lr_patches, hr_patches = pair_patches(outputs["OUTPUT_TRAIN"])
    assert lr_patches.shape[1:] == (2, 8, 8) and hr_patches.shape[1:] == (2, 32, 32)
    assert hr_patches.dtype == np.uint16 and np.all(hr_patches == 73) and np.allclose(lr_patches, 73.0)


def test_without_output_lr_the_degraded_raster_is_not_kept(build, gd, tmp_path):
    hr = gd.write_raster(tmp_path / "hr.tif", np.full((64, 64), 5, np.int16), origin=ORIGIN)
    outputs, _ = build(HR=[hr], PATCH_SIZE=4, VALID=0)
    assert outputs["OUTPUT_LR"] is None and outputs["OUTPUT_VALID"] is None and outputs["COUNT_VALID"] == 0
    assert gd.folder_entries(tmp_path / "out") == ["train.json", "train_hr.tif", "train_lr.tif"]


def test_a_step_edge_is_blurred_symmetrically(build, gd, tmp_path):
    image = np.zeros((64, 128), np.float32)
    image[:, 64:] = 100.0  # the edge lies on the LR pixel edge between LR columns 15 and 16
    hr = gd.write_raster(tmp_path / "hr.tif", image, origin=ORIGIN)
    outputs, _ = build(HR=[hr], PATCH_SIZE=4, VALID=0, OUTPUT_LR=str(tmp_path / "out" / "lr.tif"))
    row = gdal.Open(outputs["OUTPUT_LR"]).ReadAsArray()[5]
    assert np.allclose(row[:13], 0, atol=1e-3) and np.allclose(row[19:], 100, atol=1e-3)
    assert 5 < row[15] < 45 < 55 < row[16] < 95  # a block mean would give 0 and 100: the Gaussian spreads
    assert row[15] + row[16] == pytest.approx(100, abs=1e-3) and row[14] + row[17] == pytest.approx(100, abs=1e-3)
    assert np.all(np.diff(row) >= -1e-4)


def test_nodata_is_avoided_and_does_not_leak_into_the_lr(build, gd, tmp_path):
    image = np.random.default_rng(3).uniform(10, 20, (128, 128)).astype(np.float32)
    image[41:50, 61:70] = -9999  # HR rows 41-49, cols 61-69: LR rows 10-12, cols 15-17
    hr = gd.write_raster(tmp_path / "hr.tif", image, nodata=-9999, origin=ORIGIN)
    outputs, _ = build(HR=[hr], PATCH_SIZE=4, VALID=0.25, BLOCK_SIZE=2, OUTPUT_LR=str(tmp_path / "out" / "lr.tif"))
    lr = gdal.Open(outputs["OUTPUT_LR"])
    values = lr.ReadAsArray()
    assert lr.GetRasterBand(1).GetNoDataValue() == -9999
    holes = np.argwhere(values == -9999)
    assert {tuple(h) for h in holes} == {(r, c) for r in range(10, 13) for c in range(15, 18)}
    valid = values[values != -9999]
    assert valid.min() >= 10 and valid.max() <= 20  # renormalised near the hole, no -9999 mixed in
    total = 0
    for name in ("OUTPUT_TRAIN", "OUTPUT_VALID"):
        lr_patches, hr_patches = pair_patches(outputs[name])
        assert not np.any(hr_patches == -9999) and not np.any(lr_patches == -9999)
        total += json.loads(open(outputs[name]).read())["dropped"]["nodata"]
    assert total == 4  # the LR patches (4 px, step 4) holding LR rows 10-12 x cols 15-17: 2 x 2
    assert outputs["COUNT_TRAIN"] + outputs["COUNT_VALID"] + total == 64


def test_patch_pairs_cover_the_same_ground_and_the_sets_never_share_a_pixel(build, gd, tmp_path):
    """Each HR pixel holds its own index, so an HR patch tells where it lies; the index is linear in
    x and y, so away from the image edge the degraded LR equals the HR block mean."""
    width = 192
    ids = np.arange(width * width, dtype=np.int32).reshape(width, width)
    hr = gd.write_raster(tmp_path / "hr.tif", ids, origin=ORIGIN)
    outputs, _ = build(HR=[hr], SCALE=4, PATCH_SIZE=8, STEP=6, VALID=0.4, BLOCK_SIZE=2, SEED=1)
    footprints = []
    for name in ("OUTPUT_TRAIN", "OUTPUT_VALID"):
        lr_patches, hr_patches = pair_patches(outputs[name])
        assert len(lr_patches) == outputs[name.replace("OUTPUT", "COUNT")] > 0
        rows, cols = hr_patches[:, 0, 0, 0] // width, hr_patches[:, 0, 0, 0] % width
        assert np.all(rows % 24 == 0) and np.all(cols % 24 == 0)  # the grid: STEP 6 LR px = 24 HR px
        for patch, row, col in zip(hr_patches[:, 0], rows, cols):
            assert np.array_equal(patch, ids[row:row + 32, col:col + 32])
        expected = block_mean(hr_patches[:, 0], 4)
        assert np.allclose(lr_patches[:, 0, 2:6, 2:6], expected[:, 2:6, 2:6], atol=0.05)
        footprints.append((rows, cols))
    (train_rows, train_cols), (valid_rows, valid_cols) = footprints
    overlap = ((np.abs(train_rows[:, None] - valid_rows[None]) < 32)
               & (np.abs(train_cols[:, None] - valid_cols[None]) < 32))
    assert not overlap.any()
    assert outputs["COUNT_TRAIN"] + outputs["COUNT_VALID"] < 7 * 7  # training patches touching validation dropped


def test_the_manifest_opens_as_a_patch_dataset_with_lr_input_and_hr_target(build, gd, tmp_path):
    image = np.random.default_rng(0).integers(0, 4000, (3, 96, 96)).astype(np.uint16)
    hr = gd.write_raster(tmp_path / "hr.tif", image, origin=ORIGIN, pixel=2.5)
    outputs, _ = build(HR=[hr], SCALE=2, PATCH_SIZE=12, VALID=0.3, BLOCK_SIZE=1)
    manifest = json.loads(open(outputs["OUTPUT_TRAIN"]).read())
    lr_source, hr_source = manifest["sources"]
    assert (lr_source["name"], lr_source["role"], lr_source["patch_size"]) == ("lr", "image", 12)
    assert (hr_source["name"], hr_source["role"], hr_source["patch_size"]) == ("hr", "target", 24)
    assert lr_source["dtype"] == "float32" and hr_source["dtype"] == "uint16"
    assert manifest["labels"] is None and manifest["classes"] == []
    sr = manifest["super_resolution"]
    assert (sr["scale"], sr["lr_pixel"], sr["hr_pixel"], sr["degraded"], sr["radiometric_fit"]) == (2.0, 5.0, 2.5,
                                                                                                    True, None)
    assert sr["degradation"]["sigma_hr_pixels"] == pytest.approx(gaussian_sigma(2))
    for source in (lr_source, hr_source):
        assert [set(band) >= {"mean", "std", "min", "max", "nodata"} for band in source["bands"]] == [True] * 3
    hr_values = pair_patches(outputs["OUTPUT_TRAIN"])[1].astype(np.float64)
    assert hr_source["bands"][0]["mean"] == pytest.approx(hr_values[:, 0].mean())
    assert hr_source["bands"][2]["std"] == pytest.approx(hr_values[:, 2].std())

    dataset = PatchDataset(outputs["OUTPUT_TRAIN"], "TRAIN")
    assert dataset.count == outputs["COUNT_TRAIN"] > 0 and not dataset.has_labels
    lr_batch, hr_batch = dataset.read("lr", 0, 3), dataset.read("hr", 0, 3)
    assert lr_batch.shape == (3, 12, 12, 3) and hr_batch.shape == (3, 24, 24, 3)
    targets, weights = Target("hr", "image", (24, 24)).prepare(hr_batch)
    assert targets.shape == (3, 24, 24, 3) and weights.shape == (3, 24, 24)
    normalised = Normalization.from_stats(lr_source["bands"]).apply(lr_batch)
    assert abs(float(normalised.mean())) < 1.0
    assert PatchDataset(outputs["OUTPUT_VALID"], "VALID").count == outputs["COUNT_VALID"] > 0


# ---- a given LR image ----------------------------------------------------------------------------


def test_a_given_lr_pairs_with_hr_patches_of_the_same_ground(build, gd, tmp_path):
    """The LR is the exact block mean of a larger HR; the HR given starts 2.5 and 1.5 LR px in."""
    full = np.random.default_rng(1).normal(500, 80, (2, 256, 256)).astype(np.float32)
    lr = gd.write_raster(tmp_path / "lr.tif", block_mean(full, 4).astype(np.float32), origin=ORIGIN, pixel=4.0)
    subset = full[:, 6:6 + 180, 10:10 + 200]
    hr = gd.write_raster(tmp_path / "hr.tif", subset, origin=(ORIGIN[0] + 10, ORIGIN[1] - 6), pixel=1.0)
    outputs, _ = build(HR=[hr], LR=[lr], PATCH_SIZE=8, VALID=0.3, BLOCK_SIZE=1)
    assert outputs["SCALE"] == 4.0 and (outputs["OFFSET_X"], outputs["OFFSET_Y"]) == (0.0, 0.0)
    assert outputs["OUTPUT_LR"] is None
    for name in ("OUTPUT_TRAIN", "OUTPUT_VALID"):
        lr_patches, hr_patches = pair_patches(outputs[name])
        assert len(lr_patches) > 0 and hr_patches.shape[1:] == (2, 32, 32)
        assert np.allclose(lr_patches, block_mean(hr_patches, 4), atol=1e-3)
    manifest = json.loads(open(outputs["OUTPUT_TRAIN"]).read())
    assert manifest["super_resolution"]["degraded"] is False and manifest["sources"][0]["rasters"] == [lr]
    # HR columns 10-209 are LR columns 2.5-52.5: patches on LR columns 3, 11, .. 43; rows 1.5-46.5: 2, 10, .. 34
    assert outputs["COUNT_TRAIN"] + outputs["COUNT_VALID"] == 6 * 5


def test_a_non_integer_ratio_pairs_20_hr_px_with_8_lr_px(build, gd, tmp_path):
    """10 m / 4 m would be the case in the field; here 5 m / 2 m (x 2.5), the LR made by GDAL's
    area-weighted average of the HR (an independent reference)."""
    full = np.random.default_rng(2).normal(100, 20, (200, 200)).astype(np.float32)
    hr_full = gd.write_raster(tmp_path / "hr_full.tif", full, origin=ORIGIN, pixel=2.0)
    lr = str(tmp_path / "lr.tif")
    gdal.Warp(lr, hr_full, xRes=5, yRes=5, outputBounds=(ORIGIN[0], ORIGIN[1] - 400, ORIGIN[0] + 400, ORIGIN[1]),
              resampleAlg="average")
    hr = gd.write_raster(tmp_path / "hr.tif", full[:, 5:], origin=(ORIGIN[0] + 10, ORIGIN[1]), pixel=2.0)
    outputs, _ = build(HR=[hr], LR=[lr], PATCH_SIZE=8, VALID=0.3, BLOCK_SIZE=1)
    assert outputs["SCALE"] == 2.5 and (outputs["OFFSET_X"], outputs["OFFSET_Y"]) == (0.0, 0.0)
    matrix = area_matrix(8, 20, 2.5)
    for name in ("OUTPUT_TRAIN", "OUTPUT_VALID"):
        lr_patches, hr_patches = pair_patches(outputs[name])
        assert hr_patches.shape[1:] == (1, 20, 20)
        assert np.allclose(lr_patches[:, 0], matrix @ hr_patches[:, 0].astype(np.float64) @ matrix.T, atol=1e-3)
    assert outputs["COUNT_TRAIN"] + outputs["COUNT_VALID"] == 9 * 10  # HR starts 2 LR px in: columns 2, 10, .. 74

    error = error_of(lambda: build(HR=[hr], LR=[lr], PATCH_SIZE=7))
    assert error.parameter == "PATCH_SIZE" and "17.5" in error.message and "6 or 8" in error.message
    error = error_of(lambda: build(HR=[hr], LR=[lr], PATCH_SIZE=8, STEP=5))
    assert error.parameter == "STEP" and "4 or 6" in error.message


def test_area_matrix_is_the_block_mean_for_an_integer_ratio():
    hr = np.random.default_rng(4).normal(0, 1, (16, 16))
    matrix = area_matrix(4, 16, 4.0)
    assert np.allclose(matrix @ hr @ matrix.T, block_mean(hr, 4))
    assert np.allclose(area_matrix(8, 20, 2.5).sum(axis=1), 1.0)


def test_radiometric_matching_recovers_a_known_gain_and_offset(build, gd, tmp_path):
    rng = np.random.default_rng(5)
    lr_values = rng.uniform(100, 200, (2, 48, 48)).astype(np.float32)
    detail = np.tile(np.array([[1, -1, 2, -2]] * 2 + [[-1, 1, -2, 2]] * 2, np.float32), (48, 48))  # block mean 0
    up = np.kron(lr_values, np.ones((4, 4), np.float32))
    hr_values = np.stack([2 * up[0] + 5 + detail, 3 * up[1] + 10 - detail])  # HR = 2 LR_up + 5, 3 LR_up + 10
    lr = gd.write_raster(tmp_path / "lr.tif", lr_values, origin=ORIGIN, pixel=4.0)
    hr = gd.write_raster(tmp_path / "hr.tif", hr_values, origin=ORIGIN, pixel=1.0)
    outputs, _ = build(HR=[hr], LR=[lr], PATCH_SIZE=8, RADIOMETRIC=True, BLOCK_SIZE=1)
    fit = json.loads(open(outputs["OUTPUT_TRAIN"]).read())["super_resolution"]["radiometric_fit"]
    assert fit["gain"] == pytest.approx([0.5, 1 / 3], abs=1e-5)
    assert fit["offset"] == pytest.approx([-2.5, -10 / 3], abs=1e-3)
    assert fit["r2"] == pytest.approx([1.0, 1.0], abs=1e-6)
    for name in ("OUTPUT_TRAIN", "OUTPUT_VALID"):
        manifest = json.loads(open(outputs[name]).read())
        assert manifest["super_resolution"]["radiometric_fit"] == fit
        assert manifest["sources"][1]["dtype"] == "float32"
        lr_patches, hr_patches = pair_patches(outputs[name])
        assert hr_patches.dtype == np.float32
        assert np.allclose(block_mean(hr_patches, 4), lr_patches, atol=1e-3)  # HR now in LR's units
        assert manifest["sources"][1]["bands"][0]["mean"] == pytest.approx(float(hr_patches[:, 0].mean()), rel=1e-5)


def test_misaligned_grids_are_refused_with_the_offset_in_lr_pixels(build, gd, tmp_path):
    lr = gd.write_raster(tmp_path / "lr.tif", np.ones((32, 32), np.float32), origin=ORIGIN, pixel=4.0)
    hr = gd.write_raster(tmp_path / "hr.tif", np.ones((128, 128), np.float32), origin=(ORIGIN[0] + 0.5, ORIGIN[1]))
    error = error_of(lambda: build(HR=[hr], LR=[lr], PATCH_SIZE=8))
    assert error.parameter == "HR"
    assert "0.125 LR pixels across and +0.000 down" in error.message and "gdalwarp" in error.message
    assert not (tmp_path / "out").exists()
    # a shift of whole HR pixels keeps the grids nested: accepted
    shifted = gd.write_raster(tmp_path / "shifted.tif", np.ones((120, 120), np.float32),
                              origin=(ORIGIN[0] + 3.0, ORIGIN[1] - 1.0))
    outputs, _ = build(HR=[shifted], LR=[lr], PATCH_SIZE=8, VALID=0)
    assert outputs["COUNT_TRAIN"] > 0 and (outputs["OFFSET_X"], outputs["OFFSET_Y"]) == (0.0, 0.0)


# ---- bad inputs ----------------------------------------------------------------------------------


@pytest.fixture
def pair(gd, tmp_path):
    """An LR (4 m, 32 x 32 px) and an HR (1 m, 128 x 128 px) over the same area, and variants."""
    rng = np.random.default_rng(6)
    return {
        "lr": gd.write_raster(tmp_path / "lr.tif", rng.normal(0, 1, (32, 32)).astype(np.float32), origin=ORIGIN,
                              pixel=4.0),
        "hr": gd.write_raster(tmp_path / "hr.tif", rng.normal(0, 1, (128, 128)).astype(np.float32), origin=ORIGIN),
        "hr_far": gd.write_raster(tmp_path / "hr_far.tif", np.ones((128, 128), np.float32),
                                  origin=(ORIGIN[0] + 5000, ORIGIN[1])),
        "hr_utm32": gd.write_raster(tmp_path / "hr_utm32.tif", np.ones((128, 128), np.float32), origin=ORIGIN,
                                    epsg=32632),
        "hr_small": gd.write_raster(tmp_path / "hr_small.tif", np.ones((40, 40), np.float32), origin=ORIGIN),
        "hr_2bands": gd.write_raster(tmp_path / "hr_2bands.tif", np.ones((2, 128, 128), np.float32), origin=ORIGIN),
    }


@pytest.mark.parametrize(("case", "parameter", "words"), [
    (dict(HR="hr_far", LR="lr"), "LR", "do not overlap"),
    (dict(HR="hr_utm32", LR="lr"), "LR", "EPSG:32632"),
    (dict(HR="hr_small", PATCH_SIZE=16), "PATCH_SIZE", "smaller than one HR patch (64 px"),
    (dict(HR="hr_small", LR="lr", PATCH_SIZE=16), "PATCH_SIZE", "smaller than one HR patch"),
    (dict(HR="hr", SCALE=2.5), "SCALE", "whole-number SCALE"),
    (dict(HR="hr", SCALE=1), "SCALE", "whole-number SCALE"),
    (dict(HR="lr", LR="hr"), "HR", "not finer than the LR pixel"),
    (dict(HR="hr", LR="lr", SCALE=2), "SCALE", "ratio of 4"),
    (dict(HR="hr_2bands", LR="lr", RADIOMETRIC=True), "RADIOMETRIC", "LR has 1 bands and HR 2"),
    (dict(HR="hr", VALID=1.0), "VALID", "nothing for training"),
    (dict(HR="hr", OUTPUT_VALID=None), "OUTPUT_VALID", "VALID is 0.3"),
    (dict(HR="hr", PATCH_SIZE=8, BLOCK_SIZE=4), "BLOCK_SIZE", "validation set is empty"),
])
def test_bad_inputs_name_the_parameter_and_write_nothing(build, pair, tmp_path, case, parameter, words):
    parameters = dict(case, PATCH_SIZE=case.get("PATCH_SIZE", 4))
    parameters["HR"] = [pair[case["HR"]]]
    if "LR" in case:
        parameters["LR"] = [pair[case["LR"]]]
    error = error_of(lambda: build(**parameters))
    assert error.parameter == parameter and words in error.message, error
    assert not (tmp_path / "out").exists()


def test_cancel_writes_nothing(run_cancelled, gd, tmp_path):
    hr = gd.write_raster(tmp_path / "hr.tif", np.ones((512, 512), np.float32), origin=ORIGIN)
    error = run_cancelled("build_sr_dataset", after=2, HR=[hr], PATCH_SIZE=4, OUTPUT_TRAIN=str(tmp_path / "out/t.json"),
                          OUTPUT_VALID=str(tmp_path / "out/v.json"), OUTPUT_LR=str(tmp_path / "out/lr.tif"))
    assert isinstance(error, Cancelled)
    assert not (tmp_path / "out").exists()


# ---- real data -----------------------------------------------------------------------------------


def test_spot6_degraded_by_four_is_a_training_set(build, spot6, tmp_path):
    outputs, _ = build(HR=[str(spot6 / "fake_spot6.jp2")], SCALE=4, PATCH_SIZE=16,
                       OUTPUT_LR=str(tmp_path / "out" / "spot6_6m.tif"))
    lr = gdal.Open(outputs["OUTPUT_LR"])
    assert (lr.RasterXSize, lr.RasterYSize, lr.RasterCount) == (256, 256, 4)
    assert lr.GetGeoTransform()[1] == 6.0 and lr.GetGeoTransform()[5] == -6.0
    assert outputs["COUNT_TRAIN"] > 0 and outputs["COUNT_VALID"] > 0
    assert outputs["COUNT_TRAIN"] + outputs["COUNT_VALID"] == 16 * 16
    dataset = PatchDataset(outputs["OUTPUT_TRAIN"], "TRAIN")
    lr_batch, hr_batch = dataset.read("lr", 0, 4), dataset.read("hr", 0, 4)
    assert lr_batch.shape == (4, 16, 16, 4) and hr_batch.shape == (4, 64, 64, 4) and hr_batch.dtype == np.int16
    # a degraded patch keeps the radiometry of its HR patch (means within a few percent)
    assert np.allclose(lr_batch.mean(axis=(1, 2)), hr_batch.mean(axis=(1, 2)), rtol=0.05)


def test_nc_landsat_with_a_given_lr_at_57_m_and_radiometric_matching(build, nc, tmp_path):
    """Real data: the LR is GDAL's average of the 28.5 m scene at 57 m, so the fit is the identity."""
    image = str(nc / "landsat_multiband.tif")
    source = gdal.Open(image)
    x0, _, _, y0, _, _ = source.GetGeoTransform()
    lr = str(tmp_path / "lr_57m.tif")
    gdal.Warp(lr, image, xRes=57, yRes=57, resampleAlg="average", outputType=gdal.GDT_Float32,
              outputBounds=(x0, y0 - 221 * 57, x0 + 244 * 57, y0))
    outputs, _ = build(HR=[image], LR=[lr], PATCH_SIZE=16, RADIOMETRIC=True, BLOCK_SIZE=2, SEED=2)
    assert outputs["SCALE"] == 2.0 and outputs["COUNT_TRAIN"] > 0 and outputs["COUNT_VALID"] > 0
    fit = json.loads(open(outputs["OUTPUT_TRAIN"]).read())["super_resolution"]["radiometric_fit"]
    assert fit["gain"] == pytest.approx([1.0] * 5, abs=1e-4)
    assert fit["offset"] == pytest.approx([0.0] * 5, abs=1e-2)
    dataset = PatchDataset(outputs["OUTPUT_VALID"], "VALID")
    assert dataset.read("lr", 0, 2).shape == (2, 16, 16, 5) and dataset.read("hr", 0, 2).shape == (2, 32, 32, 5)
