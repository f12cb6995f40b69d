"""Two sensors at their own resolutions, end to end through processing.run and qgis_process: the NC
Landsat-7 scene (28.5 m) with its 2x coarser copy (57 m) feeding the two-branch fusion CNN, the Spot-6
scene (1.5 m) with its 4x degradation (6 m) feeding the fully convolutional fusion U-Net; each trained,
served on both sources with no extra parameter (the card says where each goes) and checked for geometry
(the map on source 1's grid) and seams (tiles equal a whole-image run)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from patchflow.plugin.declarations import ARCHITECTURES

ROOT = Path(__file__).resolve().parents[2]
QGIS_PROCESS = ROOT / "scripts" / "qgis_process.sh"
FUSION_MODEL3 = ROOT / "resources" / "fusion_chain.model3"


def architecture(name: str) -> int:
    return [value for value, _ in ARCHITECTURES].index(name)


def coarse_copy(source: Path | str, output: Path, pixel: float) -> Path:
    """The raster averaged to ``pixel`` map units (a second, coarser sensor over the same ground)."""
    gdal.Warp(str(output), str(source), xRes=pixel, yRes=pixel, resampleAlg="average",
              creationOptions=["TILED=YES", "COMPRESS=DEFLATE"])
    return output


def read(path: str | Path) -> tuple[tuple, np.ndarray]:
    ds = gdal.Open(str(path))
    return ds.GetGeoTransform(), ds.ReadAsArray()


@pytest.fixture(scope="module")
def nc_coarse(nc, tmp_path_factory) -> Path:
    return coarse_copy(nc / "landsat_multiband.tif", tmp_path_factory.mktemp("nc57") / "landsat_57m.tif", 57.0)


@pytest.mark.slow
def test_fusion_cnn_trains_and_serves_two_resolutions(run_alg, nc, nc_coarse, tmp_path):
    image = str(nc / "landsat_multiband.tif")
    extracted = run_alg("extractpatches", INPUT=str(nc / "landsat96_points.shp"), SOURCE1=[image], PATCH_SIZE1=16,
                        SOURCE2=[str(nc_coarse)], CLASS_FIELD="label", OUTPUT=str(tmp_path / "ds.json"))
    manifest = json.loads(Path(extracted["OUTPUT"]).read_text(encoding="utf-8"))
    assert [s["patch_size"] for s in manifest["sources"]] == [16, 8]  # PATCH_SIZE2: source 1's footprint
    run_alg("trainmodel", TRAIN=extracted["OUTPUT"], ARCHITECTURE=architecture("fusion_cnn"), WIDTH=4, EPOCHS=1,
            BATCH_SIZE=64, OUTPUT=str(tmp_path / "fusion"))
    card = json.loads((tmp_path / "fusion" / "patchflow_card.json").read_text(encoding="utf-8"))
    assert [(i["source"], i["patch_size"], i["pixel_size"]) for i in card["inputs"]] == [
        ("source1", 16, 28.5), ("source2", 8, 57.0)]
    extent = "633000,636000,218000,221000"  # map units of SOURCE1 (EPSG:3358)
    served = run_alg("applymodel", MODEL=str(tmp_path / "fusion"), SOURCE1=[image], SOURCE2=[str(nc_coarse)],
                     EXTENT=extent, OUTPUT=str(tmp_path / "map.tif"))
    transform, classes = read(served["OUTPUT"])
    source = gdal.Open(image).GetGeoTransform()
    assert transform[1] == source[1] and transform[5] == source[5]  # source 1's pixel size
    for axis in (0, 3):  # on source 1's grid: whole pixels from its origin
        offset = (transform[axis] - source[axis]) / source[axis + 1 + (axis == 3)]
        assert abs(offset - round(offset)) < 1e-6
    assert classes.shape == (served["HEIGHT"], served["WIDTH"]) and served["WIDTH"] >= 3000 / 28.5
    ids = {c["id"] for c in card["classes"]}
    assert set(np.unique(classes).tolist()) <= ids | {255}
    # source 2 is really used: a source 2 of zeros changes the map
    zeros = tmp_path / "zeros.tif"
    gdal.Translate(str(zeros), str(nc_coarse), scaleParams=[[0, 1, 0, 0]], outputType=gdal.GDT_Float32)
    other = run_alg("applymodel", MODEL=str(tmp_path / "fusion"), SOURCE1=[image], SOURCE2=[str(zeros)],
                    EXTENT=extent, OUTPUT=str(tmp_path / "map_zeros.tif"))
    assert (read(other["OUTPUT"])[1] != classes).any()

    # a Random Forest on the fused deep features, and the scene classified from both sources
    rf = run_alg("trainclassifier", DATASET=extracted["OUTPUT"], MODEL=str(tmp_path / "fusion"), N_TREES=20,
                 OUTPUT=str(tmp_path / "rf.skops"))
    description = json.loads((tmp_path / "rf.json").read_text(encoding="utf-8"))
    assert [s["name"] for s in description["sources"]] == ["source1", "source2"]
    mapped = run_alg("classify", INPUT=[image], INPUT2=[str(nc_coarse)], CLASSIFIER=rf["OUTPUT"],
                     OUTPUT=str(tmp_path / "rf_map.tif"))
    transform, rf_classes = read(mapped["OUTPUT"])
    assert transform == source and rf_classes.shape == (443, 489)
    assert set(np.unique(rf_classes).tolist()) - {255} <= ids and len(np.unique(rf_classes)) > 1


@pytest.fixture(scope="module")
def spot6_pair(spot6, tmp_path_factory) -> tuple[Path, Path, Path]:
    """The Spot-6 scene, its 6 m degradation and the building labels on the scene's grid."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import amsterdam_labels

    folder = tmp_path_factory.mktemp("spot6pair")
    labels = folder / "labels.tif"
    amsterdam_labels.make_labels(spot6, labels)
    scene = folder / "spot6.tif"
    gdal.Translate(str(scene), str(spot6 / "fake_spot6.jp2"), creationOptions=["TILED=YES"])
    return scene, coarse_copy(scene, folder / "spot6_6m.tif", 6.0), labels


