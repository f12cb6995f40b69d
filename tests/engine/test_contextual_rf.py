"""The contextual per-pixel baseline (train_classifier FEATURES=pixels_neighbourhood): each pixel's
band values with their mean and standard deviation over its N x N neighbourhood, on real NC data:
the features are a direct numpy computation (nodata left out), Classify computes exactly the
features the classifier was trained on, its map is seamless; and the pixel and contextual Random
Forests compared at NC's 1000 independent labelled points (McNemar, bootstrap) against a direct
computation."""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from scipy import stats
from sklearn import metrics as sk

from patchflow.plugin import protocol
from patchflow.plugin.engine.classify import deepfeatures as df
from patchflow.plugin.engine.classify import features as featuremodule
from patchflow.plugin.engine.classify import labelled
from patchflow.plugin.engine.data.patches import PatchesImage
from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.evaluate import significance
from patchflow.plugin.engine.reporting import Reporter
from patchflow.plugin.engine.worker import run_job
from patchflow.tests.helpers import read_points, to_pixels

NODATA = -99999.0
PATCH, N = 7, 5


def run(operation: str, **parameters) -> dict:
    return run_job(protocol.Job(operation, parameters, "test"), Reporter())


class Recording:
    """A classifier that keeps the features Classify gives it."""

    def __init__(self, inner) -> None:
        self.inner, self.seen, self.classes_ = inner, [], inner.classes_

    def predict(self, features):
        self.seen.append(np.array(features))
        return self.inner.predict(features)


@pytest.fixture(scope="module")
def nc_rf(nc, tmp_path_factory) -> dict:
    """Samples in every NC polygon, 7 px patches (those touching nodata kept), a pixel RF and a 5 x 5
    contextual RF, both scenes classified (the contextual one in one block, its features recorded)."""
    folder = tmp_path_factory.mktemp("contextual")
    image = str(nc / "landsat_multiband.tif")
    run("sample_vector", INPUT=str(nc / "landsat96_polygons.shp"), FIELD="label", RASTER=image, STRATEGY="all",
        PATCH_SIZE=PATCH, OUTPUT=str(folder / "samples.gpkg"))
    dataset = run("extract_patches", INPUT=str(folder / "samples.gpkg"), SOURCE1=image, PATCH_SIZE1=PATCH,
                  CLASS_FIELD="class", SKIP_NODATA=False, OUTPUT=str(folder / "patches" / "train.json"))["OUTPUT"]
    found = {"image": image, "folder": folder, "dataset": dataset}
    for name, choice in (("pixels", "pixels"), ("context", "pixels_neighbourhood")):
        found[name] = run("train_classifier", DATASET=dataset, FEATURES=choice, NEIGHBOURHOOD=N, N_TREES=30, SEED=0,
                          OUTPUT=str(folder / f"{name}.skops"))
    found["pixels_map"] = run("classify", INPUT=image, CLASSIFIER=found["pixels"]["OUTPUT"],
                              OUTPUT=str(folder / "pixels.tif"))["OUTPUT"]
    loader = df.load_classifier
    recorded: list[Recording] = []

    def recording_loader(*args, **kwargs):
        classifier, description = loader(*args, **kwargs)
        recorded.append(Recording(classifier))
        return recorded[-1], description

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(df, "load_classifier", recording_loader)
        patch.setattr(df, "DEEP_BLOCK", 1 << 24)  # the whole scene in one block
        found["context_map"] = run("classify", INPUT=image, CLASSIFIER=found["context"]["OUTPUT"],
                                   OUTPUT=str(folder / "context.tif"))["OUTPUT"]
    found["classify_features"] = np.concatenate(recorded[0].seen)
    return found


