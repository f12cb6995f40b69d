"""The engine's one GeoTIFF creation helper, its one class-map encoding rule, its one sidecar path."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.geodata.geotiff import class_map_encoding, create_geotiff, creation_options
from patchflow.plugin.engine.report.rasterstyle import sidecar_path


def structure(path: str) -> dict:
    ds = gdal.Open(path)
    return {**ds.GetMetadata("IMAGE_STRUCTURE"), "block": ds.GetRasterBand(1).GetBlockSize()}


@pytest.mark.parametrize(("options", "block", "compression", "predictor"), [
    ({"tiled": True, "block": 64, "deflate": True, "predictor": 3}, [64, 64], "DEFLATE", "3"),
    ({"tiled": True, "deflate": True, "threads": 2}, [256, 256], "DEFLATE", None),
    ({"strip_rows": 8}, [100, 8], None, None),
    ({}, None, None, None),
])
def test_created_files_have_the_structure_asked(tmp_path, options, block, compression, predictor):
    path = str(tmp_path / "a.tif")
    ds = create_geotiff(path, 100, 300, 2, np.dtype(np.float32), creation_options(**options),
                        geotransform=(10.0, 2.0, 0.0, 50.0, 0.0, -2.0), crs_wkt="")
    ds.GetRasterBand(1).WriteArray(np.ones((300, 100), np.float32))
    ds = None
    found = structure(path)
    if block:
        assert found["block"] == block
    assert found.get("COMPRESSION") == compression and found.get("PREDICTOR") == predictor
    assert gdal.Open(path).GetGeoTransform() == (10.0, 2.0, 0.0, 50.0, 0.0, -2.0)


def test_a_file_gdal_cannot_create_names_the_parameter(tmp_path):
    with pytest.raises(PatchFlowError) as caught:
        create_geotiff(str(tmp_path / "missing" / "a.tif"), 4, 4, 1, np.dtype(np.uint8), creation_options(),
                       "OUTPUT_CONFIDENCE")
    assert caught.value.parameter == "OUTPUT_CONFIDENCE" and "writable" in caught.value.message


@pytest.mark.parametrize("ids", [[1, 2, 7], [0, 1, 2], [0, 255], [0, 255, 65535], [-1, 0, 255, 65535],
                                 [-300, 5], [3, 70000], list(range(256)), [-5, -1]])
def test_class_map_encoding_holds_every_id_and_a_nodata_that_is_none(ids):
    dtype, nodata = class_map_encoding(ids)
    assert nodata not in ids
    info = np.iinfo(dtype)
    assert info.min <= min([*ids, nodata]) and max([*ids, nodata]) <= info.max
    smaller = [t for t in (np.uint8, np.uint16, np.int16, np.int32) if np.dtype(t).itemsize < dtype.itemsize]
    assert not any(np.iinfo(t).min <= min([*ids, nodata]) and max([*ids, nodata]) <= np.iinfo(t).max
                   for t in smaller)


def test_serving_and_classification_share_the_class_map_rule():
    from patchflow.plugin.engine.classify import deepfeatures
    from patchflow.plugin.engine.serve import outputs

    assert outputs.class_map_encoding is deepfeatures.class_map_encoding is class_map_encoding


def test_sidecar_path_drops_a_layer_name(tmp_path):
    assert sidecar_path(str(tmp_path / "s.gpkg") + "|layername=s") == str(tmp_path / "s.qml")
    assert sidecar_path(str(tmp_path / "map.tif")) == str(tmp_path / "map.qml")
