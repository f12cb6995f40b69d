"""NaN and infinity are nodata in every read path. A window of the real NC Landsat-7 scene, converted to
Float32 with NaN rows (all bands, and one band only) and a few +-infinite pixels, gives in every operation
what the same window gives where those pixels hold the nodata value (declared); no output pixel, sample or
patch value comes from a non-finite input. A dataset whose patches hold non-finite values is refused."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from osgeo import gdal, ogr

from patchflow.plugin.engine.errors import PatchFlowError

NODATA = -99999.0
WINDOW = (25, 16, 240, 200)  # xoff, yoff, width, height of the NC scene: free of the scene's own nodata
NAN_ROWS = [30, 31, 32, 33, 140]  # NaN in every band (rows that hold labelled pixels)
ONE_BAND_ROW = (100, 2)  # row 100: NaN in band 3 only
INFINITE = [(150, 40, 0, np.inf), (45, 200, 1, np.inf), (160, 20, 4, -np.inf), (141, 120, 3, np.inf)]


def strict_load(path) -> dict:
    def refuse(name):
        raise ValueError(f"{path}: {name} is not strict JSON")

    return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=refuse)


def write(path: Path, array: np.ndarray, nodata: float | None, like: gdal.Dataset) -> str:
    """A Float32 GeoTIFF of (bands, rows, cols) on the window's grid."""
    data = array[np.newaxis] if array.ndim == 2 else array
    x0, dx, _, y0, _, dy = like.GetGeoTransform()
    ds = gdal.GetDriverByName("GTiff").Create(str(path), data.shape[2], data.shape[1], data.shape[0],
                                              gdal.GDT_Float32)
    ds.SetGeoTransform((x0 + WINDOW[0] * dx, dx, 0.0, y0 + WINDOW[1] * dy, 0.0, dy))
    ds.SetProjection(like.GetProjection())
    for index, band in enumerate(data, start=1):
        ds.GetRasterBand(index).WriteArray(band)
        if nodata is not None:
            ds.GetRasterBand(index).SetNoDataValue(nodata)
    ds = None
    return str(path)


