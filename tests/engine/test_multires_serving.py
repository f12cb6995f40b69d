"""Apply model with sources at their own resolutions (OTBTF TensorflowModelServe): a patch model's served
map equals the model on the patches extraction would cut (SOURCE2's centred where SOURCE1's is, at the
nearest pixel); a fully convolutional model tiled equals it run on the whole image, for ratios 4 and 20/3 and
a sub-pixel grid offset; the output on SOURCE1's grid; sources the model cannot take refused, naming SOURCE2.
Real data: Spot-6 with a 6 m copy, NC Landsat with a 57 m copy."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.models.modelcard import InputSpec, ModelCard, Normalization, OutputSpec

X0, Y0 = 500000.0, 5800000.0


def card_for(inputs: list[InputSpec], receptive: int, expression: int) -> ModelCard:
    return ModelCard("test_fusion", "segmentation", inputs, [OutputSpec("value", "image", 1)], receptive, expression)


def patch_model(path, b1: int, p1: int, b2: int, p2: int, px1: float | None, px2: float | None, seed: int = 0,
                card_p2: int | None = None, static_p1: int | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """x1 (p1, p1, b1) and x2 (p2, p2, b2), static shapes -> one value: sum(x1 w1) + sum(x2 w2)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    s1 = static_p1 or p1
    w1, w2 = rng.normal(size=(s1, s1, b1)).astype(np.float32), rng.normal(size=(p2, p2, b2)).astype(np.float32)

    class Linear(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, s1, s1, b1], tf.float32, name="x1"),
                                      tf.TensorSpec([None, p2, p2, b2], tf.float32, name="x2")])
        def serve(self, x1, x2):
            value = tf.reduce_sum(x1 * w1, axis=[1, 2, 3]) + tf.reduce_sum(x2 * w2, axis=[1, 2, 3])
            return {"value": value[:, None]}

    module = Linear()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve.get_concrete_function()})
    card_for([InputSpec("x1", b1, p1, "source1", Normalization(), px1),
              InputSpec("x2", b2, card_p2 or p2, "source2", Normalization(), px2)], p1, 1).save(str(path))
    return str(path), w1, w2


