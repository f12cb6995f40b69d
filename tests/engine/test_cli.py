"""The engine's command line: ``python -m patchflow.plugin.engine run OP KEY=VALUE ...`` and ``list``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ("sample_label_raster", "sample_vector", "grid_split", "extract_patches", "describe_patches",
              "create_model", "train_model", "assess_accuracy", "train_classifier", "classify", "apply_model",
              "assess_image_quality", "build_sr_dataset", "compare_accuracy", "compare_sr")


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / ".cache" / "plugins"))
    return subprocess.run([sys.executable, "-m", "patchflow.plugin.engine", *args], capture_output=True, text=True,
                          env=env, cwd=str(cwd or ROOT.parent), timeout=120, stdin=subprocess.DEVNULL)


def test_list_names_every_operation_with_a_summary():
    done = cli("list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    names = [line.partition(":")[0] for line in lines]
    assert sorted(names) == sorted(OPERATIONS)
    assert all(line.partition(":")[2].strip() for line in lines)


def test_run_prints_the_outputs_as_json(nc, tmp_path):
    output = tmp_path / "s.gpkg"
    done = cli("run", "sample_label_raster", f"INPUT={nc / 'landsat96_labelled_pixels.tif'}", "NUMBER=20",
               "STRATEGY=constant", "SEED=3", f"OUTPUT={output}")
    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout)
    assert outputs["COUNT"] == 140 and outputs["OUTPUT"] == str(output)
    assert [c["count"] for c in outputs["CLASSES"]] == [20] * 7
    assert output.exists()
    assert "class statistics" in done.stderr  # logs go to stderr, stdout holds the JSON only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.gpkg", "s.qml"]  # the samples and their style


def test_run_values_are_json_when_they_parse_and_repeated_keys_make_lists(nc, tmp_path):
    """NUMBER=7 is the number 7; SOURCE1 given twice stacks two rasters."""
    out = tmp_path / "set.json"
    done = cli("run", "extract_patches", f"INPUT={nc / 'landsat96_points.shp'}",
               f"SOURCE1={nc / 'lsat7_2000_10.tif'}", f"SOURCE1={nc / 'lsat7_2000_20.tif'}", "PATCH_SIZE1=7",
               "CLASS_FIELD=label", "SKIP_NODATA=false", f"OUTPUT={out}")
    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout)
    manifest = json.loads(out.read_text())
    assert manifest["sources"][0]["rasters"] == [str(nc / "lsat7_2000_10.tif"), str(nc / "lsat7_2000_20.tif")]
    assert manifest["sources"][0]["patch_size"] == 7
    assert outputs["DROPPED_NODATA"] == 0  # SKIP_NODATA=false parsed as a boolean
    assert outputs["COUNT"] + outputs["DROPPED_OUTSIDE"] == 1000
    assert {c["name"] for c in manifest["classes"]} >= {"forest", "water"}


def test_run_with_a_json_parameter_file(nc, tmp_path):
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"INPUT": str(nc / "landsat_multiband.tif"), "PATCH_SIZE": 32, "STRATEGY": "all",
                                  "OUTPUT_TRAIN": str(tmp_path / "train.gpkg")}))
    done = cli("run", "grid_split", "PATCH_SIZE=64", "--json", str(params))  # KEY=VALUE overrides the file
    assert done.returncode == 0, done.stderr
    outputs_64 = json.loads(done.stdout)
    done = cli("run", "grid_split", "--json", str(params))
    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout)
    assert outputs["COUNT_TRAIN"] > 0 and outputs["COUNT_VALID"] == 0
    from osgeo import ogr

    ds = ogr.Open(outputs["OUTPUT_TRAIN"])
    assert ds.GetLayer(0).GetFeatureCount() == outputs["COUNT_TRAIN"]
    ds = None
    assert 0 < outputs_64["COUNT_TRAIN"] < outputs["COUNT_TRAIN"]  # bigger patches: fewer of them


def test_run_error_names_the_parameter_and_writes_nothing(tmp_path):
    done = cli("run", "sample_label_raster", f"INPUT={tmp_path / 'missing.tif'}", f"OUTPUT={tmp_path / 's.gpkg'}")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "error: INPUT:" in done.stderr and "missing.tif" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_run_unknown_operation():
    done = cli("run", "fly")
    assert done.returncode == 1
    assert "fly" in done.stderr and "grid_split" in done.stderr


def test_check_reports_versions():
    done = cli("check")
    assert done.returncode == 0, done.stderr
    versions = json.loads(done.stdout)
    assert set(versions) >= {"python", "numpy", "gdal"}


def test_no_command_is_a_usage_error():
    done = cli()
    assert done.returncode == 2
    assert "usage" in done.stderr.lower()
