"""Reading points: a point that cannot be moved into the raster's CRS is a clear error."""

from __future__ import annotations

import pytest
from osgeo import ogr, osr

from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.geodata.vector import read_points


def test_points_whose_crs_is_wrong_name_the_parameter(nc, tmp_path):
    """Projected coordinates in a WGS 84 GeoJSON (what a GeoJSON of NC's Lambert points becomes)."""
    from osgeo import gdal

    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    path = str(tmp_path / "points.geojson")
    ds = ogr.GetDriverByName("GeoJSON").CreateDataSource(path)
    layer = ds.CreateLayer("points", wgs84, ogr.wkbPoint)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkt("POINT (630042.375 215025.375)"))
    layer.CreateFeature(feature)
    ds = None
    raster_wkt = gdal.Open(str(nc / "landsat_multiband.tif")).GetProjection()
    with pytest.raises(PatchFlowError, match="cannot be moved from the layer's CRS") as caught:
        read_points(path, "INPUT", raster_wkt)
    assert caught.value.parameter == "INPUT"
