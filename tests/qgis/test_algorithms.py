"""Each algorithm through processing.run on the real North Carolina data, outputs styled."""

from __future__ import annotations

import json

import pytest
from qgis.core import QgsCategorizedSymbolRenderer, QgsProcessingException, QgsRasterLayer, QgsVectorLayer


def load(path: str) -> QgsVectorLayer:
    layer = QgsVectorLayer(path, "out", "ogr")
    assert layer.isValid(), path
    return layer


def class_counts(layer: QgsVectorLayer) -> dict[int, int]:
    counts: dict[int, int] = {}
    for feature in layer.getFeatures():
        counts[feature["class"]] = counts.get(feature["class"], 0) + 1
    return counts


def test_provider_lists_every_algorithm(provider):
    ids = {algorithm.id() for algorithm in provider.algorithms()}
    assert ids == {"patchflow:samplefromlabelraster", "patchflow:samplefromvector", "patchflow:gridsplit",
                   "patchflow:extractpatches", "patchflow:describepatches", "patchflow:createmodel",
                   "patchflow:trainmodel", "patchflow:assessaccuracy", "patchflow:trainclassifier",
                   "patchflow:classify", "patchflow:applymodel", "patchflow:buildsrdataset",
                   "patchflow:assessimagequality", "patchflow:compareaccuracy", "patchflow:comparesr"}
    groups = {algorithm.group() for algorithm in provider.algorithms()}
    assert groups == {"1 · Sampling", "2 · Patches", "3 · Models", "4 · Classification", "5 · Accuracy"}


def test_sample_from_label_raster_real(run_alg, nc, tmp_path):
    out = tmp_path / "samples.gpkg"
    result = run_alg("samplefromlabelraster", INPUT=str(nc / "landsat96_labelled_pixels.tif"), NUMBER=30,
                     PATCH_SIZE=16, SEED=3, OUTPUT=str(out))
    layer = load(result["OUTPUT"])
    assert result["COUNT"] == 7 * 30
    assert class_counts(layer) == {c: 30 for c in range(1, 8)}
    raster = QgsRasterLayer(str(nc / "landsat96_labelled_pixels.tif"), "labels")
    provider = raster.dataProvider()
    for feature in layer.getFeatures():
        value, ok = provider.sample(feature.geometry().asPoint(), 1)
        assert ok and int(value) == feature["class"]
    qml = tmp_path / "samples.qml"
    assert qml.exists()
    styled = load(str(out))
    styled.loadNamedStyle(str(qml))
    renderer = styled.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer)
    assert renderer.classAttribute() == "class"
    assert len(renderer.categories()) == 7


def test_sample_from_polygons_real_text_classes(run_alg, nc, tmp_path):
    result = run_alg("samplefromvector", INPUT=str(nc / "landsat96_polygons.shp"), FIELD="label",
                     RASTER=str(nc / "landsat_multiband.tif"), STRATEGY=0, NUMBER=25, MIN_DISTANCE=60,
                     OUTPUT=str(tmp_path / "poly.gpkg"))
    layer = load(result["OUTPUT"])
    names = {feature["class"]: feature["class_name"] for feature in layer.getFeatures()}
    assert names == dict(enumerate(["agriculture", "developed", "forest", "herbaceous", "sediment",
                                    "shrubland", "water"]))
    points = [feature.geometry().asPoint() for feature in layer.getFeatures()]
    closest = min(a.distance(b) for i, a in enumerate(points) for b in points[i + 1:])
    assert closest >= 60
    renderer = load(result["OUTPUT"])
    renderer.loadNamedStyle(str(tmp_path / "poly.qml"))
    labels = [category.label() for category in renderer.renderer().categories()]
    assert "2 forest" in labels


def test_grid_split_and_extraction_chain_real(run_alg, nc, tmp_path):
    image = str(nc / "landsat_multiband.tif")
    split = run_alg("gridsplit", INPUT=image, SAMPLES=str(nc / "landsat96_points.shp"), CLASS_FIELD="id",
                    PATCH_SIZE=16, BLOCK_SIZE=4, TRAIN=0.7, VALID=0.3, TEST=0,
                    OUTPUT_TRAIN=str(tmp_path / "train.gpkg"), OUTPUT_VALID=str(tmp_path / "valid.gpkg"))
    assert split["COUNT_TRAIN"] > 2 * split["COUNT_VALID"] > 0
    manifests = {}
    for name in ("train", "valid"):
        result = run_alg("extractpatches", INPUT=split[f"OUTPUT_{name.upper()}"], SOURCE1=[image], PATCH_SIZE1=16,
                         SOURCE2=[str(nc / "lsat7_2000_70.tif")], PATCH_SIZE2=16, CLASS_FIELD="class",
                         OUTPUT=str(tmp_path / f"{name}.json"))
        manifest = json.loads((tmp_path / f"{name}.json").read_text())
        manifests[name] = manifest
        patches = QgsRasterLayer(result["PATCHES1"], "patches")
        assert patches.isValid() and patches.width() == 16
        assert patches.height() == 16 * result["COUNT"] == 16 * manifest["n_patches"]
        assert patches.bandCount() == 5
        labels = QgsRasterLayer(result["LABELS"], "labels")
        assert labels.width() == 1 and labels.height() == result["COUNT"]
        assert sum(c["count"] for c in manifest["classes"]) == result["COUNT"]
        assert result["COUNT"] + result["DROPPED_NODATA"] + result["DROPPED_OUTSIDE"] == split[f"COUNT_{name.upper()}"]
    assert {c["name"] for c in manifests["train"]["classes"]} >= {"forest", "developed"}


