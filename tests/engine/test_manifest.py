"""The dataset manifest: what extract_patches writes, load_manifest, and manifests for OTBTF
patches-images made elsewhere (describe_otbtf / describe_patches)."""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import pytest
from osgeo import gdal

from patchflow.plugin.engine.data import manifest as manifest_module
from patchflow.plugin.engine.data.patches import PatchesImage
from patchflow.plugin.engine.errors import PatchFlowError

ORIGIN = (600000.0, 5000000.0)


def error_of(call) -> PatchFlowError:
    with pytest.raises(PatchFlowError) as caught:
        call()
    return caught.value


def assert_stats(bands: list[dict], patches: np.ndarray) -> None:
    """Per-band mean/std/min/max of (n, p, p, bands) patches, computed here with numpy."""
    assert len(bands) == patches.shape[-1]
    for index, entry in enumerate(bands):
        values = patches[..., index].astype(np.float64).ravel()
        assert entry["mean"] == pytest.approx(values.mean(), rel=1e-9, abs=1e-9)
        assert entry["std"] == pytest.approx(values.std(), rel=1e-6, abs=1e-9)
        assert entry["min"] == pytest.approx(values.min())
        assert entry["max"] == pytest.approx(values.max())


@pytest.fixture
def dataset(run_op, gd, tmp_path):
    """A two-source extraction with a text class field; returns (outputs, manifest, inputs)."""
    rng = np.random.default_rng(2)
    image = rng.normal(50, 20, (3, 60, 60)).astype(np.float32)
    image_path = gd.write_raster(tmp_path / "image.tif", image, origin=ORIGIN, pixel=4.0)
    elevation = rng.integers(0, 400, (30, 30)).astype(np.int16)
    elevation_path = gd.write_raster(tmp_path / "dem.tif", elevation, origin=ORIGIN, pixel=8.0, nodata=-1)
    n = 90
    xs = ORIGIN[0] + rng.uniform(-20, 260, n)
    ys = ORIGIN[1] - rng.uniform(-20, 260, n)
    kinds = rng.choice(["water", "crop", "urban"], n).tolist()
    points = gd.write_points(tmp_path / "points.gpkg", xs, ys, {"kind": kinds})
    folder = tmp_path / "dataset"
    out, _ = run_op("extract_patches", INPUT=points, SOURCE1=image_path, PATCH_SIZE1=12, SOURCE2=elevation_path,
                    PATCH_SIZE2=6, CLASS_FIELD="kind", OUTPUT=str(folder / "train.json"))
    with open(out["OUTPUT"], encoding="utf-8") as handle:
        manifest = json.load(handle)
    return out, manifest, {"image": image_path, "dem": elevation_path, "points": points, "kinds": kinds,
                           "folder": folder}


def test_manifest_records_counts_sources_and_classes(dataset):
    out, manifest, inputs = dataset
    assert manifest["format"] == manifest_module.FORMAT
    assert manifest["version"] == manifest_module.VERSION
    assert manifest["n_points"] == 90
    assert manifest["n_patches"] == out["COUNT"] > 0
    assert manifest["dropped"] == {"outside": out["DROPPED_OUTSIDE"], "nodata": out["DROPPED_NODATA"]}
    assert out["COUNT"] + out["DROPPED_OUTSIDE"] + out["DROPPED_NODATA"] == 90
    assert out["DROPPED_OUTSIDE"] > 0
    assert "32631" in manifest["crs_label"]
    assert manifest["points"] == {"path": inputs["points"], "class_field": "kind"}
    image, dem = manifest["sources"]
    assert (image["name"], image["parameter"], image["role"]) == ("source1", "SOURCE1", "image")
    assert (image["patch_size"], image["pixel_size"], image["dtype"]) == (12, [4.0, -4.0], "float32")
    assert (dem["patch_size"], dem["pixel_size"], dem["dtype"]) == (6, [8.0, -8.0], "int16")
    assert image["rasters"] == [inputs["image"]] and dem["rasters"] == [inputs["dem"]]
    assert [b["raster_band"] for b in image["bands"]] == [1, 2, 3]
    assert [b["nodata"] for b in dem["bands"]] == [-1.0]
    assert len({b["description"] for b in image["bands"]}) == 3
    # patches-images are named relative to the manifest and sit beside it
    assert image["patches"] == "train_source1.tif" and dem["patches"] == "train_source2.tif"
    assert manifest["labels"]["patches"] == "train_labels.tif"
    assert sorted(os.listdir(inputs["folder"])) == ["train.json", "train_labels.tif", "train_positions.csv",
                                                    "train_source1.tif", "train_source2.tif"]
    assert manifest["positions"]["file"] == "train_positions.csv"  # the patch centres, one row per patch