def fcn_model(path, b1: int, b2: int, receptive: int, p2: int, px1: float, px2: float, seed: int = 0) -> str:
    """A 3 x 3 convolution of x1 (zero padding) plus x2 resized (bilinear) to x1's rows and columns."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(3, 3, b1, 1)).astype(np.float32)
    mix = rng.normal(size=(b2,)).astype(np.float32)

    class Fusion(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, b1], tf.float32, name="x1"),
                                      tf.TensorSpec([None, None, None, b2], tf.float32, name="x2")])
        def serve(self, x1, x2):
            coarse = tf.image.resize(x2, tf.shape(x1)[1:3], method="bilinear")
            value = tf.nn.conv2d(x1, kernel, 1, "SAME") + tf.reduce_sum(coarse * mix, axis=-1, keepdims=True)
            return {"value": value}

    module = Fusion()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve.get_concrete_function()})
    card_for([InputSpec("x1", b1, receptive, "source1", Normalization(), px1),
              InputSpec("x2", b2, p2, "source2", Normalization(), px2)], receptive, receptive).save(str(path))
    return str(path)


def scene(gd, folder, name: str, shape: tuple[int, int, int], pixel: float, origin=(X0, Y0), seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    bands, rows, cols = shape
    r, c = np.mgrid[0:rows, 0:cols]
    data = np.stack([np.sin(r / 5 + b) * np.cos(c / 7) + 0.3 * rng.normal(size=(rows, cols))
                     for b in range(bands)]).astype(np.float32)
    return gd.write_raster(folder / name, data, pixel=pixel, origin=origin)


def read(path) -> tuple[np.ndarray, tuple]:
    ds = gdal.Open(str(path))
    values = ds.ReadAsArray()
    return (values[np.newaxis] if values.ndim == 2 else values).astype(np.float64), ds.GetGeoTransform()


def raster(path) -> tuple[np.ndarray, tuple]:
    """(bands, rows, cols) values, nodata as 0 (the normalised mean Apply model gives it), and the geotransform."""
    ds = gdal.Open(str(path))
    values = ds.ReadAsArray().astype(np.float64)
    values = values[np.newaxis] if values.ndim == 2 else values
    nodata = ds.GetRasterBand(1).GetNoDataValue()
    if nodata is not None:
        values[values == nodata] = 0.0
    return values, ds.GetGeoTransform()


def expected_patch_values(first: str, second: str, p1: int, p2: int, w1, w2, rows, cols,
                          window=(0, 0)) -> np.ndarray:
    """The linear patch model on each output pixel's patches, in numpy: SOURCE1's patch centred on the pixel
    (top-left p1 // 2 before it), SOURCE2's centred on the same point at the nearest pixel (extraction's
    matching_origins), zeros outside the rasters."""
    a, (ax0, adx, _, ay0, _, ady) = raster(first)
    b, (bx0, bdx, _, by0, _, bdy) = raster(second)
    pad = 64
    a = np.pad(a, ((0, 0), (pad, pad), (pad, pad)))
    b = np.pad(b, ((0, 0), (pad, pad), (pad, pad)))
    values = []
    for row, col in zip(rows, cols):
        c1, r1 = col + window[0] - p1 // 2, row + window[1] - p1 // 2
        centre_x, centre_y = ax0 + (c1 + p1 / 2) * adx, ay0 + (r1 + p1 / 2) * ady
        c2 = int(np.floor((centre_x - bx0) / bdx - p2 / 2 + 0.5))
        r2 = int(np.floor((centre_y - by0) / bdy - p2 / 2 + 0.5))
        x1 = a[:, pad + r1:pad + r1 + p1, pad + c1:pad + c1 + p1].transpose(1, 2, 0)
        x2 = b[:, pad + r2:pad + r2 + p2, pad + c2:pad + c2 + p2].transpose(1, 2, 0)
        values.append(float((x1 * w1).sum() + (x2 * w2).sum()))
    return np.array(values)


# ratio 4 (6 m over 1.5 m) with a quarter-pixel offset across; ratio 20/3 (10 m over 1.5 m), offsets both ways
# (SOURCE1's origin 0.3 and 0.7 of a SOURCE2 pixel from SOURCE2's: 0.3 px from a whole pixel both ways)
CASES = {"ratio4": (1.5, 6.0, (X0 - 1.5, Y0)), "ratio20_3": (1.5, 10.0, (X0 - 3.0, Y0 + 7.0))}


@pytest.mark.parametrize("case", list(CASES))
def test_patch_model_serves_the_patches_extraction_cuts(run_op, gd, tmp_path, case):
    px1, px2, origin = CASES[case]
    p1, p2 = (9, 3) if case == "ratio4" else (12, 2)
    first = scene(gd, tmp_path, "fine.tif", (2, 70, 80), px1)
    cols2, rows2 = int(np.ceil(80 * px1 / px2)) + 2, int(np.ceil(70 * px1 / px2)) + 2
    second = scene(gd, tmp_path, "coarse.tif", (3, rows2, cols2), px2, origin, seed=1)
    model, w1, w2 = patch_model(tmp_path / "linear", 2, p1, 3, p2, px1, px2)
    out, reporter = run_op("apply_model", MODEL=model, SOURCE1=[first], SOURCE2=[second],
                           OUTPUT=str(tmp_path / "map.tif"))
    served, transform = read(out["OUTPUT"])
    assert served.shape == (1, 70, 80) and transform == (X0, px1, 0.0, Y0, 0.0, -px1)
    rows, cols = np.array([0, 5, 33, 69, 40, 17]), np.array([0, 79, 41, 3, 22, 60])
    expected = expected_patch_values(first, second, p1, p2, w1, w2, rows, cols)
    np.testing.assert_allclose(served[0, rows, cols], expected, rtol=1e-4, atol=1e-4)
    offset = {"ratio4": "grid offset 0.25 px across, 0 down", "ratio20_3": "grid offset 0.3 px across, 0.3 down"}
    assert any(f"SOURCE2: {px2 / px1:.4g}x SOURCE1's pixel size" in line and offset[case] in line
               for line in reporter.logs), reporter.logs
    assert any("SOURCE2's pixels are offset" in w for w in reporter.warnings) == (case == "ratio20_3")


def test_the_served_patches_are_the_extracted_patches(run_op, gd, tmp_path):
    """The same pixels as Extract patches cuts at points on the output pixels' centres (20/3, offsets)."""
    px1, px2, origin = CASES["ratio20_3"]
    first = scene(gd, tmp_path, "fine.tif", (2, 70, 80), px1)
    second = scene(gd, tmp_path, "coarse.tif", (3, 13, 14), px2, origin, seed=1)
    model, w1, w2 = patch_model(tmp_path / "linear", 2, 12, 3, 2, px1, px2)
    out, _ = run_op("apply_model", MODEL=model, SOURCE1=[first], SOURCE2=[second], OUTPUT=str(tmp_path / "map.tif"))
    served, _ = read(out["OUTPUT"])
    rows, cols = np.array([10, 33, 50, 21, 60]), np.array([10, 41, 22, 66, 70])
    points = gd.write_points(tmp_path / "points.gpkg", X0 + (cols + 0.5) * px1, Y0 - (rows + 0.5) * px1)
    extracted, reporter = run_op("extract_patches", INPUT=points, SOURCE1=[first], PATCH_SIZE1=12, SOURCE2=[second],
                                 PATCH_SIZE2=2, OUTPUT=str(tmp_path / "set" / "set.json"))
    assert extracted["COUNT"] == len(rows)
    assert any("grid offset 0.3 px across, 0.3 down" in line for line in reporter.logs), reporter.logs
    a = raster(extracted["PATCHES1"])[0].reshape(2, -1, 12, 12).transpose(1, 2, 3, 0)
    b = raster(extracted["PATCHES2"])[0].reshape(3, -1, 2, 2).transpose(1, 2, 3, 0)
    # extraction writes patches in chunk order: here one chunk, sorted by row then column
    order = np.lexsort((cols, rows))
    values = (a * w1).sum(axis=(1, 2, 3)) + (b * w2).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(served[0, rows[order], cols[order]], values, rtol=1e-4, atol=1e-4)