def non_finite_mask(bands: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(bands, rows, cols) values to write (NaN, +-inf, else 0) and where they go."""
    values = np.zeros((bands, *shape), np.float32)
    where = np.zeros(values.shape, bool)
    where[:, NAN_ROWS] = True
    values[:, NAN_ROWS] = np.nan
    if bands > ONE_BAND_ROW[1]:
        where[ONE_BAND_ROW[1], ONE_BAND_ROW[0]] = True
        values[ONE_BAND_ROW[1], ONE_BAND_ROW[0]] = np.nan
    for row, col, band, value in INFINITE:
        band = min(band, bands - 1)
        where[band, row, col], values[band, row, col] = True, value
    return values, where


@pytest.fixture(scope="module")
def scene(nc, tmp_path_factory) -> SimpleNamespace:
    """nan.tif (NaN/inf, no nodata declared), declared.tif (the same, nodata -99999 declared) and ref.tif
    (-99999 there, declared); orig.tif (the window untouched); label rasters the same way."""
    folder = tmp_path_factory.mktemp("nonfinite")
    source = gdal.Open(str(nc / "landsat_multiband.tif"))
    image = source.ReadAsArray(*WINDOW).astype(np.float32)
    assert not (image == NODATA).any()
    values, bad = non_finite_mask(image.shape[0], image.shape[1:])
    nan_image = np.where(bad, values, image)
    ref_image = np.where(bad, np.float32(NODATA), image)
    labels_ds = gdal.Open(str(nc / "landsat96_labelled_pixels.tif"))
    labels = labels_ds.ReadAsArray(*WINDOW).astype(np.float32)
    label_values, label_bad = non_finite_mask(1, labels.shape)
    label_bad &= labels[np.newaxis] != NODATA  # the non-finite labels replace labelled pixels
    assert label_bad.sum() >= 20
    return SimpleNamespace(
        folder=folder, scene=str(nc / "landsat_multiband.tif"), image=image, bad=bad.any(axis=0), band_bad=bad,
        labels=labels, label_bad=label_bad[0],
        orig=write(folder / "orig.tif", image, NODATA, source),
        nan=write(folder / "nan.tif", nan_image, None, source),
        declared=write(folder / "declared.tif", nan_image, NODATA, source),
        ref=write(folder / "ref.tif", ref_image, NODATA, source),
        labels_nan=write(folder / "labels_nan.tif", np.where(label_bad[0], label_values[0], labels), NODATA,
                         labels_ds),
        labels_ref=write(folder / "labels_ref.tif", np.where(label_bad[0], np.float32(NODATA), labels), NODATA,
                         labels_ds),
        points=str(nc / "landsat96_points.shp"), polygons=str(nc / "landsat96_polygons.shp"))


def read(path) -> np.ndarray:
    ds = gdal.Open(str(path))
    values = ds.ReadAsArray()
    return values[np.newaxis] if values.ndim == 2 else values


def nodata_of(path) -> float | None:
    ds = gdal.Open(str(path))
    return ds.GetRasterBand(1).GetNoDataValue()


def points_of(path) -> list[tuple[float, float, int]]:
    ds = ogr.Open(str(path))
    layer = ds.GetLayer(0)
    found = sorted((round(f.GetGeometryRef().GetX(), 3), round(f.GetGeometryRef().GetY(), 3),
                    int(f.GetField("class") or 0)) for f in layer)
    layer = None
    ds = None
    return found


def pixel_of(path, x: float, y: float) -> tuple[int, int]:
    gt = gdal.Open(str(path)).GetGeoTransform()
    return int((y - gt[3]) // gt[5]), int((x - gt[0]) // gt[1])


def finite(array: np.ndarray) -> bool:
    return bool(np.isfinite(array).all())


# ---- the mask ---------------------------------------------------------------------------------------


def test_nodata_mask_holds_every_non_finite_value_whatever_the_declared_nodata():
    from patchflow.plugin.engine.geodata.raster import nodata_mask

    values = np.array([1.0, np.nan, np.inf, -np.inf, NODATA, 0.0], np.float32)
    for declared, expected in ((None, [0, 1, 1, 1, 0, 0]), (NODATA, [0, 1, 1, 1, 1, 0]),
                               (float("nan"), [0, 1, 1, 1, 0, 0]), (0.0, [0, 1, 1, 1, 0, 1])):
        assert nodata_mask(values, declared).tolist() == [bool(v) for v in expected], declared
    assert nodata_mask(np.array([0, 5, 255], np.uint8), 255).tolist() == [False, False, True]
    assert not nodata_mask(np.array([0, 5], np.int16), None).any()


def test_a_float_stack_without_nodata_masks_non_finite_values_in_any_band(scene):
    from patchflow.plugin.engine.geodata.raster import RasterStack

    stack = RasterStack([scene.nan], "INPUT")
    assert stack.nodata == [None] * 5 and stack.may_hold_nodata
    mask = stack.nodata_mask(stack.read((0, 0, WINDOW[2], WINDOW[3])))
    assert np.array_equal(mask, scene.bad)
    assert mask[ONE_BAND_ROW[0]].all() and mask[NAN_ROWS].all()  # one band's NaN is enough


# ---- sampling ----------------------------------------------------------------------------------------


def test_sampling_a_label_raster_with_non_finite_labels(run_op, scene, tmp_path):
    runs = {name: run_op("sample_label_raster", INPUT=getattr(scene, name), STRATEGY="all",
                         OUTPUT=str(tmp_path / f"{name}.gpkg"))[0] for name in ("labels_nan", "labels_ref")}
    assert runs["labels_nan"]["COUNT"] == runs["labels_ref"]["COUNT"] == \
        int((scene.labels != NODATA).sum() - scene.label_bad.sum())
    samples = points_of(runs["labels_nan"]["OUTPUT"])
    assert samples == points_of(runs["labels_ref"]["OUTPUT"])
    assert not any(scene.label_bad[pixel_of(scene.labels_nan, x, y)] for x, y, _ in samples)


def test_sampling_polygons_skips_pixels_where_any_band_of_the_raster_is_non_finite(run_op, scene, tmp_path):
    runs = {name: run_op("sample_vector", INPUT=scene.polygons, FIELD="id", RASTER=getattr(scene, name),
                         STRATEGY="all", OUTPUT=str(tmp_path / f"{name}.gpkg"))[0] for name in ("orig", "nan", "ref")}
    samples = points_of(runs["nan"]["OUTPUT"])
    assert samples == points_of(runs["ref"]["OUTPUT"])
    everywhere = points_of(runs["orig"]["OUTPUT"])
    on_bad = [s for s in everywhere if scene.bad[pixel_of(scene.orig, s[0], s[1])]]
    assert on_bad and len(samples) == len(everywhere) - len(on_bad)  # polygons cross the NaN rows
    assert set(samples) == set(everywhere) - set(on_bad)


# ---- patch extraction and training -------------------------------------------------------------------


def extract(run_op, folder: Path, raster: str, points: str, **options) -> tuple[dict, dict]:
    out, reporter = run_op("extract_patches", INPUT=points, SOURCE1=raster, PATCH_SIZE1=8, CLASS_FIELD="id",
                           OUTPUT=str(folder / "dataset.json"), **options)
    return out, strict_load(out["OUTPUT"])


def stats_of(manifest: dict) -> list[dict]:
    return [{k: band[k] for k in ("mean", "std", "min", "max", "nonfinite")}
            for band in manifest["sources"][0]["bands"]]


def test_extracted_patches_never_hold_non_finite_values(run_op, scene, tmp_path):
    runs = {name: extract(run_op, tmp_path / name, getattr(scene, name), scene.points)
            for name in ("nan", "declared", "ref", "orig")}
    ref_out, ref_manifest = runs["ref"]
    ref_patches = read(ref_out["PATCHES1"])
    assert 0 < ref_out["DROPPED_NODATA"] and ref_out["COUNT"] < runs["orig"][0]["COUNT"]
    for name in ("nan", "declared"):
        out, manifest = runs[name]
        assert (out["COUNT"], out["DROPPED_NODATA"]) == (ref_out["COUNT"], ref_out["DROPPED_NODATA"])
        patches = read(out["PATCHES1"])
        assert finite(patches) and np.array_equal(patches, ref_patches)
        assert np.array_equal(read(out["LABELS"]), read(ref_out["LABELS"]))
        assert stats_of(manifest) == stats_of(ref_manifest)
        assert all(band["nonfinite"] == 0 and np.isfinite(band["mean"]) for band in manifest["sources"][0]["bands"])


def test_patches_kept_with_nodata_hold_the_nodata_value_not_nan(run_op, scene, tmp_path):
    declared, declared_manifest = extract(run_op, tmp_path / "declared", scene.declared, scene.points,
                                          SKIP_NODATA=False)
    ref, ref_manifest = extract(run_op, tmp_path / "ref", scene.ref, scene.points, SKIP_NODATA=False)
    patches = read(declared["PATCHES1"])
    assert finite(patches) and (patches == NODATA).any()
    assert np.array_equal(patches, read(ref["PATCHES1"])) and stats_of(declared_manifest) == stats_of(ref_manifest)


@pytest.fixture(scope="module")
def datasets(scene, tmp_path_factory) -> dict:
    """Manifests: 'ref' (SKIP_NODATA on, clean), 'kept_nan' (SKIP_NODATA off, no nodata value: NaN kept)."""
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    folder = tmp_path_factory.mktemp("nonfinite_sets")
    found = {}
    for name, raster, skip in (("ref", scene.ref, True), ("kept_nan", scene.nan, False)):
        reporter = Reporter()
        out = run_job(protocol.Job("extract_patches", {
            "INPUT": scene.points, "SOURCE1": raster, "PATCH_SIZE1": 8, "CLASS_FIELD": "id", "SKIP_NODATA": skip,
            "OUTPUT": str(folder / name / "dataset.json")}, "t"), reporter)
        found[name], found[f"{name}_warnings"] = out["OUTPUT"], reporter.warnings
    return found


def test_a_dataset_holding_nan_is_refused_by_train_model_naming_train_or_valid(run_op, datasets, tmp_path):
    manifest = strict_load(datasets["kept_nan"])
    counts = [band["nonfinite"] for band in manifest["sources"][0]["bands"]]
    patches = read(Path(datasets["kept_nan"]).parent / manifest["sources"][0]["patches"])
    assert all(counts) and counts == [int((~np.isfinite(band)).sum()) for band in patches]
    assert any("Train model refuses" in w for w in datasets["kept_nan_warnings"])
    for train, valid, parameter in ((datasets["kept_nan"], None, "TRAIN"),
                                    (datasets["ref"], datasets["kept_nan"], "VALID")):
        with pytest.raises(PatchFlowError) as caught:
            run_op("train_model", TRAIN=train, **({"VALID": valid} if valid else {}), ARCHITECTURE="patch_cnn",
                   EPOCHS=1, OUTPUT=str(tmp_path / f"model_{parameter}"))
        assert caught.value.parameter == parameter
        assert "NaN or infinite" in str(caught.value) and "SKIP_NODATA" in str(caught.value)
        assert "source1 band 1" in str(caught.value)
        assert not (tmp_path / f"model_{parameter}").exists()
    with pytest.raises(PatchFlowError) as caught:
        run_op("train_classifier", DATASET=datasets["kept_nan"], OUTPUT=str(tmp_path / "rf.joblib"))
    assert caught.value.parameter == "DATASET" and "NaN or infinite" in str(caught.value)


def test_a_manifest_without_counts_is_checked_by_scanning_its_patches(datasets, tmp_path):
    """A manifest written elsewhere, or by a PatchFlow that wrote "mean": NaN and no count."""
    import shutil

    from patchflow.plugin.engine.data.datasets import PatchDataset

    for name in ("kept_nan", "ref"):
        folder = tmp_path / name
        shutil.copytree(Path(datasets[name]).parent, folder)
        path = folder / "dataset.json"
        manifest = json.loads(path.read_text())
        for band in manifest["sources"][0]["bands"]:
            del band["nonfinite"]
        path.write_text(json.dumps(manifest))
        if name == "ref":
            assert PatchDataset(str(path), "TRAIN").count == manifest["n_patches"]
        else:
            with pytest.raises(PatchFlowError) as caught:
                PatchDataset(str(path), "VALID")
            assert caught.value.parameter == "VALID" and "NaN or infinite" in str(caught.value)


def test_describe_patches_counts_non_finite_values_and_refuses_nan_labels(run_op, datasets, scene, tmp_path):
    manifest = strict_load(datasets["kept_nan"])
    folder = Path(datasets["kept_nan"]).parent
    patches = str(folder / manifest["sources"][0]["patches"])
    out, _ = run_op("describe_patches", PATCHES=[patches], OUTPUT=str(tmp_path / "described.json"))
    described = strict_load(out["OUTPUT"])
    assert [b["nonfinite"] for b in described["sources"][0]["bands"]] == \
        [b["nonfinite"] for b in manifest["sources"][0]["bands"]]
    assert all(np.isfinite(b["mean"]) for b in described["sources"][0]["bands"])
    labels = write(tmp_path / "labels.tif", np.full((manifest["n_patches"], 1), np.nan, np.float32), None,
                   gdal.Open(scene.scene))
    with pytest.raises(PatchFlowError) as caught:
        run_op("describe_patches", PATCHES=[patches], LABELS=labels, OUTPUT=str(tmp_path / "l.json"))
    assert caught.value.parameter == "LABELS" and "NaN" in str(caught.value)


def test_non_finite_labels_in_a_label_raster_source_become_its_nodata(run_op, scene, tmp_path):
    """Declared -99999, or none declared (NaN as 'unlabelled'): the label patches hold -99999 there."""
    undeclared = np.where(scene.labels == NODATA, np.float32(np.nan), read(scene.labels_nan)[0])
    labels_undeclared = write(tmp_path / "labels_undeclared.tif", undeclared, None, gdal.Open(scene.scene))
    runs = {}
    for name, path in (("nan", scene.labels_nan), ("undeclared", labels_undeclared), ("ref", scene.labels_ref)):
        runs[name], _ = run_op("extract_patches", INPUT=scene.points, SOURCE1=scene.ref, PATCH_SIZE1=8,
                               LABEL_RASTER=path, OUTPUT=str(tmp_path / name / "d.json"))
    ref_labels = read(runs["ref"]["LABEL_PATCHES"])
    for name in ("nan", "undeclared"):
        labels = read(runs[name]["LABEL_PATCHES"])
        assert finite(labels) and np.array_equal(labels, ref_labels) and (labels == NODATA).any()
        manifest = strict_load(runs[name]["OUTPUT"])
        assert manifest["classes"] == strict_load(runs["ref"]["OUTPUT"])["classes"]
        assert manifest["sources"][1]["bands"][0]["nodata"] == NODATA  # training leaves those pixels out


# ---- classification and serving ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier(datasets, tmp_path_factory) -> str:
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    folder = tmp_path_factory.mktemp("nonfinite_rf")
    out = run_job(protocol.Job("train_classifier", {"DATASET": datasets["ref"], "N_TREES": 20, "SEED": 1,
                                                    "OUTPUT": str(folder / "rf.joblib")}, "t"), Reporter())
    strict_load(out["DESCRIPTION"])
    return out["OUTPUT"]


def test_classify_with_a_per_pixel_classifier_leaves_non_finite_pixels_unclassified(run_op, scene, classifier,
                                                                                    tmp_path):
    runs = {name: run_op("classify", CLASSIFIER=classifier, INPUT=[getattr(scene, name)],
                         OUTPUT=str(tmp_path / f"{name}.tif"), OUTPUT_CONFIDENCE=str(tmp_path / f"{name}_c.tif"))[0]
            for name in ("nan", "declared", "ref")}
    ref = read(runs["ref"]["OUTPUT"])[0]
    nodata = nodata_of(runs["ref"]["OUTPUT"])
    assert (ref[scene.bad] == nodata).all() and (ref[~scene.bad] != nodata).all()
    for name in ("nan", "declared"):
        assert np.array_equal(read(runs[name]["OUTPUT"]), read(runs["ref"]["OUTPUT"]))
        assert np.array_equal(read(runs[name]["OUTPUT_CONFIDENCE"]), read(runs["ref"]["OUTPUT_CONFIDENCE"]))
        assert runs[name]["COUNT"] == runs["ref"]["COUNT"] == int((~scene.bad).sum())


@pytest.fixture(scope="module")
def models(scene, tmp_path_factory) -> dict:
    from patchflow.plugin.engine.models.modelcard import InputSpec, Normalization
    from patchflow.plugin.engine.models.zoo import build_model, export_model

    folder = tmp_path_factory.mktemp("nonfinite_models")
    image = scene.image.reshape(5, -1)
    norm = Normalization("standard", image.mean(axis=1).tolist(), image.std(axis=1).tolist())
    classes = [{"id": c, "name": f"class {c}", "color": "#808080"} for c in (1, 3, 5, 6)]
    found = {}
    for architecture, patch in (("fcnn", 32), ("patch_cnn", 16)):
        model, card = build_model(architecture, [InputSpec("x1", 5, patch, "source1", norm)], classes, width=4,
                                  seed=1)
        export_model(model, card, str(folder / architecture))
        found[architecture] = str(folder / architecture)
    return found


@pytest.mark.parametrize("architecture", ["fcnn", "patch_cnn"])
def test_apply_model_writes_nodata_where_the_input_is_non_finite(run_op, scene, models, tmp_path, architecture):
    runs = {name: run_op("apply_model", MODEL=models[architecture], SOURCE1=[getattr(scene, name)],
                         OUTPUTS="probabilities", OUTPUT=str(tmp_path / f"{name}.tif"))[0] for name in ("nan", "ref")}
    nan, ref = read(runs["nan"]["OUTPUT"]), read(runs["ref"]["OUTPUT"])
    assert finite(nan) and np.array_equal(nan, ref)
    nodata = nodata_of(runs["ref"]["OUTPUT"])
    assert nan.shape[1:] == scene.bad.shape  # one output pixel per input pixel
    assert (nan[:, scene.bad] == nodata).all() and (nan[:, ~scene.bad] != nodata).all()


# ---- image quality, SR datasets, grid split, accuracy -----------------------------------------------


def test_image_quality_leaves_non_finite_pixels_out(run_op, scene, tmp_path):
    source = gdal.Open(scene.scene)
    noisy = scene.image + np.random.default_rng(3).normal(0, 3, scene.image.shape).astype(np.float32)
    values, bad = non_finite_mask(5, scene.image.shape[1:])
    images = {"nan": write(tmp_path / "noisy_nan.tif", np.where(bad, values, noisy), None, source),
              "ref": write(tmp_path / "noisy_ref.tif", np.where(bad, np.float32(NODATA), noisy), NODATA, source)}
    keys = ("PIXELS", "PSNR", "SSIM", "SAM", "ERGAS", "DATA_RANGE")
    scores = {name: run_op("assess_image_quality", INPUT=path, REFERENCE=scene.orig,
                           OUTPUT_TABLE=str(tmp_path / name / "q.geojson"))[0] for name, path in images.items()}
    assert [scores["nan"][k] for k in keys] == [scores["ref"][k] for k in keys]
    assert scores["nan"]["PIXELS"] == int((~scene.bad).sum()) and np.isfinite(scores["nan"]["PSNR"])
    strict_load(scores["nan"]["OUTPUT_TABLE"])
    as_reference = {name: run_op("assess_image_quality", INPUT=scene.orig, REFERENCE=getattr(scene, name))[0]
                    for name in ("nan", "ref")}
    assert [as_reference["nan"][k] for k in keys] == [as_reference["ref"][k] for k in keys]


def test_a_resampled_baseline_interpolates_around_nan_as_around_nodata(run_op, scene, tmp_path):
    """LOW_RESOLUTION on a grid twice coarser is warped (bicubic): NaN is left out as a nodata value is."""
    low = scene.image.reshape(5, 100, 2, 120, 2).mean(axis=(2, 4)).astype(np.float32)
    low_bad = np.zeros(low.shape, bool)
    low_bad[:, [20, 21, 70]] = True
    x0, dx, _, y0, _, dy = gdal.Open(scene.orig).GetGeoTransform()
    paths = {}
    for name, values, nodata in (("nan", np.where(low_bad, np.float32(np.nan), low), None),
                                 ("ref", np.where(low_bad, np.float32(NODATA), low), NODATA)):
        ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / f"low_{name}.tif"), 120, 100, 5, gdal.GDT_Float32)
        ds.SetGeoTransform((x0, 2 * dx, 0.0, y0, 0.0, 2 * dy))
        ds.SetProjection(gdal.Open(scene.orig).GetProjection())
        for index in range(5):
            ds.GetRasterBand(index + 1).WriteArray(values[index])
            if nodata is not None:
                ds.GetRasterBand(index + 1).SetNoDataValue(nodata)
        ds = None
        paths[name] = str(tmp_path / f"low_{name}.tif")
    keys = ("PIXELS", "BASELINE_PSNR", "BASELINE_SSIM", "BASELINE_SAM", "BASELINE_ERGAS")
    runs = {name: run_op("assess_image_quality", INPUT=scene.orig, REFERENCE=scene.orig, LOW_RESOLUTION=path)[0]
            for name, path in paths.items()}
    assert [runs["nan"][k] for k in keys] == [runs["ref"][k] for k in keys]
    assert runs["nan"]["PIXELS"] < WINDOW[2] * WINDOW[3] and np.isfinite(runs["nan"]["BASELINE_PSNR"])


def test_super_resolution_pairs_never_touch_non_finite_pixels(run_op, scene, tmp_path):
    IGNORED = ("nodata", "raster", "description")  # noqa: N806 - what differs by the input's file and nodata
    runs = {}
    for name in ("nan", "ref"):
        runs[name], _ = run_op("build_sr_dataset", HR=[getattr(scene, name)], SCALE=2, PATCH_SIZE=8, VALID=0.3,
                               BLOCK_SIZE=2, SEED=1, OUTPUT_TRAIN=str(tmp_path / name / "train.json"),
                               OUTPUT_VALID=str(tmp_path / name / "valid.json"),
                               OUTPUT_LR=str(tmp_path / name / "lr.tif"))
    assert (runs["nan"]["COUNT_TRAIN"], runs["nan"]["COUNT_VALID"]) == \
        (runs["ref"]["COUNT_TRAIN"], runs["ref"]["COUNT_VALID"])
    for set_name in ("train", "valid"):
        manifests = {name: strict_load(tmp_path / name / f"{set_name}.json") for name in runs}
        assert manifests["nan"]["dropped"] == manifests["ref"]["dropped"] and manifests["nan"]["dropped"]["nodata"]
        for side in ("lr", "hr"):
            nan, ref = (read(tmp_path / name / f"{set_name}_{side}.tif") for name in ("nan", "ref"))
            assert finite(nan) and np.array_equal(nan, ref)
        for a, b in zip(manifests["nan"]["sources"], manifests["ref"]["sources"]):
            assert [{k: v for k, v in band.items() if k not in IGNORED} for band in a["bands"]] == \
                [{k: v for k, v in band.items() if k not in IGNORED} for band in b["bands"]]
    lr_nan, lr_ref = read(runs["nan"]["OUTPUT_LR"]), read(runs["ref"]["OUTPUT_LR"])
    missing = np.isnan(lr_nan)
    assert missing.any() and np.array_equal(missing, lr_ref == NODATA)  # the degraded LR: nodata where HR was
    assert np.array_equal(lr_nan[~missing], lr_ref[~missing])


def test_grid_split_leaves_out_patches_touching_non_finite_pixels(run_op, scene, tmp_path):
    runs = {name: run_op("grid_split", INPUT=getattr(scene, name), PATCH_SIZE=8, BLOCK_SIZE=2, SEED=1,
                         OUTPUT_TRAIN=str(tmp_path / name / "t.gpkg"), OUTPUT_VALID=str(tmp_path / name / "v.gpkg"))[0]
            for name in ("nan", "ref", "orig")}
    for key in ("OUTPUT_TRAIN", "OUTPUT_VALID"):
        assert points_of(runs["nan"][key]) == points_of(runs["ref"][key])
    total = {name: sum(len(points_of(runs[name][k])) for k in ("OUTPUT_TRAIN", "OUTPUT_VALID")) for name in runs}
    assert total["nan"] < total["orig"]


def test_accuracy_of_a_float_map_with_non_finite_classes(run_op, scene, nc_nearest_mean_map, tmp_path):
    classes = gdal.Open(str(nc_nearest_mean_map)).ReadAsArray(*WINDOW).astype(np.float32)
    values, bad = non_finite_mask(1, classes.shape)
    source = gdal.Open(scene.scene)
    maps = {"nan": write(tmp_path / "map_nan.tif", np.where(bad[0], values[0], classes), None, source),
            "ref": write(tmp_path / "map_ref.tif", np.where(bad[0], np.float32(NODATA), classes), NODATA, source)}
    keys = ("OA", "KAPPA", "N", "SKIPPED_NODATA", "MATRIX")
    runs = {name: run_op("assess_accuracy", INPUT=path, REFERENCE=scene.points, CLASS_FIELD="id",
                         OUTPUT_TABLE=str(tmp_path / name / "t.json"))[0] for name, path in maps.items()}
    assert [runs["nan"][k] for k in keys] == [runs["ref"][k] for k in keys] and runs["nan"]["SKIPPED_NODATA"] > 0
    strict_load(runs["nan"]["OUTPUT_TABLE"])
