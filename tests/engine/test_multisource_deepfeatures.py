"""Train classifier and Classify on a multi-source model's deep features (issue 13, item 5): a two-input
network (x1 <- source1, the NC Landsat scene at 28.5 m, 16 px; x2 <- source2, its 57 m copy, 8 px), a
Random Forest on its fused features, and a class map whose source-2 patches are centred as extraction
centred them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from patchflow.plugin.engine.classify import deepfeatures as df
from patchflow.plugin.engine.classify import multisource as ms
from patchflow.plugin.engine.classify import trainclassifier
from patchflow.plugin.engine.data.patches import PatchesImage
from patchflow.plugin.engine.errors import PatchFlowError

FEATURES = 16
NODATA = -99999.0


def run(operation: str, **parameters):
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    reporter = Reporter()
    return run_job(protocol.Job(operation, parameters, "test"), reporter), reporter


def error_of(call) -> PatchFlowError:
    with pytest.raises(PatchFlowError) as caught:
        call()
    return caught.value


def write_like(path: Path, template: str, values: np.ndarray, srs: str | None = None,
               origin: tuple[float, float] | None = None) -> str:
    """A copy of ``template``'s grid (or moved to ``origin``, or in ``srs``) holding ``values``."""
    source = gdal.Open(template)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), values.shape[2], values.shape[1], values.shape[0],
                                              gdal.GDT_Float32)
    gt = list(source.GetGeoTransform())
    if origin is not None:
        gt[0], gt[3] = origin
    ds.SetGeoTransform(gt)
    ds.SetProjection(srs or source.GetProjection())
    for band in range(values.shape[0]):
        ds.GetRasterBand(band + 1).WriteArray(values[band])
        ds.GetRasterBand(band + 1).SetNoDataValue(NODATA)
    ds = None
    return str(path)


def two_input_model(manifest: dict, seed: int = 3):
    """x1 (16 px, 5 bands) and x2 (8 px, 5 bands): a conv branch each, global pooling, concatenated,
    Dense 'features', Dense + softmax 'probabilities'; its card lists both inputs with pixel sizes."""
    import keras

    from patchflow.plugin.engine.models.modelcard import InputSpec, ModelCard, Normalization, OutputSpec

    keras.utils.set_random_seed(seed)
    sources = {s["name"]: s for s in manifest["sources"]}
    x1 = keras.Input((None, None, 5), name="x1")
    x2 = keras.Input((None, None, 5), name="x2")
    a = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, activation="tanh")(x1))
    b = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, activation="tanh")(x2))
    features = keras.layers.Dense(FEATURES, activation="tanh", name="features")(keras.layers.Concatenate()([a, b]))
    classes = manifest["classes"]
    probabilities = keras.layers.Dense(len(classes), activation="softmax", name="probabilities")(features)
    model = keras.Model([x1, x2], probabilities)
    inputs = [InputSpec(name, 5, size, source, Normalization.from_stats(sources[source]["bands"]),
                        abs(sources[source]["pixel_size"][0]))
              for name, size, source in (("x1", 16, "source1"), ("x2", 8, "source2"))]
    card = ModelCard("two_branch_test", "classification", inputs,
                     [OutputSpec("probabilities", "probabilities", len(classes)), OutputSpec("class", "class", 1),
                      OutputSpec("features", "features", FEATURES)], 16, 1,
                     classes=[{"id": c["id"], "name": c["name"], "color": c["color"]} for c in classes])
    return model, card


@pytest.fixture(scope="module")
def fused(nc, tmp_path_factory) -> dict:
    from patchflow.plugin.engine.data.manifest import load_manifest
    from patchflow.plugin.engine.models.zoo import export_model

    folder = tmp_path_factory.mktemp("multisource")
    raster = str(nc / "landsat_multiband.tif")
    coarse = str(folder / "landsat_57m.tif")
    gdal.Warp(coarse, raster, xRes=57, yRes=57, resampleAlg="average")
    points = str(nc / "landsat96_points.shp")
    dataset = run("extract_patches", INPUT=points, SOURCE1=raster, PATCH_SIZE1=16, SOURCE2=coarse,
                             PATCH_SIZE2=8, CLASS_FIELD="id", OUTPUT=str(folder / "patches" / "train.json"))[0]
    manifest = load_manifest(dataset["OUTPUT"])
    model, card = two_input_model(manifest)
    path = str(folder / "fusion")
    export_model(model, card, path)
    rf, reporter = run("train_classifier", DATASET=dataset["OUTPUT"], MODEL=path + "/saved_model.pb",
                                  N_TREES=20, SEED=1, OUTPUT=str(folder / "rf" / "fused.skops"))
    return {"folder": folder, "raster": raster, "coarse": coarse, "points": points, "dataset": dataset["OUTPUT"],
            "manifest": manifest, "model": path, "card": card, "rf": rf, "warnings": reporter.warnings}