# receptive field (= expression field: one unit), SOURCE2's patch, SOURCE1's rows and columns, SOURCE2's origin;
# "small_unit": 8 px units, blocks aligned to 40 px (5 units: whole 10 m pixels)
FCN_CASES = {"ratio4": (32, 8, 90, 100, (X0 - 1.5, Y0)), "ratio20_3": (40, 6, 100, 120, (X0 - 3.0, Y0 + 7.0)),
             "small_unit": (8, 1, 100, 120, (X0 - 3.0, Y0 + 7.0))}


@pytest.mark.parametrize("case", list(FCN_CASES))
def test_tiled_fcn_fusion_equals_the_whole_image(run_op, gd, tmp_path, case):
    px1, px2, _ = CASES["ratio4" if case == "ratio4" else "ratio20_3"]
    receptive, p2, rows1, cols1, origin = FCN_CASES[case]
    first = scene(gd, tmp_path, "fine.tif", (2, rows1, cols1), px1)
    second = scene(gd, tmp_path, "coarse.tif", (3, int(rows1 * px1 / px2) + 2, int(cols1 * px1 / px2) + 2), px2,
                   origin, seed=1)
    model = fcn_model(tmp_path / "fusion", 2, 3, receptive, p2, px1, px2)
    job = dict(MODEL=model, SOURCE1=[first], SOURCE2=[second])
    whole, reporter = run_op("apply_model", **job, TILE_SIZE=1024, OUTPUT=str(tmp_path / "whole.tif"))
    reference, transform = read(whole["OUTPUT"])
    assert reference.shape == (1, rows1, cols1) and transform == (X0, px1, 0.0, Y0, 0.0, -px1)
    assert any("fully convolutional serving" in line for line in reporter.logs), reporter.logs
    assert np.isfinite(reference).all() and reference.std() > 0.1
    assert any("blocks aligned to 40 px of SOURCE1" in line for line in reporter.logs) == (case == "small_unit")
    for tile in (receptive, 2 * receptive, 3 * receptive) if case != "small_unit" else (8, 48, 120):
        tiled, _ = run_op("apply_model", **job, TILE_SIZE=tile, BATCH_SIZE=2, OUTPUT=str(tmp_path / f"t{tile}.tif"))
        assert np.abs(read(tiled["OUTPUT"])[0] - reference).max() <= 1e-4, tile


