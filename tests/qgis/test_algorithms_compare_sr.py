"""Does super-resolution help? (patchflow:comparesr) on the NC Landsat-7 scene, through processing.run (the
FCNN, REPEATS=2, labels from the land-cover polygons) and through qgis_process (the Random Forest with
spatial features, the labelled-pixels raster, REPEATS=3): four versions scored at the same held-out pixels, the
comparison folder complete, nothing beside the inputs."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest
from osgeo import gdal

ROOT = Path(__file__).resolve().parents[2]
CROP = (60, 36, 360, 404)  # columns 60-419, rows 36-439: where the polygons are (whole LR pixels at x4)
FAST = {"SCALE": 4, "REPEATS": 2, "SR_EPOCHS": 3, "SR_PATCH_SIZE": 8, "SAMPLES": 50, "RESAMPLES": 500}


@pytest.fixture(scope="module")
def crop(nc, tmp_path_factory) -> dict[str, str]:
    """The part of the scene the reference polygons cover, and the labelled pixels there."""
    folder = tmp_path_factory.mktemp("nc_crop")
    paths = {"hr": str(folder / "hr.tif"), "labels": str(folder / "labels.tif")}
    gdal.Translate(paths["hr"], str(nc / "landsat_multiband.tif"), srcWin=list(CROP))
    gdal.Translate(paths["labels"], str(nc / "landsat96_labelled_pixels.tif"), srcWin=list(CROP))
    return paths


def check_comparison(output: Path, repeats: int) -> dict:
    with open(output / "comparison.json", encoding="utf-8") as stream:
        comparison = json.load(stream, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert list(comparison["versions"]) == ["lr", "bicubic", "sr", "hr"]
    assert comparison["versions"]["lr"]["pixel_size"] == pytest.approx(114.0)
    assert comparison["versions"]["hr"]["pixel_size"] == pytest.approx(28.5)
    for version in comparison["versions"].values():
        assert len(version["kappa"]["repeats"]) == repeats and version["kappa"]["sd"] is not None
        low, high = version["intervals"]["kappa"]
        assert -1 <= low <= high <= 1
    assert comparison["pixels"] > 500 and len(comparison["classes"]) == 7
    assert comparison["versions"]["hr"]["kappa"]["mean"] > 0.2  # the HR map is a real land-cover map
    assert [(t["first"], t["second"]) for t in comparison["tests"]] == [("sr", "bicubic"), ("sr", "hr"),
                                                                       ("bicubic", "lr")]
    with open(output / "comparison.csv", newline="", encoding="utf-8") as stream:
        assert [row["version"] for row in csv.DictReader(stream)] == ["LR", "bicubic", "SR", "HR"]
    html = (output / "comparison.html").read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == 8
    print(f"\n{output}: {comparison['answer']}")
    for key, version in comparison["versions"].items():
        print(f"{key:8} kappa {version['kappa']['mean']:.3f} ± {version['kappa']['sd']:.3f} "
              f"[{version['intervals']['kappa'][0]:.3f}, {version['intervals']['kappa'][1]:.3f}]  "
              f"OA {version['OA']['mean']:.3f} ± {version['OA']['sd']:.3f}  "
              f"macro F1 {version['macro F1']['mean']:.3f}")
    return comparison


@pytest.mark.slow
def test_compare_sr_on_nc_through_processing_run(run_alg, nc, crop, tmp_path):
    result = run_alg("comparesr", HR=crop["hr"], REFERENCE=str(nc / "landsat96_polygons.shp"), CLASS_FIELD="label",
                     CLASSIFIER=0, PATCH_SIZE=32, EPOCHS=8, **FAST, OUTPUT=str(tmp_path / "comparison"))
    comparison = check_comparison(tmp_path / "comparison", 2)
    assert result["ANSWER"] == comparison["answer"] and result["REPORT"].endswith("comparison.html")
    assert result["SR_GAIN"] == pytest.approx(comparison["tests"][0]["kappa_difference"])
    assert sorted(os.listdir(Path(crop["hr"]).parent)) == ["hr.tif", "labels.tif"]  # nothing beside the inputs


@pytest.mark.slow
def test_compare_sr_on_nc_through_qgis_process(crop, tmp_path, tmp_path_factory):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path_factory.mktemp("qgis-config"))}
    arguments = [f"{key}={value}" for key, value in {
        "HR": crop["hr"], "LABELS": crop["labels"], "CLASSIFIER": 2, **FAST, "REPEATS": 3,
        "OUTPUT": str(tmp_path / "comparison")}.items()]
    done = subprocess.run(["bash", str(ROOT / "scripts" / "qgis_process.sh"), "--json", "run", "patchflow:comparesr",
                           "--", *arguments], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(done.stdout[done.stdout.index("{"):])["results"]
    comparison = check_comparison(tmp_path / "comparison", 3)
    assert results["ANSWER"] == comparison["answer"]
    assert sorted(os.listdir(Path(crop["hr"]).parent)) == ["hr.tif", "labels.tif"]