def test_the_description_records_every_source_and_the_features_read_both(fused):
    from patchflow.plugin.engine.models.modelio import InferenceModel
    from patchflow.plugin.engine.reporting import Reporter

    rf = fused["rf"]
    assert rf["N_FEATURES"] == FEATURES and rf["COUNT"] > 300
    assert not fused["warnings"]  # every source of the dataset is read
    description = json.loads(Path(rf["DESCRIPTION"]).read_text(encoding="utf-8"))
    assert [(s["name"], s["input_name"], s["bands"], s["patch_size"], s["dataset_patch_size"])
            for s in description["sources"]] == [("source1", "x1", 5, 16, 16), ("source2", "x2", 5, 8, 8)]
    assert [s["pixel_size"] for s in description["sources"]] == [[28.5, -28.5], [57.0, -57.0]]
    assert [s["model_pixel_size"] for s in description["sources"]] == [28.5, 57.0]
    assert description["sources"][1]["normalization"]["mean"] == fused["card"].inputs[1].normalization.mean
    # the features are the network's on the patches of both sources
    dataset = df.load_dataset(fused["dataset"], "DATASET")
    extractor = df.deep_extractor(fused["model"], "features", source_order=["source1", "source2"])
    ms.attach_sources(dataset, extractor)
    features = df.dataset_features(dataset, extractor, Reporter())
    sources = {s["name"]: s for s in fused["manifest"]["sources"]}
    first = PatchesImage(sources["source1"]["patches"], 16).read()
    second = PatchesImage(sources["source2"]["patches"], 8).read()
    card = fused["card"]
    model = InferenceModel.load(fused["model"])
    expected = model.predict({"x1": card.inputs[0].normalization.apply(first),
                              "x2": card.inputs[1].normalization.apply(second)}, ["features"])["features"]
    np.testing.assert_allclose(features, expected.reshape(len(first), -1), rtol=1e-5, atol=1e-6)
    shuffled = model.predict({"x1": card.inputs[0].normalization.apply(first),
                              "x2": card.inputs[1].normalization.apply(second[::-1])}, ["features"])["features"]
    assert np.abs(shuffled.reshape(len(first), -1) - features).max() > 1e-2  # source 2 matters


def test_classification_patches_of_source2_are_the_extracted_ones(fused):
    """For the dataset's own points, Classify's source-2 patch of the point's pixel is the patch extraction wrote."""
    from patchflow.plugin.engine.geodata.raster import RasterStack

    positions = np.loadtxt(str(Path(fused["dataset"]).with_name("train_positions.csv")), delimiter=",", skiprows=1)
    reference = RasterStack([fused["raster"]], "INPUT")
    grid = reference.grid
    cols = np.round((positions[:, 0] - grid.x0) / grid.dx).astype(np.int64)  # 16 px: centre = pixel's corner
    rows = np.round((positions[:, 1] - grid.y0) / grid.dy).astype(np.int64)
    extractor = df.deep_extractor(fused["model"], "features", source_order=["source1", "source2"])
    extra = ms.ExtraSource("INPUT2", RasterStack([fused["coarse"]], "INPUT2"), extractor.extra[0], 16, 8)
    block = extra.block(reference, (0, 0, grid.width, grid.height))
    assert not block.invalid[rows, cols].any()
    sources = {s["name"]: s for s in fused["manifest"]["sources"]}
    extracted = PatchesImage(sources["source2"]["patches"], 8).read()
    assert np.array_equal(block.patches(rows * grid.width + cols), extracted)
    first = PatchesImage(sources["source1"]["patches"], 16).read()
    image = reference.read((0, 0, grid.width, grid.height))
    assert np.array_equal(image[:, rows[5] - 8:rows[5] + 8, cols[5] - 8:cols[5] + 8].transpose(1, 2, 0), first[5])