@pytest.mark.parametrize("phase", [0.0, 0.75])
def test_fcn_whole_image_is_the_model_on_blocks_of_the_same_ground(run_op, gd, tmp_path, phase):
    """Ratio 4: the whole-image block of SOURCE2 is SOURCE2's pixels under SOURCE1's block, from the pixel
    nearest its corner (SOURCE1's origin ``phase`` of a SOURCE2 pixel across: from pixel -7, not -8, at 0.75)."""
    from patchflow.plugin.engine.models.modelio import InferenceModel

    first = scene(gd, tmp_path, "fine.tif", (2, 64, 64), 1.5)
    second = scene(gd, tmp_path, "coarse.tif", (3, 16, 17), 6.0, origin=(X0 - 6.0 * phase, Y0), seed=1)
    model = fcn_model(tmp_path / "fusion", 2, 3, 32, 8, 1.5, 6.0)
    out, reporter = run_op("apply_model", MODEL=model, SOURCE1=[first], SOURCE2=[second], TILE_SIZE=1024, MARGIN=32,
                           OUTPUT=str(tmp_path / "whole.tif"))
    a, b = raster(first)[0].transpose(1, 2, 0), raster(second)[0].transpose(1, 2, 0)
    left = 8 if phase < 0.5 else 7  # the 128 px block from SOURCE1's pixel -32 (-48 m): SOURCE2's -8 or -7.25
    x1 = np.pad(a, ((32, 32), (32, 32), (0, 0)))[None].astype(np.float32)
    x2 = np.pad(b, ((8, 8), (left, 32 - 17 - left), (0, 0)))[None].astype(np.float32)
    expected = InferenceModel.load(model).predict({"x1": x1, "x2": x2}, ["value"])["value"][0, 32:96, 32:96, 0]
    np.testing.assert_allclose(read(out["OUTPUT"])[0][0], expected, rtol=1e-5, atol=1e-5)


def test_the_issues_two_input_model_is_served(run_op, gd, tmp_path):
    """x1 32 x 32 x 4 at 3.6 m, x2 4 x 4 x 5 at 30 m (30 / 3.6 = 25 / 3): served patch by patch, not refused
    for an input of 32 x 32 px of SOURCE2."""
    first = scene(gd, tmp_path, "fine.tif", (4, 50, 60), 3.6)
    second = scene(gd, tmp_path, "coarse.tif", (5, 8, 9), 30.0, seed=1)
    model, w1, w2 = patch_model(tmp_path / "issue", 4, 32, 5, 4, 3.6, 30.0)
    out, reporter = run_op("apply_model", MODEL=model, SOURCE1=[first], SOURCE2=[second],
                           OUTPUT=str(tmp_path / "map.tif"))
    served, _ = read(out["OUTPUT"])
    rows, cols = np.array([0, 25, 49, 30]), np.array([0, 30, 59, 12])
    expected = expected_patch_values(first, second, 32, 4, w1, w2, rows, cols)
    np.testing.assert_allclose(served[0, rows, cols], expected, rtol=1e-4, atol=1e-4)
    assert any("patches of 4 px" in line for line in reporter.logs)


