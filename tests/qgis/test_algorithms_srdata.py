"""Build super-resolution dataset through processing.run: the Spot-6 scene degraded x4, a given LR
image on the NC scene, and errors naming the parameter."""

from __future__ import annotations

import json

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsRasterLayer


def test_spot6_degraded_by_four_makes_train_and_valid_datasets(run_alg, spot6, tmp_path):
    result = run_alg("buildsrdataset", HR=[str(spot6 / "fake_spot6.jp2")], SCALE=4, PATCH_SIZE=16, VALID=0.3,
                     BLOCK_SIZE=4, OUTPUT_TRAIN=str(tmp_path / "sr_train.json"),
                     OUTPUT_VALID=str(tmp_path / "sr_valid.json"), OUTPUT_LR=str(tmp_path / "spot6_6m.tif"))
    assert result["COUNT_TRAIN"] > 0 and result["COUNT_VALID"] > 0
    assert result["COUNT_TRAIN"] + result["COUNT_VALID"] == 16 * 16
    assert result["SCALE"] == 4.0 and (result["OFFSET_X"], result["OFFSET_Y"]) == (0.0, 0.0)
    layer = QgsRasterLayer(result["OUTPUT_LR"], "lr")
    assert layer.isValid() and (layer.width(), layer.height(), layer.bandCount()) == (256, 256, 4)
    assert layer.rasterUnitsPerPixelX() == 6.0
    manifest = json.loads((tmp_path / "sr_train.json").read_text())
    assert [(s["name"], s["role"], s["patch_size"]) for s in manifest["sources"]] == [("lr", "image", 16),
                                                                                      ("hr", "target", 64)]
    assert manifest["super_resolution"]["degraded"] is True and manifest["n_patches"] == result["COUNT_TRAIN"]
    hr_patches = gdal.Open(str(tmp_path / "sr_train_hr.tif"))
    assert (hr_patches.RasterXSize, hr_patches.RasterYSize) == (64, 64 * result["COUNT_TRAIN"])


def test_a_given_lr_image_on_the_nc_scene(run_alg, nc, tmp_path):
    image = str(nc / "landsat_multiband.tif")
    x0, _, _, y0, _, _ = gdal.Open(image).GetGeoTransform()
    lr = str(tmp_path / "lr_57m.tif")
    gdal.Warp(lr, image, xRes=57, yRes=57, resampleAlg="average", outputBounds=(x0, y0 - 221 * 57, x0 + 244 * 57, y0))
    result = run_alg("buildsrdataset", HR=[image], LR=[lr], PATCH_SIZE=16, RADIOMETRIC=True, BLOCK_SIZE=2,
                     OUTPUT_TRAIN=str(tmp_path / "train.json"), OUTPUT_VALID=str(tmp_path / "valid.json"))
    assert result["SCALE"] == 2.0 and result["COUNT_TRAIN"] > 0 and result["COUNT_VALID"] > 0
    assert result.get("OUTPUT_LR") in (None, "")
    fit = json.loads((tmp_path / "valid.json").read_text())["super_resolution"]["radiometric_fit"]
    assert np.allclose(fit["gain"], 1.0, atol=0.01)


def test_errors_name_the_parameter_and_nothing_is_written(run_alg, nc, tmp_path):
    image = str(nc / "landsat_multiband.tif")
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException, match=r"\(SCALE\).*whole-number SCALE"):
        run_alg("buildsrdataset", HR=[image], SCALE=2.5, PATCH_SIZE=16, OUTPUT_TRAIN=str(out / "train.json"),
                OUTPUT_VALID=str(out / "valid.json"))
    with pytest.raises(QgsProcessingException, match=r"\(HR\).*not finer than the LR pixel"):
        run_alg("buildsrdataset", HR=[image], LR=[image], PATCH_SIZE=16, OUTPUT_TRAIN=str(out / "train.json"),
                OUTPUT_VALID=str(out / "valid.json"))
    assert not out.exists() or not any(out.iterdir())