def test_describe_otbtf_patches(run_alg, spot6, tmp_path):
    result = run_alg("describepatches", PATCHES=[str(spot6 / "amsterdam_patches_A.tif")],
                     LABELS=str(spot6 / "amsterdam_labels_A.tif"), OUTPUT=str(tmp_path / "a.json"))
    manifest = json.loads((tmp_path / "a.json").read_text())
    assert result["COUNT"] == manifest["n_patches"] == 113
    assert manifest["sources"][0]["patch_size"] == 64 and len(manifest["sources"][0]["bands"]) == 4
    assert {c["id"] for c in manifest["classes"]} == {0, 1}


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"PATCH_SIZE1": 600}, "Source 1: patch size (pixels) (PATCH_SIZE1): patch size 600 is bigger"),
        ({"SOURCE2": ["REPROJECTED"], "PATCH_SIZE2": 16}, "(SOURCE2)"),
        ({"CLASS_FIELD": "nosuchfield"}, "(CLASS_FIELD)"),
        ({"INPUT": "FAR_POINTS", "CLASS_FIELD": "class"}, "Patch centres (points) (INPUT): none of the 2 points"),
        ({"OUTPUT": "/proc/patchflow/out.json"}, "Dataset manifest (OUTPUT): cannot write"),
    ],
)
def test_extract_patches_bad_inputs_leave_nothing(run_alg, nc, tmp_path, parameters, message, make_points):
    from osgeo import gdal

    reprojected = tmp_path / "inputs" / "reprojected.tif"
    reprojected.parent.mkdir()
    gdal.Warp(str(reprojected), str(nc / "lsat7_2000_70.tif"), dstSRS="EPSG:4326")
    far = make_points(tmp_path / "inputs" / "far.gpkg", [0.0, 10.0], [0.0, 10.0], epsg=3358)
    parameters = {key: ([str(reprojected)] if value == ["REPROJECTED"] else str(far) if value == "FAR_POINTS"
                        else value) for key, value in parameters.items()}
    base = {"INPUT": str(nc / "landsat96_points.shp"), "SOURCE1": [str(nc / "landsat_multiband.tif")],
            "PATCH_SIZE1": 16, "CLASS_FIELD": "id", "OUTPUT": str(tmp_path / "out" / "ds.json")}
    base.update(parameters)
    (tmp_path / "out").mkdir()
    with pytest.raises(QgsProcessingException) as caught:
        run_alg("extractpatches", **base)
    assert message in str(caught.value)
    assert list((tmp_path / "out").iterdir()) == []


def test_sampling_bad_inputs(run_alg, nc, tmp_path, tmp_path_factory, make_raster):
    import numpy as np

    empty = make_raster(tmp_path_factory.mktemp("in") / "empty.tif", np.zeros((50, 60), np.uint8), nodata=0)
    with pytest.raises(QgsProcessingException, match=r"\(FIELD\): the layer has no field 'nope'"):
        run_alg("samplefromvector", INPUT=str(nc / "landsat96_polygons.shp"), FIELD="nope",
                RASTER=str(nc / "landsat_multiband.tif"), OUTPUT=str(tmp_path / "x.gpkg"))
    with pytest.raises(QgsProcessingException, match=r"\(PATCH_SIZE\): patch size 1000 is bigger"):
        run_alg("samplefromlabelraster", INPUT=str(nc / "landsat96_labelled_pixels.tif"), PATCH_SIZE=1000,
                OUTPUT=str(tmp_path / "y.gpkg"))
    with pytest.raises(QgsProcessingException, match=r"\(INPUT\): no labelled pixel"):
        run_alg("samplefromlabelraster", INPUT=str(empty), OUTPUT=str(tmp_path / "z.gpkg"), STRATEGY=1)
    assert list(tmp_path.iterdir()) == []