@pytest.mark.parametrize("case", ["crs", "overlap", "card_ratio", "nesting", "static", "probe"])
def test_sources_the_model_cannot_take_are_refused(run_op, gd, tmp_path, case):
    first = scene(gd, tmp_path, "fine.tif", (2, 40, 40), 1.5)
    coarse = dict(shape=(3, 12, 12), pixel=6.0, origin=(X0, Y0))
    model_args: dict = dict(b1=2, p1=9, b2=3, p2=3, px1=1.5, px2=6.0)
    expected, words = "SOURCE2", ""
    if case == "crs":
        second = gd.write_raster(tmp_path / "coarse.tif", np.ones((3, 12, 12), np.float32), pixel=6.0, epsg=3857)
        words = "CRS"
    else:
        if case == "overlap":
            coarse["origin"] = (X0 + 1000.0, Y0)
            words = "does not overlap"
        elif case == "card_ratio":
            coarse["pixel"] = 3.0
            words = "trained with SOURCE2 at 4x SOURCE1's pixel size, given 2x; resample SOURCE2 to pixel size 6"
        elif case == "nesting":
            coarse["pixel"], model_args["px2"] = 6.0 * 1.0037, None
            words = "pixel size k x SOURCE1's"
        elif case == "static":  # the card says 5 px for x2, the model takes 3
            model_args["card_p2"] = 5
            words = "takes 3x3 px"
        elif case == "probe":  # the card says 9 px for x1, the model takes 8
            model_args["static_p1"] = 8
            expected, words = "MODEL", "x1 9x9x2, x2 3x3x3"
        second = scene(gd, tmp_path, "coarse.tif", coarse["shape"], coarse["pixel"], coarse["origin"])
    model = patch_model(tmp_path / "linear", **model_args)[0]
    with pytest.raises(PatchFlowError) as error:
        run_op("apply_model", MODEL=model, SOURCE1=[first], SOURCE2=[second], OUTPUT=str(tmp_path / "out" / "m.tif"))
    assert error.value.parameter == expected, str(error.value)
    assert words.lower() in str(error.value).lower(), str(error.value)
    assert not (tmp_path / "out").exists() or gd.folder_entries(tmp_path / "out") == []


def coarser_copy(source: str, path, pixel: float, bounds=None) -> str:
    gdal.Warp(str(path), source, xRes=pixel, yRes=pixel, resampleAlg="average", outputBounds=bounds)
    return str(path)