def test_manifest_stats_match_the_patches(dataset):
    out, manifest, _ = dataset
    for source, key in zip(manifest["sources"], ("PATCHES1", "PATCHES2")):
        patches = PatchesImage(out[key]).read()
        assert len(patches) == manifest["n_patches"]
        assert_stats(source["bands"], patches)


def test_manifest_classes_have_names_and_counts(dataset):
    out, manifest, inputs = dataset
    labels = gdal.Open(out["LABELS"]).ReadAsArray().ravel()
    names = sorted(set(inputs["kinds"]))
    assert [(c["id"], c["name"]) for c in manifest["classes"]] == list(enumerate(names))
    counts = Counter(labels.tolist())
    assert {c["id"]: c["count"] for c in manifest["classes"]} == {i: counts.get(i, 0) for i in range(3)}
    assert sum(c["count"] for c in manifest["classes"]) == manifest["n_patches"]
    assert len({c["color"] for c in manifest["classes"]}) == 3
    assert manifest["labels"]["field"] == "kind"
    assert manifest["labels"]["dtype"] == "int64" or np.dtype(manifest["labels"]["dtype"]).kind in "iu"


def test_load_manifest_makes_paths_absolute(dataset, tmp_path):
    out, _, inputs = dataset
    loaded = manifest_module.load_manifest(out["OUTPUT"])
    for source in loaded["sources"]:
        assert os.path.isabs(source["patches"]) and os.path.exists(source["patches"])
    assert loaded["labels"]["patches"] == out["LABELS"]
    # the dataset folder can move: paths follow the manifest
    moved = tmp_path / "moved"
    os.rename(inputs["folder"], moved)
    loaded = manifest_module.load_manifest(str(moved / "train.json"))
    assert loaded["sources"][0]["patches"] == str(moved / "train_source1.tif")
    assert len(PatchesImage(loaded["sources"][1]["patches"])) == loaded["n_patches"]


def test_load_manifest_errors_name_the_parameter(tmp_path):
    missing = str(tmp_path / "none.json")
    assert error_of(lambda: manifest_module.load_manifest(missing, "DATASET")).parameter == "DATASET"
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert error_of(lambda: manifest_module.load_manifest(str(broken))).parameter == "INPUT"
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something-else", "sources": []}))
    error = error_of(lambda: manifest_module.load_manifest(str(other), "VALIDATION"))
    assert error.parameter == "VALIDATION" and manifest_module.FORMAT in error.message


# ---- OTBTF patches-images made elsewhere ----------------------------------------------------------


def test_describe_otbtf_amsterdam_patches(spot6):
    patches_a = str(spot6 / "amsterdam_patches_A.tif")
    labels_a = str(spot6 / "amsterdam_labels_A.tif")
    manifest = manifest_module.describe_otbtf([patches_a], [0], labels_a)
    assert manifest["format"] == manifest_module.FORMAT
    assert manifest["n_patches"] == 113
    (source,) = manifest["sources"]
    assert (source["patch_size"], len(source["bands"]), source["dtype"]) == (64, 4, "float32")
    assert source["patches"] == patches_a
    image = PatchesImage(patches_a)
    assert_stats(source["bands"], image.read())
    labels = gdal.Open(labels_a).ReadAsArray()
    assert {c["id"] for c in manifest["classes"]} == {0, 1}
    assert {c["id"]: c["count"] for c in manifest["classes"]} == {
        int(k): int(v) for k, v in zip(*np.unique(labels, return_counts=True))}
    assert sum(c["count"] for c in manifest["classes"]) == 113 * 64 * 64
    assert manifest["labels"]["patch_size"] == 64


