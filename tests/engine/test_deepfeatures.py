"""Classifiers on deep features or pixel values (OTBTF TrainClassifierFromDeepFeatures /
ImageClassifierFromDeepFeatures): training, validation scores, whole-scene classification."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from patchflow.plugin import protocol
from patchflow.plugin.engine.classify import deepfeatures as df
from patchflow.plugin.engine.classify import labelled
from patchflow.plugin.engine.data.patches import PatchesImage
from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.reporting import Reporter
from patchflow.plugin.engine.worker import run_job

NODATA = -99999.0


def run(operation: str, **parameters) -> dict:
    return run_job(protocol.Job(operation, parameters, "test"), Reporter())


def error_of(call) -> PatchFlowError:
    with pytest.raises(PatchFlowError) as caught:
        call()
    return caught.value


def pixels_of(raster: str, xs, ys) -> tuple[np.ndarray, np.ndarray]:
    gt = gdal.Open(raster).GetGeoTransform()
    return (np.floor((np.asarray(xs) - gt[0]) / gt[1]).astype(np.int64),
            np.floor((np.asarray(ys) - gt[3]) / gt[5]).astype(np.int64))


def points_of(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from osgeo import ogr

    ds = ogr.Open(path)
    xs, ys, classes = [], [], []
    for feature in ds.GetLayer(0):
        x, y = feature.GetGeometryRef().GetPoint_2D()
        xs.append(x)
        ys.append(y)
        classes.append(feature.GetField("class"))
    return np.asarray(xs), np.asarray(ys), np.asarray(classes)


@pytest.fixture(scope="module")
def nc_sets(nc, tmp_path_factory) -> dict:
    """NC points split into spatially disjoint training / validation sets, 16 px patches of the 5 bands."""
    folder = tmp_path_factory.mktemp("deepfeatures")
    raster = str(nc / "landsat_multiband.tif")
    split = run("grid_split", INPUT=raster, SAMPLES=str(nc / "landsat96_points.shp"), CLASS_FIELD="id",
                PATCH_SIZE=16, BLOCK_SIZE=2, TRAIN=0.7, VALID=0.3, TEST=0.0, SEED=1,
                OUTPUT_TRAIN=str(folder / "train.gpkg"), OUTPUT_VALID=str(folder / "valid.gpkg"))
    sets = {"raster": raster, "folder": folder, "points": {}}
    for name in ("train", "valid"):
        points = split[f"OUTPUT_{name.upper()}"]
        out = run("extract_patches", INPUT=points, SOURCE1=raster, PATCH_SIZE1=16, CLASS_FIELD="class",
                  OUTPUT=str(folder / "patches" / f"{name}.json"))
        sets[name] = out["OUTPUT"]
        sets["points"][name] = points
    sets["rf"] = run("train_classifier", DATASET=sets["train"], VALID=sets["valid"], N_TREES=30, SEED=4,
                     OUTPUT=str(folder / "rf" / "pixels.skops"))
    return sets


# ---- per-pixel training --------------------------------------------------------------------------------


def test_pixel_features_are_the_centre_pixels_of_the_kept_points(nc_sets):
    raster = nc_sets["raster"]
    image = gdal.Open(raster).ReadAsArray()
    xs, ys, classes = points_of(nc_sets["points"]["train"])
    cols, rows = pixels_of(raster, xs, ys)
    expected = Counter()
    for c, r, k in zip(cols, rows, classes):
        patch = image[:, r - 8:r + 8, c - 8:c + 8]
        if r >= 8 and c >= 8 and patch.shape[1:] == (16, 16) and not (patch == NODATA).any():
            expected[(*image[:, r, c].astype(np.float32).tolist(), int(k))] += 1
    dataset = df.load_dataset(nc_sets["train"], "DATASET")
    features = df.dataset_features(dataset, df.FeatureExtractor(df.PIXELS, 5), Reporter())
    assert features.shape == (len(dataset.labels), 5) and features.dtype == np.float32
    found = Counter((*row.tolist(), int(k)) for row, k in zip(features, dataset.labels))
    assert found == expected
    assert len(dataset.labels) > 300


def test_chunked_features_equal_one_pass(nc_sets, monkeypatch):
    dataset = df.load_dataset(nc_sets["train"], "DATASET")
    extractor = df.FeatureExtractor(df.PIXELS, 5)
    whole = df.dataset_features(dataset, extractor, Reporter())
    monkeypatch.setattr(labelled, "CHUNK_BYTES", 16 * 16 * 5 * 4 * 7)  # 7 patches a chunk
    assert np.array_equal(df.dataset_features(dataset, extractor, Reporter()), whole)


def test_validation_kappa_is_sklearns_on_the_classifiers_predictions(nc_sets):
    from sklearn.metrics import accuracy_score, cohen_kappa_score

    out = nc_sets["rf"]
    classifier = df.load_estimator(out["OUTPUT"])
    assert classifier.n_estimators == 30 and classifier.random_state == 4 and classifier.n_jobs == -1
    valid = df.load_dataset(nc_sets["valid"], "VALID")
    predicted = classifier.predict(df.dataset_features(valid, df.FeatureExtractor(df.PIXELS, 5), Reporter()))
    assert out["VALID_KAPPA"] == pytest.approx(cohen_kappa_score(valid.labels, predicted), abs=1e-12)
    assert out["VALID_OA"] == pytest.approx(accuracy_score(valid.labels, predicted), abs=1e-12)
    assert 0.3 < out["VALID_OA"] <= 1.0
    csv = Path(out["VALIDATION_CSV"]).read_text(encoding="utf-8")
    assert "kappa" in csv and "pred_1" in csv
    description = json.loads(Path(out["DESCRIPTION"]).read_text(encoding="utf-8"))
    assert description["kind"] == df.PIXELS and description["model"] is None
    assert (description["bands"], description["patch_size"], description["dataset_patch_size"]) == (5, 1, 16)
    assert [c["id"] for c in description["classes"]] == list(range(1, 8))
    assert all(c["color"].startswith("#") for c in description["classes"])
    assert description["validation"]["kappa"] == out["VALID_KAPPA"]
    assert description["validation"]["n_samples"] == len(valid.labels)
    assert description["training"]["n_samples"] == out["COUNT"]


def test_same_seed_same_classifier(nc_sets, tmp_path):
    again = run("train_classifier", DATASET=nc_sets["train"], VALID=nc_sets["valid"], N_TREES=30, SEED=4,
                OUTPUT=str(tmp_path / "again.skops"))
    assert again["VALID_KAPPA"] == nc_sets["rf"]["VALID_KAPPA"]
    features = df.dataset_features(df.load_dataset(nc_sets["valid"], "VALID"), df.FeatureExtractor(df.PIXELS, 5),
                                   Reporter())
    first, second = df.load_estimator(nc_sets["rf"]["OUTPUT"]), df.load_estimator(again["OUTPUT"])
    assert np.array_equal(first.predict_proba(features), second.predict_proba(features))


def test_svm_on_pixels(nc, nc_sets, tmp_path):
    points = str(tmp_path / "points.gpkg")
    run("sample_label_raster", INPUT=str(nc / "landsat96_labelled_pixels.tif"), NUMBER=20, PATCH_SIZE=16, SEED=2,
        OUTPUT=points)
    dataset = run("extract_patches", INPUT=points, SOURCE1=nc_sets["raster"], PATCH_SIZE1=16, CLASS_FIELD="class",
                  OUTPUT=str(tmp_path / "labelled" / "train.json"))["OUTPUT"]
    out = run("train_classifier", DATASET=dataset, VALID=nc_sets["valid"], CLASSIFIER="svm", SVM_C=10,
              OUTPUT=str(tmp_path / "svm"))
    assert out["OUTPUT"] == str(tmp_path / "svm.skops")
    assert 0.3 < out["VALID_OA"] <= 1.0
    assert json.loads(Path(tmp_path / "svm.json").read_text(encoding="utf-8"))["classifier"] == "svm"
    classified = run("classify", INPUT=nc_sets["raster"], CLASSIFIER=out["OUTPUT"], OUTPUT=str(tmp_path / "m.tif"))
    assert set(np.unique(gdal.Open(classified["OUTPUT"]).ReadAsArray()).tolist()) <= set(range(8))


def test_svm_needs_two_samples_per_class(nc_sets, tmp_path):
    error = error_of(lambda: run("train_classifier", DATASET=nc_sets["train"], CLASSIFIER="svm",
                                 OUTPUT=str(tmp_path / "out" / "svm.skops")))
    assert error.parameter == "CLASSIFIER" and "a class has 1" in error.message
    assert not (tmp_path / "out").exists()


# ---- per-pixel classification -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nc_map(nc_sets) -> dict:
    folder = nc_sets["folder"] / "map"
    out = run("classify", INPUT=nc_sets["raster"], CLASSIFIER=nc_sets["rf"]["OUTPUT"],
              OUTPUT=str(folder / "classes.tif"), OUTPUT_CONFIDENCE=str(folder / "confidence.tif"))
    return out


def test_class_map_at_the_points_is_the_classifiers_prediction(nc_sets, nc_map):
    classifier = df.load_estimator(nc_sets["rf"]["OUTPUT"])
    image = gdal.Open(nc_sets["raster"]).ReadAsArray()
    classes = gdal.Open(nc_map["OUTPUT"]).ReadAsArray()
    confidence = gdal.Open(nc_map["OUTPUT_CONFIDENCE"]).ReadAsArray()
    for name in ("train", "valid"):
        xs, ys, _ = points_of(nc_sets["points"][name])
        cols, rows = pixels_of(nc_sets["raster"], xs, ys)
        inside = (cols >= 0) & (rows >= 0) & (cols < image.shape[2]) & (rows < image.shape[1])
        cols, rows = cols[inside], rows[inside]
        values = image[:, rows, cols].T.astype(np.float32)
        good = ~(values == NODATA).any(axis=1)
        assert good.sum() > 50
        assert np.array_equal(classes[rows[good], cols[good]], classifier.predict(values[good]))
        probabilities = classifier.predict_proba(values[good]).max(axis=1)
        np.testing.assert_allclose(confidence[rows[good], cols[good]], probabilities, rtol=1e-6)


def test_class_map_nodata_grid_and_style(nc_sets, nc_map):
    source = gdal.Open(nc_sets["raster"])
    missing = (source.ReadAsArray() == NODATA).any(axis=0)
    assert missing.any()
    ds = gdal.Open(nc_map["OUTPUT"])
    band = ds.GetRasterBand(1)
    assert (ds.RasterXSize, ds.RasterYSize) == (source.RasterXSize, source.RasterYSize)
    assert ds.GetGeoTransform() == source.GetGeoTransform()
    assert band.DataType == gdal.GDT_Byte and band.GetNoDataValue() == 0
    assert ds.GetMetadata("IMAGE_STRUCTURE").get("COMPRESSION") == "DEFLATE"
    assert band.GetBlockSize()[0] < ds.RasterXSize  # tiled
    classes = band.ReadAsArray()
    assert np.array_equal(classes == 0, missing)
    assert set(np.unique(classes[~missing]).tolist()) <= set(range(1, 8))
    confidence = gdal.Open(nc_map["OUTPUT_CONFIDENCE"]).ReadAsArray()
    assert np.all(confidence[missing] == df.CONFIDENCE_NODATA)
    assert np.all((confidence[~missing] > 0) & (confidence[~missing] <= 1))
    description = json.loads(Path(nc_sets["rf"]["DESCRIPTION"]).read_text(encoding="utf-8"))
    table = band.GetColorTable()
    names = band.GetCategoryNames()
    for info in description["classes"]:
        color = info["color"].lstrip("#")
        assert table.GetColorEntry(info["id"])[:3] == tuple(int(color[i:i + 2], 16) for i in (0, 2, 4))
        assert names[info["id"]] == info["name"]
    from patchflow.plugin.engine.geodata.classes import classes_from_qml

    styled = classes_from_qml(nc_map["STYLE"])
    assert nc_map["STYLE"] == str(Path(nc_map["OUTPUT"]).with_suffix(".qml"))
    assert {k: (v.name, v.color) for k, v in styled.items()} == {
        c["id"]: (c["name"], c["color"]) for c in description["classes"]}


def test_classify_stacked_single_band_rasters_equals_the_multiband(nc, nc_sets, nc_map, tmp_path):
    bands = [str(nc / f"lsat7_2000_{b}.tif") for b in (10, 20, 30, 40, 50)]
    stack = df.RasterStack(bands, "INPUT")
    if not np.array_equal(stack.read((0, 0, 489, 443)).astype(np.float32),
                          gdal.Open(nc_sets["raster"]).ReadAsArray().astype(np.float32)):
        pytest.skip("the single-band rasters are not the multiband's bands")
    out = run("classify", INPUT=bands, CLASSIFIER=nc_sets["rf"]["OUTPUT"], OUTPUT=str(tmp_path / "c.tif"))
    assert np.array_equal(gdal.Open(out["OUTPUT"]).ReadAsArray(), gdal.Open(nc_map["OUTPUT"]).ReadAsArray())


def test_class_map_encoding_avoids_class_ids():
    assert df.class_map_encoding([1, 2, 7]) == (np.dtype(np.uint8), 0)
    assert df.class_map_encoding([0, 1, 2]) == (np.dtype(np.uint8), 255)
    assert df.class_map_encoding([0, 255]) == (np.dtype(np.uint16), 65535)
    assert df.class_map_encoding([0, 255, 65535]) == (np.dtype(np.int32), -1)


# ---- bad inputs -----------------------------------------------------------------------------------------


def test_segmentation_dataset_is_refused(nc, tmp_path):
    points = str(tmp_path / "points.gpkg")
    run("sample_label_raster", INPUT=str(nc / "landsat96_labelled_pixels.tif"), NUMBER=5, PATCH_SIZE=16,
        OUTPUT=points)
    manifest = run("extract_patches", INPUT=points, SOURCE1=str(nc / "landsat_multiband.tif"), PATCH_SIZE1=16,
                   LABEL_RASTER=str(nc / "landsat96_labelled_pixels.tif"),
                   OUTPUT=str(tmp_path / "seg" / "seg.json"))["OUTPUT"]
    out = tmp_path / "out"
    error = error_of(lambda: run("train_classifier", DATASET=manifest, OUTPUT=str(out / "c.skops")))
    assert error.parameter == "DATASET" and "needs a dataset with a class field (labels image)" in error.message
    assert not out.exists()


def test_validation_with_other_bands_or_classes_is_refused(nc, nc_sets, tmp_path):
    four = run("extract_patches", INPUT=nc_sets["points"]["valid"], PATCH_SIZE1=16, CLASS_FIELD="class",
               SOURCE1=[str(nc / f"lsat7_2000_{b}.tif") for b in (10, 20, 30, 40)],
               OUTPUT=str(tmp_path / "four" / "valid.json"))["OUTPUT"]
    out = tmp_path / "out"
    error = error_of(lambda: run("train_classifier", DATASET=nc_sets["train"], VALID=four,
                                 OUTPUT=str(out / "c.skops")))
    assert error.parameter == "VALID" and "4 bands" in error.message
    other = json.loads(Path(nc_sets["valid"]).read_text(encoding="utf-8"))
    other["classes"][0]["name"] = "something else"
    for source in other["sources"]:
        source["patches"] = os.path.join(os.path.dirname(nc_sets["valid"]), source["patches"])
    other["labels"]["patches"] = os.path.join(os.path.dirname(nc_sets["valid"]), other["labels"]["patches"])
    renamed = tmp_path / "renamed.json"
    renamed.write_text(json.dumps(other), encoding="utf-8")
    error = error_of(lambda: run("train_classifier", DATASET=nc_sets["train"], VALID=str(renamed),
                                 OUTPUT=str(out / "c.skops")))
    assert error.parameter == "VALID" and "other names" in error.message
    assert not out.exists()


def test_bad_parameters_are_refused(nc_sets, tmp_path):
    out = tmp_path / "out"
    cases = [
        ({"CLASSIFIER": "tree"}, "CLASSIFIER"),
        ({"N_TREES": 0}, "N_TREES"),
        ({"SVM_C": 0}, "SVM_C"),
        ({"MODEL": str(tmp_path / "nothing")}, "MODEL"),
    ]
    for extra, parameter in cases:
        error = error_of(lambda extra=extra: run("train_classifier", DATASET=nc_sets["train"],
                                                 OUTPUT=str(out / "c.skops"), **extra))
        assert error.parameter == parameter, (extra, error)
    assert not out.exists()


def test_classify_refuses_other_bands_and_a_classifier_without_description(nc, nc_sets, tmp_path):
    out = tmp_path / "out"
    error = error_of(lambda: run("classify", INPUT=str(nc / "lsat7_2000_10.tif"), OUTPUT=str(out / "c.tif"),
                                 CLASSIFIER=nc_sets["rf"]["OUTPUT"]))
    assert error.parameter == "INPUT" and "5 bands" in error.message
    lonely = tmp_path / "lonely.skops"
    lonely.write_bytes(Path(nc_sets["rf"]["OUTPUT"]).read_bytes())
    error = error_of(lambda: run("classify", INPUT=nc_sets["raster"], CLASSIFIER=str(lonely),
                                 OUTPUT=str(out / "c.tif")))
    assert error.parameter == "CLASSIFIER" and "lonely.json" in error.message
    assert not out.exists()


def test_classify_cancelled_leaves_nothing(nc_sets, tmp_path, run_cancelled, monkeypatch):
    from patchflow.plugin.engine.errors import Cancelled

    monkeypatch.setattr(df, "PIXEL_BLOCK", 4096)
    error = run_cancelled("classify", after=2, INPUT=nc_sets["raster"], CLASSIFIER=nc_sets["rf"]["OUTPUT"],
                          OUTPUT=str(tmp_path / "out" / "c.tif"))
    assert isinstance(error, Cancelled)
    assert not (tmp_path / "out").exists()


# ---- deep features ------------------------------------------------------------------------------------


WIDTH = 8  # patch_cnn width: 16 deep features


@pytest.fixture(scope="module")
def cnn(nc_sets) -> dict:
    """An untrained (seeded) patch CNN for the NC bands, exported as a SavedModel, and a Random Forest on its
    features."""
    from patchflow.plugin.engine.data.manifest import load_manifest
    from patchflow.plugin.engine.models.modelcard import InputSpec, Normalization
    from patchflow.plugin.engine.models.zoo import build_model, export_model

    manifest = load_manifest(nc_sets["train"])
    spec = InputSpec("x1", 5, 16, "source1", Normalization.from_stats(manifest["sources"][0]["bands"]))
    model, card = build_model("patch_cnn", [spec], manifest["classes"], width=WIDTH, seed=3)
    path = str(nc_sets["folder"] / "cnn")
    export_model(model, card, path)
    rf = run("train_classifier", DATASET=nc_sets["train"], VALID=nc_sets["valid"], MODEL=path + "/saved_model.pb",
             N_TREES=20, SEED=1, OUTPUT=str(nc_sets["folder"] / "deep" / "rf.skops"))
    return {"path": path, "spec": spec, "rf": rf}


def test_deep_features_are_the_models_feature_output(nc_sets, cnn):
    from sklearn.metrics import cohen_kappa_score

    from patchflow.plugin.engine.models.modelio import InferenceModel

    assert cnn["rf"]["N_FEATURES"] == 2 * WIDTH
    description = json.loads(Path(cnn["rf"]["DESCRIPTION"]).read_text(encoding="utf-8"))
    assert description["kind"] == df.DEEP and description["model"] == cnn["path"]
    assert (description["feature_output"], description["patch_size"], description["bands"]) == ("features", 16, 5)
    assert description["model_card"]["architecture"] == "patch_cnn"
    assert description["normalization"]["mean"] == cnn["spec"].normalization.mean
    model = InferenceModel.load(cnn["path"])
    for name in ("train", "valid"):
        dataset = df.load_dataset(nc_sets[name], "DATASET")
        patches = PatchesImage(dataset.source["patches"], 16).read()
        expected = model.predict({"x1": cnn["spec"].normalization.apply(patches)}, ["features"])["features"]
        assert expected.shape == (len(patches), 1, 1, 2 * WIDTH)
        extractor = df.deep_extractor(cnn["path"], "features")
        features = df.dataset_features(dataset, extractor, Reporter())
        np.testing.assert_allclose(features, expected.reshape(len(patches), -1), rtol=1e-5, atol=1e-6)
    classifier = df.load_estimator(cnn["rf"]["OUTPUT"])
    predicted = classifier.predict(features)
    assert cnn["rf"]["VALID_KAPPA"] == pytest.approx(cohen_kappa_score(dataset.labels, predicted), abs=1e-12)


def test_deep_classification_matches_patch_by_patch_inference(nc_sets, cnn, tmp_path, monkeypatch):
    """Every pixel sees the 16 px patch centred on it (start = pixel - 8), the scene mirrored at its edges,
    nodata neighbours replaced by the band means; blocks, halos and chunks change nothing."""
    from patchflow.plugin.engine.models.modelio import InferenceModel

    rng = np.random.default_rng(5)
    image = gdal.Open(nc_sets["raster"]).ReadAsArray(200, 150, 37, 30).astype(np.float32)
    image += rng.normal(0, 1, image.shape).astype(np.float32)
    image[:, 3, 4] = NODATA
    image[2, 25, 30] = NODATA
    raster = str(tmp_path / "scene.tif")
    driver = gdal.GetDriverByName("GTiff").Create(raster, 37, 30, 5, gdal.GDT_Float32)
    driver.SetGeoTransform((0, 1, 0, 30, 0, -1))
    for b in range(5):
        driver.GetRasterBand(b + 1).WriteArray(image[b])
        driver.GetRasterBand(b + 1).SetNoDataValue(NODATA)
    driver = None
    monkeypatch.setattr(df, "DEEP_BLOCK", 12 * 12)
    monkeypatch.setattr(df, "CHUNK_PIXELS", 50)
    out = run("classify", INPUT=raster, CLASSIFIER=cnn["rf"]["OUTPUT"], OUTPUT=str(tmp_path / "map.tif"),
              OUTPUT_CONFIDENCE=str(tmp_path / "confidence.tif"))
    classes = gdal.Open(out["OUTPUT"]).ReadAsArray()
    confidence = gdal.Open(out["OUTPUT_CONFIDENCE"]).ReadAsArray()
    assert classes[3, 4] == 0 and classes[25, 30] == 0 and (classes != 0).sum() == 30 * 37 - 2
    assert confidence[3, 4] == df.CONFIDENCE_NODATA
    missing = (image == NODATA).any(axis=0)
    filled = np.where(missing, np.asarray(cnn["spec"].normalization.mean, np.float32)[:, None, None], image)
    padded = np.pad(filled, ((0, 0), (8, 7), (8, 7)), mode="reflect")
    pixels = [(0, 0), (0, 36), (29, 0), (29, 36), (1, 2), (15, 18), (11, 12), (12, 11), (4, 4), (24, 30), (7, 35)]
    patches = np.stack([padded[:, r:r + 16, c:c + 16] for r, c in pixels]).transpose(0, 2, 3, 1)
    model = InferenceModel.load(cnn["path"])
    features = model.predict({"x1": cnn["spec"].normalization.apply(patches)}, ["features"])["features"]
    classifier = df.load_estimator(cnn["rf"]["OUTPUT"])
    probabilities = classifier.predict_proba(features.reshape(len(pixels), -1))
    expected = classifier.classes_[probabilities.argmax(axis=1)]
    found = np.array([classes[r, c] for r, c in pixels])
    assert np.array_equal(found, expected)
    np.testing.assert_allclose([confidence[r, c] for r, c in pixels], probabilities.max(axis=1), rtol=1e-6)


def test_model_problems_are_refused(nc, nc_sets, cnn, tmp_path):
    from patchflow.plugin.engine.data.manifest import load_manifest
    from patchflow.plugin.engine.models.modelcard import InputSpec, Normalization
    from patchflow.plugin.engine.models.zoo import build_model

    classes = load_manifest(nc_sets["train"])["classes"]
    model, card = build_model("patch_cnn", [InputSpec("x1", 4, 16, "source1", Normalization())], classes, width=4)
    four = str(tmp_path / "four.keras")
    model.save(four)
    card.save(four)
    small = run("extract_patches", INPUT=nc_sets["points"]["valid"], SOURCE1=nc_sets["raster"], PATCH_SIZE1=8,
                CLASS_FIELD="class", OUTPUT=str(tmp_path / "small" / "small.json"))["OUTPUT"]
    out = tmp_path / "out"
    cases = [
        ({"MODEL": four}, "MODEL", "takes 4 bands"),
        ({"MODEL": cnn["path"], "DATASET": small}, "MODEL", "16 px patches"),
        ({"MODEL": cnn["path"], "VALID": small}, "VALID", "16 px patches"),
        ({"MODEL": cnn["path"], "FEATURE_OUTPUT": "deep"}, "FEATURE_OUTPUT", "probabilities"),
    ]
    for extra, parameter, words in cases:
        values = {"DATASET": nc_sets["train"], "OUTPUT": str(out / "c.skops"), **extra}
        error = error_of(lambda values=values: run("train_classifier", **values))
        assert error.parameter == parameter and words in error.message, (extra, error)
    assert not out.exists()
