"""Apply model: seamless tiling (tiled = whole image at once), patch-based serving equal to the model
on each patch, the stride-4 grid of a patch CNN, scale factors, extents, nodata, styles, bad inputs
(nothing written), cancel; real data: the NC Landsat scene and the Spot-6 scene."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.models.modelcard import InputSpec, Normalization
from patchflow.plugin.engine.models.modelio import InferenceModel

CLASSES = [{"id": 3, "name": "water", "color": "#0000ff"}, {"id": 7, "name": "forest", "color": "#00ff00"},
           {"id": 9, "name": "urban", "color": "#ff0000"}]


def export(tmp_path, architecture: str, bands: int, patch: int, name: str, normalization=None) -> str:
    from patchflow.plugin.engine.models.zoo import build_model, export_model

    norm = normalization or Normalization("standard", [100.0] * bands, [30.0] * bands)
    model, card = build_model(architecture, [InputSpec("x1", bands, patch, "source1", norm)], CLASSES, width=8,
                              seed=1)
    path = str(tmp_path / name)
    export_model(model, card, path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {"fcnn": export(folder, "fcnn", 3, 64, "fcnn"), "patch_cnn": export(folder, "patch_cnn", 3, 16, "cnn")}


@pytest.fixture
def scene(tmp_path, gd):
    """A 3-band Int16 scene, 200 x 230 px, smooth structure plus noise."""
    rng = np.random.default_rng(4)
    rows, cols = np.mgrid[0:200, 0:230]
    data = np.stack([100 + 40 * np.sin(rows / 9 + b) * np.cos(cols / 13) + rng.normal(0, 10, rows.shape)
                     for b in range(3)]).astype(np.int16)
    return gd.write_raster(tmp_path / "scene.tif", data, pixel=2.0), data


def read(path) -> tuple[np.ndarray, tuple, str]:
    ds = gdal.Open(str(path))
    values = ds.ReadAsArray()
    return (values[np.newaxis] if values.ndim == 2 else values), ds.GetGeoTransform(), ds.GetProjection()


@pytest.mark.parametrize("tile", [64, 96, 160])  # 96 and 160 do not divide the scene; 64 is one unit
def test_tiled_fcnn_equals_the_whole_image_at_once(run_op, models, scene, tmp_path, tile):
    path, _ = scene
    whole, _ = run_op("apply_model", MODEL=models["fcnn"], SOURCE1=[path], OUTPUTS="probabilities", TILE_SIZE=1024,
                      OUTPUT=str(tmp_path / "whole.tif"))
    tiled, reporter = run_op("apply_model", MODEL=models["fcnn"], SOURCE1=[path], OUTPUTS="probabilities",
                             TILE_SIZE=tile, BATCH_SIZE=3, OUTPUT=str(tmp_path / "tiled.tif"))  # 3 blocks a call
    a, b = read(whole["OUTPUT"])[0], read(tiled["OUTPUT"])[0]
    assert a.shape == b.shape == (3, 200, 230)
    assert np.abs(a - b).max() <= 1e-5
    classes, _ = run_op("apply_model", MODEL=models["fcnn"], SOURCE1=[path], TILE_SIZE=tile,
                        OUTPUT=str(tmp_path / "classes.tif"))
    assert np.array_equal(read(classes["OUTPUT"])[0][0], np.array([3, 7, 9])[a.argmax(axis=0)])
    assert any("margin 64 px" in line for line in reporter.logs)  # measured, beyond the card's crop of 16


def test_the_whole_image_run_is_the_model_on_the_padded_image(run_op, models, scene, tmp_path):
    """The reference itself, without the serving code: zero padding (the normalised mean) around."""
    path, data = scene
    out, _ = run_op("apply_model", MODEL=models["fcnn"], SOURCE1=[path], OUTPUTS="probabilities", TILE_SIZE=1024,
                    OUTPUT=str(tmp_path / "whole.tif"))
    model = InferenceModel.load(models["fcnn"])
    normalised = (data.transpose(1, 2, 0).astype(np.float32) - 100.0) / 30.0
    padded = np.zeros((64 + 256 + 64, 64 + 256 + 64, 3), np.float32)
    padded[64:264, 64:294] = normalised
    expected = model.predict({"x1": padded[None]}, ["probabilities"])["probabilities"][0, 64:264, 64:294]
    assert np.abs(read(out["OUTPUT"])[0].transpose(1, 2, 0) - expected).max() <= 1e-5


def test_patch_serving_is_the_model_on_each_pixels_patch(run_op, models, scene, tmp_path):
    path, data = scene
    out, _ = run_op("apply_model", MODEL=models["patch_cnn"], SOURCE1=[path], OUTPUTS="probabilities",
                    OUTPUT=str(tmp_path / "p.tif"))
    served, transform, _ = read(out["OUTPUT"])
    assert served.shape == (3, 200, 230) and transform == (500000.0, 2.0, 0.0, 5800000.0, 0.0, -2.0)
    model = InferenceModel.load(models["patch_cnn"])
    normalised = np.pad((data.transpose(1, 2, 0).astype(np.float32) - 100.0) / 30.0, ((8, 8), (8, 8), (0, 0)))
    rows, cols = np.array([0, 8, 57, 199, 120]), np.array([0, 229, 31, 100, 8])
    patches = np.stack([normalised[r:r + 16, c:c + 16] for r, c in zip(rows, cols)])  # centred: pixel at 8
    expected = model.predict({"x1": patches}, ["probabilities"])["probabilities"].reshape(len(rows), 3)
    assert np.abs(served[:, rows, cols].T - expected).max() <= 1e-5


def test_a_fixed_size_model_is_served_patch_by_patch(run_op, scene, tmp_path):
    """A card-less model that only takes 8 x 8 patches (Flatten + Dense): patches are cut one by one."""
    import keras

    path, data = scene
    inputs = keras.Input((8, 8, 3), name="patch")
    flat = keras.layers.Flatten()(inputs)
    outputs = keras.layers.Dense(2, kernel_initializer=keras.initializers.RandomNormal(seed=2), name="score")(flat)
    model_path = str(tmp_path / "dense.keras")
    keras.Model(inputs, outputs).save(model_path)
    out, reporter = run_op("apply_model", MODEL=model_path, SOURCE1=[path], RECEPTIVE_FIELD=8, OUTPUTS="score",
                           STRIDE=2, OUTPUT=str(tmp_path / "d.tif"))
    served, transform, _ = read(out["OUTPUT"])
    assert served.shape == (2, 100, 115) and transform[1] == 4.0
    assert any("patch serving" in line for line in reporter.logs)
    model = InferenceModel.load(model_path)
    padded = np.pad(data.transpose(1, 2, 0).astype(np.float32), ((4, 4), (4, 4), (0, 0)))
    rows, cols = np.array([0, 13, 99]), np.array([114, 0, 60])
    # output (i, j) is centred on input pixel (2 i + 1, 2 j + 1): its patch starts 4 px before
    patches = np.stack([padded[2 * i + 1:2 * i + 9, 2 * j + 1:2 * j + 9] for i, j in zip(rows, cols)])
    expected = model.predict({"patch": patches}, ["score"])["score"]
    assert np.abs(served[:, rows, cols].T - expected).max() <= 1e-3


def test_a_stride_4_network_writes_a_4_times_coarser_grid_equal_to_patches_every_4_pixels(run_op, models, scene,
                                                                                          tmp_path):
    path, _ = scene
    fcn, _ = run_op("apply_model", MODEL=models["patch_cnn"], SOURCE1=[path], OUTPUTS="probabilities",
                    MODE="fully_convolutional", TILE_SIZE=16, OUTPUT=str(tmp_path / "fcn.tif"))
    patch, _ = run_op("apply_model", MODEL=models["patch_cnn"], SOURCE1=[path], OUTPUTS="probabilities",
                      MODE="patch", STRIDE=4, OUTPUT=str(tmp_path / "patch.tif"))
    a, transform, _ = read(fcn["OUTPUT"])
    b, transform_b, _ = read(patch["OUTPUT"])
    assert transform == transform_b == (500000.0, 8.0, 0.0, 5800000.0, 0.0, -8.0)
    assert a.shape == b.shape == (3, 50, 58) and np.abs(a - b).max() <= 1e-5


def upsampling_model(path) -> str:
    """A card-less x2 super-resolution stand-in: nearest upsampling then a 3x3 convolution."""
    import keras

    inputs = keras.Input((None, None, 3), name="lowres")
    upsampled = keras.layers.UpSampling2D(2)(inputs)
    outputs = keras.layers.Conv2D(3, 3, padding="same", kernel_initializer="ones", name="image")(upsampled)
    keras.Model(inputs, outputs).save(path)
    return path


def test_a_scale_factor_writes_a_finer_grid_seamlessly(run_op, scene, tmp_path):
    path, _ = scene
    model = upsampling_model(str(tmp_path / "sr.keras"))
    common = dict(MODEL=model, SOURCE1=[path], RECEPTIVE_FIELD=16, SCALE_FACTOR=2, OUTPUTS="image")
    whole, _ = run_op("apply_model", **common, TILE_SIZE=2048, OUTPUT=str(tmp_path / "whole.tif"))
    tiled, reporter = run_op("apply_model", **common, TILE_SIZE=96, OUTPUT=str(tmp_path / "tiled.tif"))
    a, transform, projection = read(whole["OUTPUT"])
    b = read(tiled["OUTPUT"])[0]
    assert a.shape == (3, 400, 460) and transform == (500000.0, 1.0, 0.0, 5800000.0, 0.0, -1.0)
    assert np.abs(a - b).max() <= 1e-3 * np.abs(a).max()  # float32 sums of ~900 ones-weighted values
    assert whole["KIND"] == "image" and "multibandcolor" in (tmp_path / "whole.qml").read_text()
    assert any("outputs: image" in line for line in reporter.logs)  # a card-less model's signature is listed


def test_argmax_of_a_cardless_models_scores_is_a_styled_class_map(run_op, scene, tmp_path):
    import keras

    path, _ = scene
    inputs = keras.Input((None, None, 3), name="image")
    scores = keras.layers.Conv2D(4, 3, padding="same", activation="softmax", name="scores",
                                 kernel_initializer=keras.initializers.RandomNormal(seed=3))(inputs)
    model = str(tmp_path / "scores.keras")
    keras.Model(inputs, scores).save(model)
    common = dict(MODEL=model, SOURCE1=[path], RECEPTIVE_FIELD=16)
    classes, _ = run_op("apply_model", **common, OUTPUTS="scores:argmax", OUTPUT=str(tmp_path / "c.tif"))
    probabilities, _ = run_op("apply_model", **common, OUTPUTS="scores", OUTPUT=str(tmp_path / "p.tif"))
    values, expected = read(classes["OUTPUT"])[0][0], read(probabilities["OUTPUT"])[0].argmax(axis=0)
    assert classes["KIND"] == "class" and np.array_equal(values, expected)
    served = gdal.Open(classes["OUTPUT"])
    assert served.GetRasterBand(1).DataType == gdal.GDT_Byte and served.GetRasterBand(1).GetNoDataValue() == 255
    assert [c["id"] for c in classes["CLASSES"]] == sorted(np.unique(values).tolist())
    assert 'type="paletted"' in (tmp_path / "c.qml").read_text()


def test_an_extent_is_served_alone_on_the_same_grid(run_op, models, scene, tmp_path):
    path, _ = scene
    full, _ = run_op("apply_model", MODEL=models["patch_cnn"], SOURCE1=[path], OUTPUT=str(tmp_path / "full.tif"))
    part, _ = run_op("apply_model", MODEL=models["patch_cnn"], SOURCE1=[path], EXTENT="500020,500100,5799800,5799900",
                     OUTPUT=str(tmp_path / "part.tif"))
    values, transform, _ = read(part["OUTPUT"])
    assert transform[0] == 500020.0 and transform[3] == 5799900.0 and values.shape == (1, 50, 40)
    assert np.array_equal(values[0], read(full["OUTPUT"])[0][0, 50:100, 10:50])
    from osgeo import osr  # the same extent given in WGS 84 (lat/lon): transformed, on the same grid

    utm, wgs84 = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(32631)
    wgs84.ImportFromEPSG(4326)
    for srs in (utm, wgs84):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_wgs84 = osr.CoordinateTransformation(utm, wgs84)
    (lon0, lat0, _), (lon1, lat1, _) = to_wgs84.TransformPoint(500021.0, 5799801.0), to_wgs84.TransformPoint(
        500099.0, 5799899.0)
    geographic, _ = run_op("apply_model", MODEL=models["patch_cnn"], SOURCE1=[path],
                           EXTENT=f"{lon0},{lon1},{lat0},{lat1} [EPSG:4326]", OUTPUT=str(tmp_path / "g.tif"))
    values_g, transform_g, _ = read(geographic["OUTPUT"])
    assert transform_g[1] == 2.0 and (transform_g[0] - 500000.0) % 2 == 0 and values_g.shape[1] >= 49


def test_nodata_pixels_and_empty_tiles_are_written_as_nodata(run_op, models, gd, tmp_path, monkeypatch):
    data = np.full((3, 128, 128), 100, np.int16)
    data[:, :, 64:] = -1  # the right half is nodata
    path = gd.write_raster(tmp_path / "half.tif", data, nodata=-1)
    calls = []
    original = InferenceModel.predict
    monkeypatch.setattr(InferenceModel, "predict", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    out, _ = run_op("apply_model", MODEL=models["fcnn"], SOURCE1=[path], TILE_SIZE=64, OUTPUT=str(tmp_path / "o.tif"))
    values = read(out["OUTPUT"])[0][0]
    ds = gdal.Open(out["OUTPUT"])
    nodata = ds.GetRasterBand(1).GetNoDataValue()
    assert nodata == 0 and (values[:, 64:] == nodata).all() and np.isin(values[:, :64], [3, 7, 9]).all()
    tiles_run = len(calls)
    calls.clear()
    run_op("apply_model", MODEL=models["fcnn"], SOURCE1=[gd.write_raster(tmp_path / "full.tif", data[:, :, :64]
                                                                          .repeat(2, axis=2))],
           TILE_SIZE=64, OUTPUT=str(tmp_path / "f.tif"))
    assert tiles_run < len(calls)  # the two all-nodata tiles were not run through the model
    assert ds.GetMetadata("IMAGE_STRUCTURE").get("COMPRESSION") == "DEFLATE"
    assert ds.GetRasterBand(1).GetBlockSize() == [256, 256] or ds.RasterXSize < 256


def test_class_maps_carry_the_card_classes_and_a_paletted_style(run_op, models, scene, tmp_path):
    path, _ = scene
    out, reporter = run_op("apply_model", MODEL=models["patch_cnn"], SOURCE1=[path], OUTPUT=str(tmp_path / "c.tif"))
    ds = gdal.Open(out["OUTPUT"])
    band = ds.GetRasterBand(1)
    categories = gdal.Info(ds, format="json")["bands"][0]["categories"]  # the bindings drop lists starting with ""
    assert band.DataType == gdal.GDT_Byte and categories[7] == "forest"
    assert band.GetColorTable().GetColorEntry(9)[:3] == (255, 0, 0)
    qml = (tmp_path / "c.qml").read_text()
    assert 'type="paletted"' in qml and 'label="urban"' in qml and out["CLASSES"] == CLASSES
    assert sum(int(line.split(": ")[1].split()[0]) for line in reporter.logs if line[:2] in ("3 ", "7 ", "9 ")) \
        == 200 * 230
    probabilities, _ = run_op("apply_model", MODEL=models["patch_cnn"], SOURCE1=[path], OUTPUTS="probabilities",
                              OUTPUT=str(tmp_path / "p.tif"))
    assert "singlebandpseudocolor" in (tmp_path / "p.qml").read_text()
    served = gdal.Open(probabilities["OUTPUT"])
    assert served.GetRasterBand(2).GetDescription() == "probability forest"


def test_a_class_map_larger_than_gdals_cache_keeps_its_colour_table(run_op, models, gd, tmp_path):
    """Blocks reach the file while it is written; the colour table must be set before (TIFF tags)."""
    rng = np.random.default_rng(1)
    path = gd.write_raster(tmp_path / "big.tif", rng.integers(0, 200, (3, 700, 700)).astype(np.int16))
    previous = gdal.GetCacheMax()
    gdal.SetCacheMax(1 << 18)
    try:
        out, _ = run_op("apply_model", MODEL=models["patch_cnn"], SOURCE1=[path], MODE="fully_convolutional",
                        TILE_SIZE=64, OUTPUT=str(tmp_path / "c.tif"))
        run_op("apply_model", MODEL=models["patch_cnn"], SOURCE1=[path], OUTPUT=str(tmp_path / "p.tif"))
    finally:
        gdal.SetCacheMax(previous)
    served = gdal.Open(out["OUTPUT"])
    assert served.GetRasterBand(1).GetColorTable().GetColorEntry(7)[:3] == (0, 255, 0)


def file_reading_model(path) -> str:
    import tensorflow as tf

    class Reader(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def serve(self, x1):
            secret = tf.strings.length(tf.io.read_file("/etc/hostname"))
            return {"class": tf.cast(x1[..., :1], tf.int32) + secret}

    module = Reader()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve.get_concrete_function()})
    return path


@pytest.mark.parametrize("case", ["bands", "crs", "half_pixel", "receptive", "expression", "output", "extent",
                                  "file_op", "mode"])
def test_bad_inputs_are_refused_with_the_parameter_named_and_nothing_written(run_op, models, scene, gd, tmp_path,
                                                                             case):
    path, data = scene
    job = dict(MODEL=models["patch_cnn"], SOURCE1=[path], OUTPUT=str(tmp_path / "out" / "map.tif"))
    expected = {"bands": "SOURCE1", "crs": "SOURCE1", "half_pixel": "SOURCE1", "receptive": "RECEPTIVE_FIELD",
                "expression": "EXPRESSION_FIELD",
                "output": "OUTPUTS", "extent": "EXTENT", "file_op": "MODEL", "mode": "MODE"}[case]
    if case == "bands":
        job["SOURCE1"] = [gd.write_raster(tmp_path / "one.tif", data[0])]
    elif case == "crs":
        job["SOURCE1"] = [gd.write_raster(tmp_path / "a.tif", data[:2]), gd.write_raster(tmp_path / "b.tif", data[2],
                                                                                          epsg=3857)]
    elif case == "half_pixel":  # 0.4 m off on 2 m pixels, at coordinates of 500 000 m
        job["SOURCE1"] = [gd.write_raster(tmp_path / "a.tif", data[:2], pixel=2.0),
                          gd.write_raster(tmp_path / "b.tif", data[2], pixel=2.0, origin=(500000.4, 5800000.0))]
    elif case == "receptive":
        job["RECEPTIVE_FIELD"] = 12
    elif case == "expression":
        job["EXPRESSION_FIELD"] = 2
    elif case == "output":
        job["OUTPUTS"] = "segmentation"
    elif case == "extent":
        job["EXTENT"] = "0,10,0,10"
    elif case == "file_op":
        job["MODEL"] = file_reading_model(str(tmp_path / "reader"))
        job["RECEPTIVE_FIELD"] = 1
    elif case == "mode":
        job.update(MODE="patch", MODEL=models["fcnn"])
    with pytest.raises(PatchFlowError) as error:
        run_op("apply_model", **job)
    assert error.value.parameter == expected, str(error.value)
    assert not (tmp_path / "out").exists() or gd.folder_entries(tmp_path / "out") == []


def test_cancel_leaves_no_output(run_cancelled, models, scene, gd, tmp_path):
    path, _ = scene
    (tmp_path / "out").mkdir()
    error = run_cancelled("apply_model", after=3, MODEL=models["fcnn"], SOURCE1=[path], TILE_SIZE=64,
                          OUTPUT=str(tmp_path / "out" / "map.tif"))
    assert type(error).__name__ == "Cancelled"
    assert gd.folder_entries(tmp_path / "out") == []


def test_real_nc_landsat_scene(run_op, nc, tmp_path):
    """A patch CNN for the 5-band NC scene (untrained weights: geometry, classes and style are checked)."""
    from patchflow.plugin.engine.geodata.raster import RasterStack

    stack = RasterStack([str(nc / "landsat_multiband.tif")], "SOURCE1")
    sample = stack.read((0, 0, stack.grid.width, stack.grid.height)).reshape(stack.band_count, -1)
    norm = Normalization("standard", sample.mean(axis=1).tolist(), sample.std(axis=1).tolist())
    model = export(tmp_path, "patch_cnn", stack.band_count, 16, "nc_cnn", norm)
    out, _ = run_op("apply_model", MODEL=model, SOURCE1=[str(nc / "landsat_multiband.tif")],
                    OUTPUT=str(tmp_path / "nc.tif"))
    values, transform, projection = read(out["OUTPUT"])
    source = gdal.Open(str(nc / "landsat_multiband.tif"))
    assert transform == source.GetGeoTransform() and projection == source.GetProjection()
    assert values.shape[1:] == (source.RasterYSize, source.RasterXSize)
    served = gdal.Open(out["OUTPUT"])  # kept: a band outliving its dataset crashes GDAL
    nodata = served.GetRasterBand(1).GetNoDataValue()
    assert np.isin(values, [3, 7, 9, nodata]).all() and np.isin(values, [3, 7, 9]).mean() > 0.5


def test_real_spot6_scene_with_the_fcnn(run_op, spot6, tmp_path):
    """The 1.5 m Spot-6 scene through an FCNN, an extent of 512 x 512 px."""
    ds = gdal.Open(str(spot6 / "fake_spot6.jp2"))
    x0, dx, _, y0, _, dy = ds.GetGeoTransform()
    norm = Normalization("standard", [500.0] * ds.RasterCount, [300.0] * ds.RasterCount)
    model = export(tmp_path, "fcnn", ds.RasterCount, 64, "spot_fcnn", norm)
    extent = f"{x0 + 256 * dx},{x0 + 768 * dx},{y0 + 768 * dy},{y0 + 256 * dy}"
    out, _ = run_op("apply_model", MODEL=model, SOURCE1=[str(spot6 / "fake_spot6.jp2")], EXTENT=extent, TILE_SIZE=256,
                    OUTPUT=str(tmp_path / "spot.tif"))
    values, transform, projection = read(out["OUTPUT"])
    assert values.shape == (1, 512, 512) and transform[1] == dx and transform[0] == pytest.approx(x0 + 256 * dx)
    assert projection == ds.GetProjection() and np.isin(values, [3, 7, 9]).all()