@pytest.mark.parametrize(("part", "count"), [("A", 113), ("B", 112)])
def test_describe_patches_operation_writes_a_loadable_manifest(run_op, spot6, tmp_path, part, count):
    patches = str(spot6 / f"amsterdam_patches_{part}.tif")
    labels = str(spot6 / f"amsterdam_labels_{part}.tif")
    out, reporter = run_op("describe_patches", PATCHES=patches, LABELS=labels, PATCH_SIZE=64,
                           OUTPUT=str(tmp_path / "otbtf.json"))
    assert out == {"OUTPUT": str(tmp_path / "otbtf.json"), "COUNT": count}
    assert os.listdir(tmp_path) == ["otbtf.json"]
    loaded = manifest_module.load_manifest(out["OUTPUT"])
    assert [s["patches"] for s in loaded["sources"]] == [patches]
    assert loaded["n_patches"] == count == len(PatchesImage(loaded["sources"][0]["patches"]))
    assert loaded["labels"]["patches"] == labels
    assert {c["id"] for c in loaded["classes"]} == {0, 1}
    assert any(str(count) in line for line in reporter.logs)


def test_describe_two_sources_of_the_same_patches(run_op, spot6, tmp_path):
    """The same patches-image twice (as two inputs of one dataset): two sources, one count."""
    patches = str(spot6 / "amsterdam_patches_A.tif")
    out, _ = run_op("describe_patches", PATCHES=[patches, patches], OUTPUT=str(tmp_path / "two.json"))
    loaded = manifest_module.load_manifest(out["OUTPUT"])
    assert [s["name"] for s in loaded["sources"]] == ["source1", "source2"]
    assert loaded["labels"] is None and loaded["classes"] == []


def test_describe_patches_with_a_mismatched_count_is_an_error(run_op, gd, spot6, tmp_path):
    fewer = str(tmp_path / "fewer.tif")
    gdal.Translate(fewer, str(spot6 / "amsterdam_patches_B.tif"), srcWin=[0, 0, 64, 64 * 100])
    fewer_labels = str(tmp_path / "fewer_labels.tif")
    gdal.Translate(fewer_labels, str(spot6 / "amsterdam_labels_B.tif"), srcWin=[0, 0, 64, 64 * 100])
    out = tmp_path / "out"
    out.mkdir()
    patches_a = str(spot6 / "amsterdam_patches_A.tif")
    cases = [
        ({"PATCHES": [patches_a, str(spot6 / "amsterdam_patches_B.tif")]}, "PATCHES"),  # 113 and 112
        ({"PATCHES": [patches_a, fewer]}, "PATCHES"),
        ({"PATCHES": [patches_a], "LABELS": str(spot6 / "amsterdam_labels_B.tif")}, "LABELS"),
        ({"PATCHES": [patches_a], "LABELS": fewer_labels}, "LABELS"),
        ({"PATCHES": [patches_a], "PATCH_SIZE": 32}, "PATCHES"),
        ({"PATCHES": []}, "PATCHES"),
        ({"PATCHES": [str(tmp_path / "missing.tif")]}, "PATCHES"),
    ]
    for change, parameter in cases:
        params = {"OUTPUT": str(out / "m.json"), **change}
        error = error_of(lambda params=params: run_op("describe_patches", **params))
        assert error.parameter == parameter, (change, error)
        assert gd.folder_entries(out) == []
    error = error_of(lambda: manifest_module.describe_otbtf([patches_a, fewer], [0, 0], None))
    assert "100" in error.message and "113" in error.message
