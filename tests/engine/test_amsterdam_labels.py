"""scripts/amsterdam_labels.py: the OTBTF building patches located in the Spot-6 scene, their masks
written on its grid (1 building, 2 background, 0 none)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import amsterdam_labels  # noqa: E402


def test_every_patch_is_located_and_its_mask_lands_on_the_scene_grid(spot6, tmp_path):
    from osgeo import gdal

    output = tmp_path / "labels.tif"
    located = amsterdam_labels.make_labels(spot6, output)
    assert (located.found, located.missing, located.ambiguous) == (113 + 112, [], 0)
    labels, scene = gdal.Open(str(output)), gdal.Open(str(spot6 / "fake_spot6.jp2"))
    assert labels.GetGeoTransform() == scene.GetGeoTransform()
    assert labels.GetRasterBand(1).GetNoDataValue() == 0
    array = labels.ReadAsArray()
    assert int((array > 0).sum()) == located.labelled_pixels
    # patch A#0 lies where it was found, and its mask is there
    patch = amsterdam_labels.read_patches(spot6 / "amsterdam_patches_A.tif")[0]
    mask = amsterdam_labels.read_patches(spot6 / "amsterdam_labels_A.tif")[0, ..., 0]
    image = scene.ReadAsArray().transpose(1, 2, 0)
    index = amsterdam_labels.ngram_index(image[:, :, 0], amsterdam_labels.NGRAM)
    (row, col), = amsterdam_labels.locate(patch, image, index)
    np.testing.assert_array_equal(array[row:row + 64, col:col + 64], np.where(mask > 0, 1, 2))


def test_a_patch_that_is_no_crop_is_not_located(spot6):
    from osgeo import gdal

    image = gdal.Open(str(spot6 / "fake_spot6.jp2")).ReadAsArray().transpose(1, 2, 0)
    index = amsterdam_labels.ngram_index(image[:, :, 0], amsterdam_labels.NGRAM)
    patch = image[100:164, 200:264].copy()
    assert amsterdam_labels.locate(patch, image, index) == [(100, 200)]
    patch[30, 30, 2] += 1
    assert amsterdam_labels.locate(patch, image, index) == []
