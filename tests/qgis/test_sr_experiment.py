"""scripts/sr_experiment.py (make sr-experiment): patchflow:comparesr through Processing on a bundled scene
(--scene nc) and on any data (--hr, --labels, --lr); what it prints is the comparison folder's table and
answer; nothing is written beside the inputs; labels it cannot use are refused with the fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "sr_experiment.py"
NC_CROP = (60, 36, 360, 404)


def script(*arguments: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, timeout=timeout)


def comparison_of(output: Path, printed: str, repeats: int) -> dict:
    with open(output / "comparison" / "comparison.json", encoding="utf-8") as stream:
        comparison = json.load(stream)
    assert list(comparison["versions"]) == ["lr", "bicubic", "sr", "hr"]
    for key, name in (("lr", "LR"), ("bicubic", "bicubic"), ("sr", "SR"), ("hr", "HR")):
        version = comparison["versions"][key]
        assert len(version["kappa"]["repeats"]) == repeats
        line = next(line for line in printed.splitlines() if line.startswith(f"{name} "))
        assert f"{version['kappa']['mean']:.3f} ± " in line and f"{version['intervals']['kappa'][0]:.3f} to " in line
    assert comparison["answer"] in printed and "SR − bicubic: " in printed
    assert (output / "comparison" / "comparison.html").exists() and (output / "experiment.log").stat().st_size > 0
    return comparison


@pytest.mark.slow
def test_scene_nc_runs_comparesr_on_the_polygons(nc, tmp_path):
    before = sorted(p.name for p in nc.iterdir())
    out = tmp_path / "nc"
    run = script("--scene", "nc", "--data", str(nc), "--classifier", "rf", "--repeats", "2", "--sr-epochs", "2",
                 "--output", str(out))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    comparison = comparison_of(out, run.stdout, 2)
    assert comparison["versions"]["lr"]["pixel_size"] == pytest.approx(114.0)
    assert comparison["pixels"] == 847 and len(comparison["classes"]) == 7  # the crop the README's figures use
    assert comparison["classifier"] == "rf" and comparison["sr"]["epochs"] == 2
    assert sorted(p.name for p in nc.iterdir()) == before


@pytest.mark.slow
def test_your_data_a_label_raster_and_a_real_lr_image(nc, tmp_path):
    from osgeo import gdal

    data = tmp_path / "data"
    data.mkdir()
    hr, labels, lr = data / "hr.tif", data / "labels.tif", data / "lr.tif"
    gdal.Translate(str(hr), str(nc / "landsat_multiband.tif"), srcWin=list(NC_CROP))
    gdal.Translate(str(labels), str(nc / "landsat96_labelled_pixels.tif"), srcWin=list(NC_CROP))
    gdal.Warp(str(lr), str(hr), xRes=114.0, yRes=114.0, resampleAlg="average")  # another "sensor" at 114 m
    out = tmp_path / "mine"
    run = script("--hr", str(hr), "--labels", str(labels), "--lr", str(lr), "--classifier", "rf", "--repeats", "1",
                 "--sr-epochs", "1", "--train-share", "0.5", "--output", str(out))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    comparison = comparison_of(out, run.stdout, 1)
    assert comparison["versions"]["lr"]["pixel_size"] == pytest.approx(114.0)
    assert "0.5 of the width" in comparison["split"]
    assert comparison["versions"]["sr"]["kappa"]["sd"] is None and " ± – " in run.stdout  # one repeat: no sd
    assert sorted(p.name for p in data.iterdir()) == ["hr.tif", "labels.tif", "lr.tif"]  # nothing beside the inputs
    assert not (out / "inputs").exists()  # nothing to make for your own data


def test_polygons_without_a_class_field_are_refused_with_the_fix(nc, tmp_path):
    run = script("--hr", str(nc / "landsat_multiband.tif"), "--labels", str(nc / "landsat96_polygons.shp"),
                 "--output", str(tmp_path / "out"), timeout=120)
    assert run.returncode != 0 and "--class-field FIELD" in run.stderr and "CLASS_FIELD=FIELD" in run.stderr
    assert not (tmp_path / "out").exists()  # refused before any work
    run = script("--scene", "nc", "--labels", str(nc / "landsat96_polygons.shp"), timeout=120)
    assert run.returncode == 2 and "--labels goes with --hr" in run.stderr