def test_features_are_the_centre_pixel_and_the_neighbourhood_mean_and_std_without_nodata(nc_rf):
    description = json.loads(Path(nc_rf["context"]["DESCRIPTION"]).read_text(encoding="utf-8"))
    assert description["kind"] == "pixels_neighbourhood" and description["neighbourhood"] == N
    assert description["patch_size"] == N and description["nodata"] == [NODATA] * 5
    assert description["n_features"] == nc_rf["context"]["N_FEATURES"] == 15
    dataset = labelled.load_dataset(nc_rf["dataset"], "DATASET")
    features = labelled.dataset_features(dataset, featuremodule.reload_extractor(description), Reporter())
    patches = PatchesImage(dataset.source["patches"], PATCH).read().astype(np.float64)
    offset = PATCH // 2 - N // 2
    window = patches[:, offset:offset + N, offset:offset + N, :]
    window[(window == NODATA).any(axis=-1)] = np.nan
    assert np.isnan(window).any() and not np.isnan(window[:, N // 2, N // 2]).any()  # nodata around some samples
    expected = np.concatenate([window[:, N // 2, N // 2], np.nanmean(window, axis=(1, 2)),
                               np.nanstd(window, axis=(1, 2))], axis=1)
    np.testing.assert_allclose(features, expected, rtol=1e-6, atol=1e-4)
    pixel_features = labelled.dataset_features(dataset, featuremodule.FeatureExtractor("pixels", 5), Reporter())
    np.testing.assert_array_equal(features[:, :5], pixel_features)


def test_classify_computes_the_features_the_classifier_was_trained_on(nc_rf):
    description = json.loads(Path(nc_rf["context"]["DESCRIPTION"]).read_text(encoding="utf-8"))
    dataset = labelled.load_dataset(nc_rf["dataset"], "DATASET")
    training = labelled.dataset_features(dataset, featuremodule.reload_extractor(description), Reporter())
    classified = nc_rf["classify_features"]
    assert classified.dtype == training.dtype == np.float32
    values, nodata = class_map(nc_rf["context_map"])
    assert len(classified) == int((values != nodata).sum())
    seen = {row.tobytes() for row in classified}
    found = [row.tobytes() in seen for row in training]  # bit for bit, patches touching nodata included
    assert all(found), f"{found.count(False)} of {len(found)} training samples get other features in Classify"


def test_contextual_map_is_seamless_tiled_equals_whole(nc_rf, tmp_path, monkeypatch):
    monkeypatch.setattr(df, "DEEP_BLOCK", 489 * 3)  # windows of 3 rows: 148 block edges
    monkeypatch.setattr(df, "CHUNK_PIXELS", 500)
    out = run("classify", INPUT=nc_rf["image"], CLASSIFIER=nc_rf["context"]["OUTPUT"], OUTPUT=str(tmp_path / "t.tif"))
    (tiled, _), (whole, nodata) = class_map(out["OUTPUT"]), class_map(nc_rf["context_map"])
    missing = (gdal.Open(nc_rf["image"]).ReadAsArray() == NODATA).any(axis=0)
    assert np.array_equal(tiled, whole) and np.array_equal(whole == nodata, missing)


def test_neighbourhood_that_does_not_fit_and_features_with_a_model_are_refused(nc_rf, tmp_path):
    with pytest.raises(PatchFlowError, match="NEIGHBOURHOOD 7 or less") as caught:
        run("train_classifier", DATASET=nc_rf["dataset"], FEATURES="pixels_neighbourhood", NEIGHBOURHOOD=9,
            OUTPUT=str(tmp_path / "c.skops"))
    assert caught.value.parameter == "NEIGHBOURHOOD"
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "saved_model.pb").write_bytes(b"")  # refused before the model is read
    with pytest.raises(PatchFlowError, match="clear MODEL") as caught:
        run("train_classifier", DATASET=nc_rf["dataset"], FEATURES="pixels_neighbourhood",
            MODEL=str(tmp_path / "model" / "saved_model.pb"), OUTPUT=str(tmp_path / "c.skops"))
    assert caught.value.parameter == "FEATURES"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    whole = run("train_classifier", DATASET=nc_rf["dataset"], FEATURES="pixels_neighbourhood", NEIGHBOURHOOD=0,
                N_TREES=2, OUTPUT=str(tmp_path / "c.skops"))
    assert json.loads(Path(whole["DESCRIPTION"]).read_text(encoding="utf-8"))["neighbourhood"] == PATCH


def class_map(path: str) -> tuple[np.ndarray, float]:
    ds = gdal.Open(path)  # held while its band is read: a band does not keep its dataset alive
    band = ds.GetRasterBand(1)
    return band.ReadAsArray(), band.GetNoDataValue()


def map_at_points(path: str, points: Path, classes: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(reference, map class; -1 where the map has none) at every point: read directly."""
    xs, ys, fields, _ = read_points(points)
    ids = {c["name"].lower(): c["id"] for c in classes}
    reference = np.array([ids[label.lower()] for label in fields["label"]])
    values, nodata = class_map(path)
    cols, rows = to_pixels(path, xs, ys)
    inside = (cols >= 0) & (rows >= 0) & (cols < values.shape[1]) & (rows < values.shape[0])
    mapped = np.full(len(xs), -1, dtype=np.int64)
    mapped[inside] = np.where(values[rows[inside], cols[inside]] == nodata, -1, values[rows[inside], cols[inside]])
    return reference, mapped


def test_pixel_and_contextual_rf_compared_at_the_independent_points(nc, nc_rf, tmp_path):
    points = nc / "landsat96_points.shp"
    classes = nc_rf["pixels"]["CLASSES"]
    reports, direct = [], []
    for name in ("pixels", "context"):
        out = run("assess_accuracy", INPUT=nc_rf[f"{name}_map"], REFERENCE=str(points), CLASS_FIELD="label",
                  OUTPUT_CSV=str(tmp_path / f"{name}.csv"))
        assert out["PAIRS"] == str(tmp_path / f"{name}_pairs.csv")
        rows = list(csv.DictReader(open(out["PAIRS"], encoding="utf-8")))
        assert len(rows) == 1000 and sum(1 for r in rows if r["predicted"]) == out["N"] > 700
        reports.append(out)
        direct.append(map_at_points(nc_rf[f"{name}_map"], points, classes))
    reference, pixel_map = direct[0]
    _, context_map = direct[1]
    both = (pixel_map >= 0) & (context_map >= 0)
    reference, pixel_map, context_map = reference[both], pixel_map[both], context_map[both]
    assert reports[1]["KAPPA"] == pytest.approx(sk.cohen_kappa_score(reference, context_map))
    out = run("compare_accuracy", REPORTS=[r["OUTPUT_CSV"] for r in reports], NAMES="pixel RF;contextual RF",
              RESAMPLES=200, SEED=3, OUTPUT_CSV=str(tmp_path / "c.csv"), OUTPUT_HTML=str(tmp_path / "c.html"))
    b = int(((pixel_map == reference) & (context_map != reference)).sum())
    c = int(((pixel_map != reference) & (context_map == reference)).sum())
    assert b + c >= significance.EXACT_BELOW
    assert out["MCNEMAR_P"] == pytest.approx(stats.chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1), rel=1e-9)
    best = out["BEST"]
    best_map = context_map if best == "contextual RF" else pixel_map
    rng = np.random.default_rng(3)
    kappas = []
    for _ in range(200):
        drawn = rng.integers(0, len(reference), len(reference))
        kappas.append(sk.cohen_kappa_score(reference[drawn], best_map[drawn]))
    assert (out["BEST_KAPPA_LOW"], out["BEST_KAPPA_HIGH"]) == pytest.approx(
        tuple(np.percentile(kappas, [2.5, 97.5])), abs=1e-9)
    assert out["BEST_KAPPA_LOW"] < out["BEST_KAPPA"] < out["BEST_KAPPA_HIGH"]
    verdict = "not significant" if out["MCNEMAR_P"] >= 0.05 else "significant"
    assert out["SIGNIFICANCE"].startswith(f"{best}'s kappa is") and f"difference is {verdict} at 5 %" in \
        out["SIGNIFICANCE"]
    tests = list(csv.DictReader(open(out["SIGNIFICANCE_CSV"], encoding="utf-8")))
    assert len(tests) == 1 and float(tests[0]["McNemar p"]) == pytest.approx(out["MCNEMAR_P"], abs=1e-4)
    assert (int(tests[0]["right only in first"]), int(tests[0]["right only in second"])) == (b, c)
    table = list(csv.DictReader(open(tmp_path / "c.csv", encoding="utf-8")))
    assert all(float(r["kappa low"]) < float(r["kappa"]) < float(r["kappa high"]) for r in table)
    page = (tmp_path / "c.html").read_text(encoding="utf-8")
    assert "Is the difference significant?" in page and html.escape(out["SIGNIFICANCE"]) in page