def test_real_spot6_with_a_6_m_copy(run_op, spot6, tmp_path):
    src = str(spot6 / "fake_spot6.jp2")
    ds = gdal.Open(src)
    x0, dx, _, y0, _, dy = ds.GetGeoTransform()
    # SOURCE1: 128 x 128 px from pixel (256, 320); SOURCE2: 6 m over a wider area, from a whole 6 m step
    extent = f"{x0 + 256 * dx},{x0 + 384 * dx},{y0 + 448 * dy},{y0 + 320 * dy}"
    bounds = (x0 + 200 * dx, y0 + 520 * dy, x0 + 440 * dx, y0 + 240 * dy)
    second = coarser_copy(src, tmp_path / "spot6_6m.tif", 6.0, bounds)
    fcn = fcn_model(tmp_path / "fusion", 4, 4, 32, 8, 1.5, 6.0)
    job = dict(MODEL=fcn, SOURCE1=[src], SOURCE2=[second], EXTENT=extent)
    whole, _ = run_op("apply_model", **job, TILE_SIZE=1024, OUTPUT=str(tmp_path / "whole.tif"))
    tiled, _ = run_op("apply_model", **job, TILE_SIZE=32, OUTPUT=str(tmp_path / "tiled.tif"))
    reference, transform = read(whole["OUTPUT"])
    assert reference.shape == (1, 128, 128) and transform[1] == dx and transform[0] == pytest.approx(x0 + 256 * dx)
    scale = 1.0 + np.abs(reference).max()
    assert np.abs(read(tiled["OUTPUT"])[0] - reference).max() <= 1e-5 * scale
    model, w1, w2 = patch_model(tmp_path / "linear", 4, 9, 4, 3, 1.5, 6.0)
    out, _ = run_op("apply_model", MODEL=model, SOURCE1=[src], SOURCE2=[second], EXTENT=extent,
                    OUTPUT=str(tmp_path / "patch.tif"))
    served, _ = read(out["OUTPUT"])
    rows, cols = np.array([0, 60, 127, 99]), np.array([0, 64, 127, 5])
    expected = expected_patch_values(src, second, 9, 3, w1, w2, rows, cols, window=(256, 320))
    np.testing.assert_allclose(served[0, rows, cols], expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_real_nc_landsat_with_a_57_m_copy(run_op, nc, tmp_path):
    src = str(nc / "landsat_multiband.tif")
    second = coarser_copy(src, tmp_path / "landsat_57m.tif", 57.0)
    ds = gdal.Open(src)
    x0, dx, _, y0, _, dy = ds.GetGeoTransform()
    extent = f"{x0 + 96 * dx},{x0 + 256 * dx},{y0 + 224 * dy},{y0 + 96 * dy}"  # whole blocks of 32 px
    fcn = fcn_model(tmp_path / "fusion", 5, 5, 32, 16, 28.5, 57.0)
    job = dict(MODEL=fcn, SOURCE1=[src], SOURCE2=[second], EXTENT=extent)
    whole, _ = run_op("apply_model", **job, TILE_SIZE=1024, OUTPUT=str(tmp_path / "whole.tif"))
    tiled, _ = run_op("apply_model", **job, TILE_SIZE=64, OUTPUT=str(tmp_path / "tiled.tif"))
    reference, _ = read(whole["OUTPUT"])
    assert reference.shape == (1, 128, 160)
    scale = 1.0 + np.abs(reference).max()
    assert np.abs(read(tiled["OUTPUT"])[0] - reference).max() <= 1e-5 * scale
    model, w1, w2 = patch_model(tmp_path / "linear", 5, 8, 5, 4, 28.5, 57.0)
    out, _ = run_op("apply_model", MODEL=model, SOURCE1=[src], SOURCE2=[second], EXTENT=extent,
                    OUTPUT=str(tmp_path / "patch.tif"))
    served, _ = read(out["OUTPUT"])
    rows, cols = np.array([5, 60, 120, 99]), np.array([5, 64, 150, 20])
    expected = expected_patch_values(src, second, 8, 4, w1, w2, rows, cols, window=(96, 96))
    np.testing.assert_allclose(served[0, rows, cols], expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_a_source_on_shifted_pixels_of_the_same_size_is_read_where_source1_is(run_op, gd, tmp_path):
    """Ratio 1, SOURCE2 larger and shifted by whole pixels (5 across, 3 down): the same map as SOURCE2
    cut to SOURCE1's grid (fully convolutional; patch-based with SOURCE1's patch size and with another)."""
    first = scene(gd, tmp_path, "fine.tif", (2, 64, 64), 1.5)
    big = scene(gd, tmp_path, "big.tif", (3, 80, 80), 1.5, origin=(X0 - 7.5, Y0 + 4.5), seed=1)
    cut = gd.write_raster(tmp_path / "cut.tif", raster(big)[0][:, 3:67, 5:69].astype(np.float32), pixel=1.5)
    models = {"fcn": fcn_model(tmp_path / "fusion", 2, 3, 32, 32, 1.5, 1.5),
              "same": patch_model(tmp_path / "same", 2, 9, 3, 9, 1.5, 1.5)[0],
              "other": patch_model(tmp_path / "other", 2, 9, 3, 5, 1.5, 1.5)[0]}
    for name, model in models.items():
        maps = [read(run_op("apply_model", MODEL=model, SOURCE1=[first], SOURCE2=[second], TILE_SIZE=32,
                            OUTPUT=str(tmp_path / f"{name}{index}.tif"))[0]["OUTPUT"])[0][0]
                for index, second in enumerate((big, cut))]
        inner = slice(None) if name == "fcn" else slice(5, 59)  # patches reaching past the cut differ
        np.testing.assert_allclose(maps[0][inner, inner], maps[1][inner, inner], rtol=1e-5, atol=1e-5)
        assert np.abs(maps[0]).max() > 0.1
