"""NaN is nodata through processing.run: the NC Landsat-7 scene as Float32 with NaN rows and no declared
nodata gives the patches it gives with -99999 (declared) there, and a strict manifest; kept NaN patches
are refused by Train model before TensorFlow starts, naming TRAIN."""

from __future__ import annotations

import json

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

NODATA = -99999.0
NAN_ROWS = slice(60, 64)


def strict_load(path):
    def refuse(name):
        raise ValueError(f"{name} is not strict JSON")

    with open(path, encoding="utf-8") as handle:
        return json.load(handle, parse_constant=refuse)


def scene_copy(path, source, value, nodata):
    ds = gdal.Translate(str(path), str(source), outputType=gdal.GDT_Float32)
    image = ds.ReadAsArray()
    scene_nodata = ds.GetRasterBand(1).GetNoDataValue()
    image[:, NAN_ROWS] = value
    for index in range(ds.RasterCount):
        band = ds.GetRasterBand(index + 1)
        band.WriteArray(np.where(image[index] == scene_nodata, value, image[index]))
        if nodata is None:
            band.DeleteNoDataValue()
        else:
            band.SetNoDataValue(nodata)
    ds = None
    return str(path)


def test_nan_rows_are_nodata_for_extraction_and_training_refuses_kept_nan(run_alg, nc, tmp_path):
    scene = nc / "landsat_multiband.tif"
    nan = scene_copy(tmp_path / "nan.tif", scene, np.nan, None)
    ref = scene_copy(tmp_path / "ref.tif", scene, NODATA, NODATA)
    points = str(nc / "landsat96_points.shp")
    runs = {name: run_alg("extractpatches", INPUT=points, SOURCE1=[path], PATCH_SIZE1=16, CLASS_FIELD="id",
                          OUTPUT=str(tmp_path / name / "ds.json")) for name, path in (("nan", nan), ("ref", ref))}
    assert runs["nan"]["COUNT"] == runs["ref"]["COUNT"] > 0 and runs["nan"]["DROPPED_NODATA"] > 0
    patches = gdal.Open(runs["nan"]["PATCHES1"]).ReadAsArray()
    assert np.isfinite(patches).all() and np.array_equal(patches, gdal.Open(runs["ref"]["PATCHES1"]).ReadAsArray())
    stats = [[{k: b[k] for k in ("mean", "std", "min", "max", "nonfinite")}
              for b in strict_load(runs[name]["OUTPUT"])["sources"][0]["bands"]] for name in ("nan", "ref")]
    assert stats[0] == stats[1]

    kept = run_alg("extractpatches", INPUT=points, SOURCE1=[nan], PATCH_SIZE1=16, CLASS_FIELD="id",
                   SKIP_NODATA=False, OUTPUT=str(tmp_path / "kept" / "ds.json"))
    assert strict_load(kept["OUTPUT"])["sources"][0]["bands"][0]["nonfinite"] > 0
    with pytest.raises(QgsProcessingException) as caught:
        run_alg("trainmodel", TRAIN=kept["OUTPUT"], EPOCHS=1, OUTPUT=str(tmp_path / "model"))
    assert "(TRAIN)" in str(caught.value) and "NaN or infinite" in str(caught.value)
    assert not (tmp_path / "model").exists()