def test_reflection_is_numpys():
    values = np.arange(7)
    index = np.arange(-9, 17)
    assert np.array_equal(values[ms.reflected(index, 7)], np.pad(values, (9, 10), mode="reflect"))


def _expected_classes(fused, clip: str, coarse: str, pixels: list[tuple[int, int]], mirror: int = 0) -> np.ndarray:
    """The classifier on features computed here: x1 the 16 px patch centred on the pixel (start = pixel - 8,
    mirrored at the clip's edges), x2 the 8 px patch of the 57 m raster centred on x1's centre, at the nearest
    pixel, as extraction centres it (``mirror``: the 57 m raster's nodata pixels filled with the band means, then
    mirrored by that many pixels at its edges)."""
    from patchflow.plugin.engine.models.modelio import InferenceModel

    card = fused["card"]
    image = gdal.Open(clip).ReadAsArray().astype(np.float32)
    padded = np.pad(image, ((0, 0), (8, 7), (8, 7)), mode="reflect")
    x1 = np.stack([padded[:, r:r + 16, c:c + 16] for r, c in pixels]).transpose(0, 2, 3, 1)
    gt, gt2 = gdal.Open(clip).GetGeoTransform(), gdal.Open(coarse).GetGeoTransform()
    second = gdal.Open(coarse).ReadAsArray().astype(np.float32)
    if mirror:
        missing = (second == NODATA).any(axis=0)
        second = np.where(missing, np.asarray(card.inputs[1].normalization.mean, np.float32)[:, None, None], second)
        second = np.pad(second, ((0, 0), (mirror, mirror), (mirror, mirror)), mode="reflect")
    x2 = []
    for r, c in pixels:
        x, y = gt[0] + c * gt[1], gt[3] + r * gt[5]  # centre of x1's 16 px patch: the corner of pixel (r, c)
        c2 = math.floor((x - gt2[0]) / gt2[1] - 4 + 0.5) + mirror
        r2 = math.floor((y - gt2[3]) / gt2[5] - 4 + 0.5) + mirror
        assert min(c2, r2) >= 0
        patch = second[:, r2:r2 + 8, c2:c2 + 8]
        assert patch.shape == (5, 8, 8) and not (patch == NODATA).any()
        x2.append(patch.transpose(1, 2, 0))
    features = InferenceModel.load(fused["model"]).predict(
        {"x1": card.inputs[0].normalization.apply(x1), "x2": card.inputs[1].normalization.apply(np.stack(x2))},
        ["features"])["features"]
    classifier = df.load_estimator(fused["rf"]["OUTPUT"])
    probabilities = classifier.predict_proba(features.reshape(len(pixels), -1))
    return classifier.classes_[probabilities.argmax(axis=1)], probabilities.max(axis=1)


def test_class_map_is_the_classifier_on_both_sources(fused, run_op, tmp_path, monkeypatch):
    clip = str(tmp_path / "clip.tif")
    gdal.Translate(clip, fused["raster"], srcWin=[150, 120, 41, 33])
    monkeypatch.setattr(df, "DEEP_BLOCK", 16 * 16)  # several blocks
    monkeypatch.setattr(df, "CHUNK_PIXELS", 70)
    out, _ = run_op("classify", INPUT=clip, INPUT2=fused["coarse"], CLASSIFIER=fused["rf"]["OUTPUT"],
                    OUTPUT=str(tmp_path / "map.tif"))
    classes = gdal.Open(out["OUTPUT"]).ReadAsArray()
    assert classes.shape == (33, 41) and out["COUNT"] == 33 * 41
    pixels = [(0, 0), (0, 40), (32, 0), (32, 40), (1, 2), (16, 20), (11, 12), (12, 11), (5, 33), (27, 8), (20, 39)]
    expected, _ = _expected_classes(fused, clip, fused["coarse"], pixels)
    assert np.array_equal(np.array([classes[r, c] for r, c in pixels]), expected)
    # another source 2 (the 57 m scene shifted by 20 pixels) gives another map: the features read it
    shifted = np.roll(gdal.Open(fused["coarse"]).ReadAsArray(), 20, axis=2)
    other = write_like(tmp_path / "shifted.tif", fused["coarse"], shifted)
    out2, _ = run_op("classify", INPUT=clip, INPUT2=other, CLASSIFIER=fused["rf"]["OUTPUT"],
                     OUTPUT=str(tmp_path / "map2.tif"))
    classes2 = gdal.Open(out2["OUTPUT"]).ReadAsArray()
    assert (classes2 != classes).mean() > 0.05
    assert np.array_equal(np.array([classes2[r, c] for r, c in pixels[4:]]),
                          _expected_classes(fused, clip, other, pixels[4:])[0])