@pytest.mark.slow
def test_fusion_unet_serves_seamlessly_at_ratio_4(run_alg, spot6_pair, tmp_path):
    scene, coarse, labels = spot6_pair
    samples = run_alg("samplefromlabelraster", INPUT=str(labels), NUMBER=40, PATCH_SIZE=64, SEED=0,
                      OUTPUT=str(tmp_path / "samples.gpkg"))
    extracted = run_alg("extractpatches", INPUT=samples["OUTPUT"], SOURCE1=[str(scene)], PATCH_SIZE1=64,
                        SOURCE2=[str(coarse)], LABEL_RASTER=str(labels), OUTPUT=str(tmp_path / "ds.json"))
    run_alg("trainmodel", TRAIN=extracted["OUTPUT"], ARCHITECTURE=architecture("fusion_unet"), WIDTH=4, EPOCHS=1,
            BATCH_SIZE=8, OUTPUT=str(tmp_path / "unet"))
    card = json.loads((tmp_path / "unet" / "patchflow_card.json").read_text(encoding="utf-8"))
    assert [(i["patch_size"], i["pixel_size"]) for i in card["inputs"]] == [(64, 1.5), (16, 6.0)]
    x0, _, _, y0, _, _ = gdal.Open(str(scene)).GetGeoTransform()
    extent = f"{x0 + 150},{x0 + 750},{y0 - 700},{y0 - 100}"
    maps = []
    for tile in (0, 64, 200):  # one tile; 64 px tiles (7 x 7 of them); 192 px tiles that do not divide 448
        served = run_alg("applymodel", MODEL=str(tmp_path / "unet"), SOURCE1=[str(scene)], SOURCE2=[str(coarse)],
                         EXTENT=extent, TILE_SIZE=tile, OUTPUTS="probabilities",
                         OUTPUT=str(tmp_path / f"map_{tile}.tif"))
        maps.append(read(served["OUTPUT"]))
    (transform, whole), *tiled = maps
    assert transform[1] == 1.5 and whole.shape[1:] == (448, 448)  # 400 px grown to whole 64 px units
    top = np.sort(whole, axis=0)
    clear = top[-1] - top[-2] > 1e-4  # pixels whose class is not a tie to float precision
    for other_transform, other in tiled:
        assert other_transform == transform
        assert np.abs(other - whole).max() <= 1e-5
        assert np.array_equal(other.argmax(0)[clear], whole.argmax(0)[clear])
    # the same through qgis_process, with 64 px tiles: the same probabilities
    done = subprocess.run(["bash", str(QGIS_PROCESS), "--json", "run", "patchflow:applymodel", "--",
                           f"MODEL={tmp_path / 'unet'}", f"SOURCE1={scene}", f"SOURCE2={coarse}", f"EXTENT={extent}",
                           "TILE_SIZE=64", "OUTPUTS=probabilities", f"OUTPUT={tmp_path / 'qgis_process.tif'}"],
                          env=qgis_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    headless_transform, headless = read(tmp_path / "qgis_process.tif")
    assert headless_transform == transform and np.abs(headless - whole).max() <= 1e-5


def qgis_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "qgis-config"), "QT_QPA_PLATFORM": "offscreen"}


@pytest.mark.slow
def test_fusion_model3_runs_through_qgis_process(nc, nc_coarse, tmp_path):
    class_map, model, report = tmp_path / "map.tif", tmp_path / "model", tmp_path / "accuracy.html"
    arguments = [f"image={nc / 'landsat_multiband.tif'}", f"coarse_image={nc_coarse}",
                 f"labels={nc / 'landsat96_polygons.shp'}", "class_field=label", "epochs=2", "split_seed=3",
                 f"apply:class_map={class_map}", f"train:model={model}", f"assess:accuracy_report={report}"]
    done = subprocess.run(["bash", str(QGIS_PROCESS), "--json", "run", str(FUSION_MODEL3), "--", *arguments],
                          env=qgis_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    raster = gdal.Open(str(class_map))
    assert (raster.RasterXSize, raster.RasterYSize) == (489, 443)  # source 1's grid, the whole scene
    card = json.loads((model / "patchflow_card.json").read_text(encoding="utf-8"))
    assert [i["pixel_size"] for i in card["inputs"]] == [28.5, 57.0]
    assert "kappa" in report.read_text(encoding="utf-8").lower()


def test_fusion_model3_is_what_make_fusion_model3_writes(tmp_path):
    import sys

    written = tmp_path / "fusion.model3"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_fusion_model3.py"), "--output", str(written)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert written.read_text(encoding="utf-8") == FUSION_MODEL3.read_text(encoding="utf-8"), (
        "resources/fusion_chain.model3 is stale: run .venv/bin/python scripts/make_fusion_model3.py")


def test_fusion_model3_loads_and_wires_both_sources(provider):
    from qgis.core import QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(FUSION_MODEL3))
    model.initAlgorithm({})
    ok, errors = model.validate()
    assert ok, errors
    children = model.childAlgorithms()
    for child in ("patches_train", "patches_valid", "patches_test", "apply"):
        sources = children[child].parameterSources()
        assert sources["SOURCE2"][0].parameterName() == "coarse_image", child
    train = children["train"].parameterSources()
    assert train["ARCHITECTURE"][0].staticValue() == architecture("fusion_cnn")
