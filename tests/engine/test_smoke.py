def test_label_raster_sampling_keeps_n_per_class(run_op, nc, tmp_path):
    from osgeo import ogr

    out, _ = run_op("sample_label_raster", INPUT=str(nc / "landsat96_labelled_pixels.tif"), NUMBER=20,
                    OUTPUT=str(tmp_path / "s.gpkg"))
    ds = ogr.Open(out["OUTPUT"])
    layer = ds.GetLayer(0)
    assert layer.GetFeatureCount() == 140 == out["COUNT"]