def test_source2_patches_past_its_edges_are_mirrored_and_its_nodata_filled(fused, run_op, tmp_path):
    """INPUT2 covers exactly INPUT's ground: the source-2 patches of INPUT's edge pixels reach past INPUT2's
    edges (mirrored); a nodata pixel of INPUT2 is filled with x2's band means, and the pixels whose source-2
    patch is centred on it stay nodata."""
    clip = str(tmp_path / "clip.tif")
    gdal.Translate(clip, fused["raster"], srcWin=[150, 120, 30, 20])
    part = gdal.Open(fused["coarse"]).ReadAsArray(75, 60, 15, 10)
    part[2, 5, 10] = NODATA
    holed = str(tmp_path / "holed.tif")
    gdal.Translate(holed, fused["coarse"], srcWin=[75, 60, 15, 10])
    ds = gdal.Open(holed, gdal.GA_Update)
    ds.GetRasterBand(3).WriteArray(part[2])
    ds = None
    out, _ = run_op("classify", INPUT=clip, INPUT2=holed, CLASSIFIER=fused["rf"]["OUTPUT"],
                    OUTPUT=str(tmp_path / "map.tif"), OUTPUT_CONFIDENCE=str(tmp_path / "confidence.tif"))
    classes = gdal.Open(out["OUTPUT"]).ReadAsArray()
    confidence = gdal.Open(out["OUTPUT_CONFIDENCE"]).ReadAsArray()
    # INPUT2's pixel (5, 10) lies under INPUT's rows 10-11 and columns 20-21
    assert (classes[10:12, 20:22] == 0).all() and out["COUNT"] == 30 * 20 - 4
    pixels = [(0, 0), (19, 29), (0, 29), (19, 0), (8, 18), (3, 15), (9, 19), (12, 22)]
    expected, highest = _expected_classes(fused, clip, holed, pixels, mirror=8)
    assert np.array_equal(np.array([classes[r, c] for r, c in pixels]), expected)
    np.testing.assert_allclose([confidence[r, c] for r, c in pixels], highest, rtol=1e-6)


def test_source2_smaller_than_input_leaves_the_rest_nodata(fused, run_op, tmp_path):
    clip = str(tmp_path / "clip.tif")
    gdal.Translate(clip, fused["raster"], srcWin=[150, 120, 30, 20])
    part = str(tmp_path / "part.tif")
    gdal.Translate(part, fused["coarse"], srcWin=[75, 60, 8, 20])  # the ground of the clip's first 16 columns
    out, reporter = run_op("classify", INPUT=clip, INPUT2=part, CLASSIFIER=fused["rf"]["OUTPUT"],
                           OUTPUT=str(tmp_path / "map.tif"))
    classes = gdal.Open(out["OUTPUT"]).ReadAsArray()
    # the pixels of INPUT whose centre lies on INPUT2 are classified (the patches of the last ones mirrored)
    assert (classes[:, :16] != 0).all() and (classes[:, 16:] == 0).all()
    assert out["COUNT"] == 16 * 20
    assert any(w.startswith("280 pixels of INPUT are left nodata: INPUT2") for w in reporter.warnings)


