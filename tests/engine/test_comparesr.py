"""compare_sr (engine/experiment): does super-resolution help? On a small synthetic scene: the figures in
the JSON equal a recomputation from the written maps (scikit-learn's kappa), REPEATS=2 gives sds and
intervals, the CSV and the HTML say the same, strict JSON, nothing beside the inputs; the answer's sign
follows the numbers; bad inputs and an output over the inputs are refused before any work; a cancel
leaves nothing."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from patchflow.plugin import protocol
from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.experiment import srscene, srscores
from patchflow.plugin.engine.geodata.classes import ClassInfo
from patchflow.plugin.engine.reporting import Reporter
from patchflow.plugin.engine.worker import run_job
from patchflow.tests.helpers import read_raster, write_points, write_raster

H, W, SCALE = 96, 128, 4
FAST = {"SCALE": SCALE, "CLASSIFIER": "rf", "REPEATS": 2, "SR_EPOCHS": 1, "SR_PATCH_SIZE": 4, "SAMPLES": 30,
        "RESAMPLES": 200}


def scene_files(folder):
    """A chequerboard of 8-px squares (classes 1 and 2) with noisy bands, and its label raster."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W]
    labels = np.where(((xx // 8) + (yy // 8)) % 2 == 0, 1, 2).astype(np.uint8)
    image = np.stack([labels * 50.0 + rng.normal(0, 10, (H, W)) for _ in range(3)]).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    return write_raster(folder / "hr.tif", image), write_raster(folder / "labels.tif", labels, nodata=0)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare_sr")
    hr, labels = scene_files(folder / "inputs")
    output = folder / "comparison"

    class Stages(Reporter):
        texts: list[str] = []

        def stage(self, text, percent=None, until=None, log=True):
            self.texts.append(text)
            super().stage(text, percent, until, log)

    reporter = Stages()
    result = run_job(protocol.Job("compare_sr", {"HR": hr, "LABELS": labels, **FAST, "OUTPUT": str(output)},
                                  "test-compare-sr"), reporter)
    return {"result": result, "output": output, "inputs": folder / "inputs", "labels": labels,
            "stages": reporter.texts, "progress": reporter.last_progress}


def strict(path):
    def refuse(constant):
        raise ValueError(f"non-strict JSON constant {constant}")

    with open(path, encoding="utf-8") as stream:
        return json.load(stream, parse_constant=refuse)


@pytest.mark.slow
def test_figures_equal_a_recomputation_from_the_written_maps(run):
    from osgeo import gdal
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

    comparison = strict(run["output"] / "comparison.json")
    labels = read_raster(run["labels"]).astype(np.int64)
    column = int(W * 0.6) // SCALE * SCALE
    rows, cols = np.nonzero(labels[:, column:] > 0)
    cols = cols + column
    reference = labels[rows, cols]
    assert comparison["pixels"] == len(reference) == run["result"]["PIXELS"]  # every map covers the held-out part
    for key in ("lr", "bicubic", "sr", "hr"):
        version = comparison["versions"][key]
        assert len(version["maps"]) == 2
        kappas = []
        for index, name in enumerate(version["maps"]):
            ds = gdal.Open(str(run["output"] / name))
            factor = round(abs(ds.GetGeoTransform()[1]))  # the LR map: 4 HR pixels a side
            predicted = ds.ReadAsArray()[rows // factor, cols // factor]
            kappas.append(cohen_kappa_score(reference, predicted))
            assert version["kappa"]["repeats"][index] == pytest.approx(kappas[-1], abs=1e-9)
            assert version["OA"]["repeats"][index] == pytest.approx(accuracy_score(reference, predicted), abs=1e-9)
            assert version["macro F1"]["repeats"][index] == pytest.approx(
                f1_score(reference, predicted, average="macro"), abs=1e-9)
        assert version["kappa"]["mean"] == pytest.approx(np.mean(kappas))
        assert version["kappa"]["sd"] == pytest.approx(np.std(kappas, ddof=1))  # REPEATS=2: an sd
        low, high = version["intervals"]["kappa"]
        assert low <= high and low - 1e-9 <= version["kappa"]["mean"] <= high + 1e-9
        assert run["result"][f"KAPPA_{key.upper()}"] == pytest.approx(version["kappa"]["mean"])
    assert comparison["versions"]["lr"]["pixel_size"] == SCALE and comparison["versions"]["hr"]["pixel_size"] == 1
    sr_bicubic = comparison["tests"][0]
    assert (sr_bicubic["first"], sr_bicubic["second"]) == ("sr", "bicubic")
    gain = comparison["versions"]["sr"]["kappa"]["mean"] - comparison["versions"]["bicubic"]["kappa"]["mean"]
    assert sr_bicubic["kappa_difference"] == pytest.approx(gain) == run["result"]["SR_GAIN"]
    assert 0 <= sr_bicubic["mcnemar_p"] <= 1 and len(sr_bicubic["mcnemar_p_per_repeat"]) == 2
    assert run["result"]["ANSWER"] == comparison["answer"]
    assert f"{gain:+.3f} kappa" in comparison["answer"]
    # the image quality of SR against the baselines, on the held-out part
    quality = comparison["quality"]
    assert {"PSNR", "BASELINE_PSNR", "LANCZOS_PSNR", "SHARPENED_PSNR"} <= set(quality)
    assert quality["PIXELS"] == H * (W - column)


@pytest.mark.slow
def test_csv_html_and_the_folder(run):
    comparison = strict(run["output"] / "comparison.json")
    with open(run["output"] / "comparison.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["version"] for row in rows] == ["LR", "bicubic", "SR", "HR"]
    for row, key in zip(rows, ("lr", "bicubic", "sr", "hr")):
        version = comparison["versions"][key]
        assert float(row["kappa mean"]) == pytest.approx(version["kappa"]["mean"], abs=1e-6)
        assert float(row["kappa sd"]) == pytest.approx(version["kappa"]["sd"], abs=1e-6)
        assert float(row["kappa low"]) == pytest.approx(version["intervals"]["kappa"][0], abs=1e-6)
    html = (run["output"] / "comparison.html").read_text(encoding="utf-8")
    assert comparison["answer"].split(":")[0] in html
    assert html.count('src="data:image/png;base64,') == 8  # four images and four maps of one zoomed area
    assert sorted(p.name for p in (run["output"] / "thumbnails").iterdir()) == sorted(
        f"{kind}_{key}.png" for kind in ("image", "map") for key in ("lr", "bicubic", "sr", "hr"))
    for name in ("images/lr.tif", "images/bicubic.tif", "images/sr.tif", "sr_model/saved_model.pb", "quality.csv"):
        assert (run["output"] / name).exists(), name
    assert not (run["output"] / ".work").exists()
    assert sorted(p.name for p in run["inputs"].iterdir()) == ["hr.tif", "labels.tif"]  # nothing beside the inputs
    assert not [p for p in run["output"].parent.iterdir() if p.name.startswith(".patchflow-staging")]


@pytest.mark.slow
def test_progress_names_the_version_and_the_repeat(run):
    for text in ("super-resolution: training the SR generator (1 epoch)", "version 1/4 (LR), repeat 1/2: training",
                 "version 2/4 (bicubic), repeat 2/2: classifying", "version 4/4 (HR), repeat 2/2: training",
                 "scoring the maps on the held-out part"):
        assert text in run["stages"], (text, run["stages"])
    assert run["progress"] == 100


@pytest.mark.slow
def test_bicubic_is_gdal_cubic(run):
    from osgeo import gdal

    made = gdal.Open(str(run["output"] / "images" / "bicubic.tif")).ReadAsArray()
    lr = str(run["output"] / "images" / "lr.tif")
    cubic = gdal.Warp("", lr, format="MEM", width=W, height=H, resampleAlg="cubic").ReadAsArray()
    spline = gdal.Warp("", lr, format="MEM", width=W, height=H, resampleAlg="cubicspline").ReadAsArray()
    np.testing.assert_allclose(made, cubic)
    assert not np.allclose(made, spline)


def assessed(sr_right, bicubic_right, repeats: int = 3, n: int = 400) -> srscores.Assessed:
    """Maps right at a given share of the pixels (one share, or one per repeat; other pixels each repeat)."""
    rng = np.random.default_rng(1)
    reference = rng.integers(1, 3, n)

    def maps(share) -> list[np.ndarray]:
        shares = share if isinstance(share, list) else [share] * repeats
        return [np.where(rng.random(n) < s, reference, 3 - reference) for s in shares]

    predicted = {"lr": maps(0.6), "bicubic": maps(bicubic_right), "sr": maps(sr_right), "hr": maps(0.95)}
    return srscores.Assessed(reference, predicted, [ClassInfo(1, "a", "#000000"), ClassInfo(2, "b", "#ffffff")], n)


@pytest.mark.parametrize(("sr_right", "bicubic_right", "start"), [
    (0.9, 0.7, "SR helps the FCNN: +"), (0.7, 0.9, "SR hurts the FCNN: -"), (0.8, 0.8, "No evidence that SR helps"),
    ([0.99, 0.75, 0.99], [0.75, 0.8, 0.75], "SR may help the FCNN, but not consistently across the seeds: +")])
def test_the_answer_follows_the_numbers(sr_right, bicubic_right, start):
    data = assessed(sr_right, bicubic_right)
    scores = {key: srscores.version_scores(data, key) for key in data.predicted}
    test = srscores.pair_test(data, scores, srscores.bootstrap_means(data, 300, 0), "sr", "bicubic")
    sentence = srscores.answer("FCNN", test, 3)
    assert sentence.startswith(start), sentence
    assert f"{test['kappa_difference']:+.3f} kappa" in sentence and f"p = {test['mcnemar_p']:.3g}" in sentence


def test_the_answer_flips_when_the_scores_do(monkeypatch):
    """The same pixels, the scores monkeypatched: the sentence is computed from them, not written in."""
    data = assessed(0.9, 0.7)
    real = srscores.version_scores
    monkeypatch.setattr(srscores, "version_scores", lambda a, key: real(a, {"sr": "bicubic", "bicubic": "sr"}.get(
        key, key)))
    swapped = {key: srscores.version_scores(data, key) for key in data.predicted}
    data.predicted["sr"], data.predicted["bicubic"] = data.predicted["bicubic"], data.predicted["sr"]
    test = srscores.pair_test(data, swapped, srscores.bootstrap_means(data, 300, 0), "sr", "bicubic")
    assert srscores.answer("FCNN", test, 3).startswith("SR hurts the FCNN: -")


def test_paired_test_needs_two_repeats():
    assert srscores.paired_t([0.5], [0.6]) is None
    assert srscores.paired_t([0.5, 0.6], [0.6, 0.7]) is None  # every difference the same: no variance
    assert 0 < srscores.paired_t([0.5, 0.6, 0.55], [0.6, 0.65, 0.7]) < 1


def test_vector_labels_and_polygon_split(tmp_path):
    from osgeo import ogr, osr

    hr, _ = scene_files(tmp_path)
    grid = srscene.hr_grid(hr)
    x0, y0 = grid.x0, grid.y0
    points = write_points(tmp_path / "points.gpkg", [x0 + 10.5, x0 + 100.5, x0 + 20.5], [y0 - 5.5, y0 - 50.5, y0 - 7.5],
                          {"kind": ["water", "field", "field"]})
    labels, classes = srscene.vector_labels(points, "kind", grid)
    assert [c.name for c in classes] == ["field", "water"]  # text values: sorted, ids 0..N-1
    assert labels[5, 10] == 1 and labels[50, 100] == 0 and labels[7, 20] == 0 and (labels != srscene.NONE).sum() == 3

    def polygons(name, x_from, x_to):
        srs = osr.SpatialReference()
        srs.ImportFromWkt(grid.crs_wkt)
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / name))
        layer = ds.CreateLayer("area", srs, ogr.wkbPolygon)
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(ogr.CreateGeometryFromWkt(
            f"POLYGON(({x0 + x_from} {y0},{x0 + x_to} {y0},{x0 + x_to} {y0 - H},{x0 + x_from} {y0 - H},"
            f"{x0 + x_from} {y0}))"))
        layer.CreateFeature(feature)
        ds = None
        return str(tmp_path / name)

    full = np.where(np.arange(W)[None, :] < W // 2, 1, 2).repeat(H, 0)
    info = [ClassInfo(1, "a", ""), ClassInfo(2, "b", "")]
    scene = srscene.make_scene(full, info, grid, 0.6, SCALE, (polygons("train.gpkg", 0, 40), polygons("test.gpkg", 80,
                                                                                                      W)))
    assert scene.train[:, :40].all() and not scene.train[:, 40:].any() and scene.test[:, 80:].all()
    assert scene.column is None and all(c.color for c in scene.classes)  # colours filled in
    with pytest.raises(PatchFlowError, match="overlap") as caught:
        srscene.make_scene(full, info, grid, 0.6, SCALE, (polygons("a.gpkg", 0, 90), polygons("b.gpkg", 80, W)))
    assert caught.value.parameter == "TEST_AREA"


@pytest.mark.parametrize(("extra", "parameter"), [
    ({"REFERENCE": "labels"}, "LABELS"),  # both label sources
    ({"LABELS": None}, "LABELS"),  # neither
    ({"TRAIN_AREA": "hr"}, "TEST_AREA"),  # a training area without a held-out one: the missing one named
    ({"TRAIN_SHARE": 0.95}, "TRAIN_SHARE"),
    ({"SCALE": 9}, "SCALE"),
])
def test_bad_inputs_are_refused_before_any_work(tmp_path, extra, parameter):
    hr, labels = scene_files(tmp_path / "inputs")
    values = {"HR": hr, "LABELS": labels, **FAST, "OUTPUT": str(tmp_path / "out")}
    values.update({k: {"labels": labels, "hr": hr}.get(v, v) if isinstance(v, str) else v for k, v in extra.items()})
    with pytest.raises(PatchFlowError) as caught:
        run_job(protocol.Job("compare_sr", values, "bad"), Reporter())
    assert caught.value.parameter == parameter, str(caught.value)
    assert not (tmp_path / "out").exists()


def test_an_output_over_the_inputs_is_refused(tmp_path):
    hr, labels = scene_files(tmp_path / "inputs")
    for output, overwrite in ((hr, False), (str(tmp_path / "inputs"), False), (str(tmp_path / "inputs"), True)):
        with pytest.raises(PatchFlowError):
            run_job(protocol.Job("compare_sr", {"HR": hr, "LABELS": labels, **FAST, "OUTPUT": output,
                                                "OVERWRITE": overwrite}, "over"), Reporter())
    assert sorted(p.name for p in (tmp_path / "inputs").iterdir()) == ["hr.tif", "labels.tif"]


@pytest.mark.slow
def test_cancel_leaves_nothing(tmp_path, run_cancelled):
    hr, labels = scene_files(tmp_path / "inputs")
    error = run_cancelled("compare_sr", after=6, HR=hr, LABELS=labels, **FAST, OUTPUT=str(tmp_path / "out"))
    assert type(error).__name__ == "Cancelled"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]
    assert sorted(p.name for p in (tmp_path / "inputs").iterdir()) == ["hr.tif", "labels.tif"]


@pytest.mark.parametrize(("best", "caveat"), [(0.013, True), (0.19, True), (0.2, False), (0.75, False)])
def test_a_difference_between_maps_that_all_fail_says_so(best, caveat):
    data = assessed(0.9, 0.7)
    scores = {key: srscores.version_scores(data, key) for key in data.predicted}
    test = srscores.pair_test(data, scores, srscores.bootstrap_means(data, 300, 0), "sr", "bicubic")
    sentence = srscores.answer("Random Forest", test, 3, best)
    assert sentence.startswith("SR helps the Random Forest: +") and sentence.endswith(".")
    assert ("no version maps the classes" in sentence) == caveat, sentence
    if caveat:
        assert f"the best mean kappa is {best:.3f}" in sentence


def test_one_repeat_never_says_helps():
    """Neighbouring pixels make McNemar's p tiny; with one seed the spread across seeds is unknown."""
    data = assessed(0.9, 0.7)
    scores = {key: srscores.version_scores(data, key) for key in data.predicted}
    test = srscores.pair_test(data, scores, srscores.bootstrap_means(data, 300, 0), "sr", "bicubic")
    assert srscores.answer("FCNN", test, 3).startswith("SR helps the FCNN: +")
    one = srscores.answer("FCNN", test, 1)
    assert one.startswith("SR may help the FCNN, but with one repeat") and "REPEATS" in one


def test_a_p_value_below_the_smallest_double_is_not_written_zero():
    assert srscores.p_is(0.0) == "< 1e-300" and srscores.p_is(None) == "= n/a"
    assert srscores.p_is(0.000561) == "= 0.000561"
    test = {"kappa_difference": -0.002, "kappa_difference_interval": (-0.0025, -0.0015), "mcnemar_p": 0.0,
            "paired_t_p": 0.622}
    sentence = srscores.answer("FCNN", test, 3, 0.007)
    assert "McNemar p < 1e-300" in sentence and "p = 0," not in sentence
    assert sentence.startswith("SR may hurt the FCNN, but not consistently") and "no version maps" in sentence