def test_classify_refusals_name_their_parameter_before_tensorflow(fused, run_op, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the network was loaded before the checks")

    monkeypatch.setattr(df, "reload_extractor", no_network)
    coarse = gdal.Open(fused["coarse"]).ReadAsArray()
    three = write_like(tmp_path / "three.tif", fused["coarse"], coarse[:3])
    wgs84 = write_like(tmp_path / "wgs84.tif", fused["coarse"], coarse, srs=osr.SRS_WKT_WGS84_LAT_LONG)
    far = write_like(tmp_path / "far.tif", fused["coarse"], coarse, origin=(0.0, 0.0))
    fine = fused["raster"]  # 28.5 m: ratio 1 where the classifier had 2
    cases = [
        ({}, "INPUT2", "give source 'source2'"),
        ({"INPUT2": three}, "INPUT2", "has 3"),
        ({"INPUT2": wgs84}, "INPUT2", "Reproject"),
        ({"INPUT2": far}, "INPUT2", "does not overlap"),
        ({"INPUT2": fine}, "INPUT2", "Resample INPUT2 to 57"),
        ({"INPUT2": fused["coarse"], "INPUT3": fused["coarse"]}, "INPUT3", "INPUT3 is not used"),
    ]
    for extra, parameter, words in cases:
        error = error_of(lambda extra=extra: run_op("classify", INPUT=fused["raster"], CLASSIFIER=fused["rf"]["OUTPUT"],
                                                    OUTPUT=str(tmp_path / "out" / "map.tif"), **extra))
        assert error.parameter == parameter and words in error.message, (extra, error)
    assert not (tmp_path / "out").exists()


def test_single_source_classifier_refuses_input2(fused, run_op, tmp_path, monkeypatch):
    single = run_op("train_classifier", DATASET=fused["dataset"], N_TREES=5, OUTPUT=str(tmp_path / "px.skops"))
    outputs, reporter = single
    assert any("source2" in w and "not used" in w for w in reporter.warnings)
    error = error_of(lambda: run_op("classify", INPUT=fused["raster"], INPUT2=fused["coarse"],
                                    CLASSIFIER=outputs["OUTPUT"], OUTPUT=str(tmp_path / "map.tif")))
    assert error.parameter == "INPUT2" and "not used" in error.message


def test_training_refusals(fused, run_op, tmp_path, monkeypatch):
    raster = fused["raster"]
    one = run_op("extract_patches", INPUT=fused["points"], SOURCE1=raster, PATCH_SIZE1=16, CLASS_FIELD="id",
                 OUTPUT=str(tmp_path / "one" / "one.json"))[0]["OUTPUT"]
    three_bands = str(tmp_path / "coarse3.tif")
    gdal.Translate(three_bands, fused["coarse"], bandList=[1, 2, 3])
    other = run_op("extract_patches", INPUT=fused["points"], SOURCE1=raster, PATCH_SIZE1=16, SOURCE2=three_bands,
                   PATCH_SIZE2=8, CLASS_FIELD="id", OUTPUT=str(tmp_path / "three" / "three.json"))[0]["OUTPUT"]

    def no_network(*args, **kwargs):
        raise AssertionError("the network was loaded before the checks")

    monkeypatch.setattr(trainclassifier, "deep_extractor", no_network)
    model = fused["model"] + "/saved_model.pb"
    cases = [
        ({"DATASET": one}, "DATASET", "no such image source"),
        ({"DATASET": other}, "MODEL", "takes 5 bands"),
        ({"DATASET": fused["dataset"], "VALID": one}, "VALID", "no such image source"),
        ({"DATASET": fused["dataset"], "TEST": other}, "TEST", "takes 5 bands"),
    ]
    for extra, parameter, words in cases:
        error = error_of(lambda extra=extra: run_op("train_classifier", MODEL=model,
                                                    OUTPUT=str(tmp_path / "out" / "c.skops"), **extra))
        assert error.parameter == parameter and words in error.message, (extra, error)
    assert not (tmp_path / "out").exists()


def test_single_input_model_on_a_multisource_dataset_warns(fused, run_op, tmp_path):
    from patchflow.plugin.engine.models.modelcard import InputSpec, Normalization
    from patchflow.plugin.engine.models.zoo import build_model, export_model

    manifest = fused["manifest"]
    spec = InputSpec("x1", 5, 16, "source1", Normalization.from_stats(manifest["sources"][0]["bands"]))
    model, card = build_model("patch_cnn", [spec], manifest["classes"], width=4, seed=3)
    path = str(tmp_path / "cnn")
    export_model(model, card, path)
    outputs, reporter = run_op("train_classifier", DATASET=fused["dataset"], MODEL=path, N_TREES=5,
                               OUTPUT=str(tmp_path / "rf.skops"))
    assert outputs["N_FEATURES"] == 8
    assert any("source2" in w and "not used" in w for w in reporter.warnings), reporter.warnings
    description = json.loads(Path(outputs["DESCRIPTION"]).read_text(encoding="utf-8"))
    assert [s["name"] for s in description["sources"]] == ["source1"]
