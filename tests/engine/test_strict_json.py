"""Every JSON PatchFlow writes is strict (no NaN, Infinity), and every path a manifest names exists after
the run. A small real chain on windows of the NC Landsat-7 scene (sample, extract, describe, train 1 epoch,
apply, assess, classifiers, image quality, SR dataset), with the cases that hold non-finite numbers: an
infinite PSNR, a band whose values are all NaN, a raster whose declared nodata is NaN; every protocol line
of the chain parsed strictly too."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from patchflow.plugin import protocol
from patchflow.plugin.engine.reporting import JsonLinesReporter
from patchflow.plugin.engine.worker import run_job

WINDOW = (25, 16, 240, 200)  # of the NC scene, free of its nodata
PATH_KEYS = ("patches", "rasters", "raster", "path", "degraded_from", "lr_raster", "train", "valid", "dataset")


def refuse_constant(name):
    raise ValueError(f"{name} is not strict JSON")


def strict(text: str):
    return json.loads(text, parse_constant=refuse_constant)


def test_the_strict_parser_refuses_what_python_writes_by_default():
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            strict(json.dumps({"mean": value}))


def test_strict_dumps_writes_non_finite_numbers_as_null():
    value = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": np.float32("nan"), "e": np.arange(2.0),
             "f": (np.float64(2.5), np.int64(3)), "g": True}
    assert strict(protocol.strict_dumps(value)) == {"a": None, "b": [1.0, None, {"c": None}], "d": None,
                                                    "e": [0.0, 1.0], "f": [2.5, 3], "g": True}
    line = protocol.result({"PSNR": math.inf, "BANDS": [{"psnr": np.float64("inf")}]}).to_line()
    assert strict(line) == {"type": "result", "outputs": {"PSNR": None, "BANDS": [{"psnr": None}]}}


def write_window(path: Path, source: str, nodata=None, all_nan_band: int | None = None) -> str:
    ds = gdal.Translate(str(path), source, srcWin=list(WINDOW), outputType=gdal.GDT_Float32)
    if all_nan_band is not None:
        band = ds.GetRasterBand(all_nan_band)
        band.WriteArray(np.full((WINDOW[3], WINDOW[2]), np.nan, np.float32))
    for index in range(1, ds.RasterCount + 1):
        if nodata is None:
            ds.GetRasterBand(index).DeleteNoDataValue()
        else:
            ds.GetRasterBand(index).SetNoDataValue(nodata)
    ds = None
    return str(path)


def walk_paths(value, key=None):
    """(key, path) of every value of ``value`` (a manifest) under a key that names files."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk_paths(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from walk_paths(v, key)
    elif isinstance(value, str) and key in PATH_KEYS:
        yield key, value


@pytest.fixture(scope="module")
def chain(nc, tmp_path_factory):
    """Runs the chain once; returns the output folder and every protocol line it wrote."""
    out = tmp_path_factory.mktemp("strict")
    stream = io.StringIO()
    operations = []

    def run(operation: str, **parameters) -> dict:
        operations.append(operation)
        outputs = run_job(protocol.Job(operation, parameters, "strict"), JsonLinesReporter(stream))
        protocol.send(stream, protocol.result(outputs))
        return outputs

    scene = str(nc / "landsat_multiband.tif")
    inputs = out.parent / f"{out.name}_inputs"
    inputs.mkdir()
    image = write_window(inputs / "window.tif", scene, nodata=-99999.0)
    nan_nodata = write_window(inputs / "nan_nodata.tif", scene, nodata=float("nan"))
    one_band_nan = write_window(inputs / "band_nan.tif", scene, all_nan_band=2)
    labels = write_window(inputs / "labels.tif", str(nc / "landsat96_labelled_pixels.tif"), nodata=-99999.0)

    samples = {}
    for name, seed in (("train", 1), ("valid", 2)):
        samples[name] = run("sample_label_raster", INPUT=labels, NUMBER=40, SEED=seed, PATCH_SIZE=16,
                            OUTPUT=str(out / "samples" / f"{name}.gpkg"))["OUTPUT"]
    run("sample_vector", INPUT=str(nc / "landsat96_polygons.shp"), FIELD="id", RASTER=image, NUMBER=20,
        OUTPUT=str(out / "samples" / "polygons.geojson"))
    sets = {name: run("extract_patches", INPUT=path, SOURCE1=image, PATCH_SIZE1=16, CLASS_FIELD="class",
                      OUTPUT=str(out / "patches" / f"{name}.json")) for name, path in samples.items()}
    run("extract_patches", INPUT=samples["train"], SOURCE1=nan_nodata, PATCH_SIZE1=16, CLASS_FIELD="class",
        OUTPUT=str(out / "patches" / "nan_nodata.json"))  # its bands declare NaN as nodata
    kept = run("extract_patches", INPUT=samples["train"], SOURCE1=one_band_nan, PATCH_SIZE1=16, CLASS_FIELD="class",
               SKIP_NODATA=False, OUTPUT=str(out / "patches" / "band_nan.json"))  # band 2 all NaN: no stats
    run("describe_patches", PATCHES=[kept["PATCHES1"]], LABELS=kept["LABELS"],
        OUTPUT=str(out / "patches" / "described.json"))
    run("describe_patches", PATCHES=[sets["train"]["PATCHES1"]], LABELS=sets["train"]["LABELS"],
        OUTPUT=str(out / "patches" / "described_train.json"))
    model = run("train_model", TRAIN=sets["train"]["OUTPUT"], VALID=sets["valid"]["OUTPUT"],
                ARCHITECTURE="patch_cnn", WIDTH=4, EPOCHS=1, BATCH_SIZE=16, SEED=0, OUTPUT=str(out / "model"))
    classes = run("apply_model", MODEL=model["OUTPUT"], SOURCE1=[image], OUTPUT=str(out / "maps" / "cnn.tif"))
    run("assess_accuracy", INPUT=classes["OUTPUT"], REFERENCE=samples["valid"], CLASS_FIELD="class",
        OUTPUT_CSV=str(out / "accuracy" / "scores.csv"), OUTPUT_HTML=str(out / "accuracy" / "report.html"),
        OUTPUT_TABLE=str(out / "accuracy" / "scores.json"))
    rf = run("train_classifier", DATASET=sets["train"]["OUTPUT"], VALID=sets["valid"]["OUTPUT"], N_TREES=10,
             OUTPUT=str(out / "rf" / "pixels.joblib"))
    run("classify", CLASSIFIER=rf["OUTPUT"], INPUT=[image], OUTPUT=str(out / "maps" / "rf.tif"))
    run("assess_image_quality", INPUT=image, REFERENCE=image, OUTPUT_TABLE=str(out / "quality" / "same.json"),
        OUTPUT_CSV=str(out / "quality" / "same.csv"))  # identical images: PSNR is infinite
    for name, lr_output in (("kept_lr", str(out / "sr" / "lr.tif")), ("no_lr", None)):
        run("build_sr_dataset", HR=[image], SCALE=2, PATCH_SIZE=8, VALID=0.3, BLOCK_SIZE=2, SEED=1,
            OUTPUT_TRAIN=str(out / "sr" / name / "train.json"), OUTPUT_VALID=str(out / "sr" / name / "valid.json"),
            **({"OUTPUT_LR": lr_output} if lr_output else {}))
    return out, stream.getvalue().splitlines(), operations


def test_every_json_file_of_the_chain_is_strict(chain):
    out, _, _ = chain
    files = sorted(p for p in out.rglob("*") if p.suffix in (".json", ".geojson"))
    names = {p.relative_to(out).as_posix() for p in files}
    assert {"patches/train.json", "patches/band_nan.json", "patches/nan_nodata.json", "patches/described.json",
            "model/patchflow_card.json", "rf/pixels.json", "accuracy/scores.json", "quality/same.json",
            "sr/no_lr/train.json", "samples/polygons.geojson"} <= names
    for path in files:
        try:
            strict(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            pytest.fail(f"{path.relative_to(out)}: {exc}")


def test_non_finite_numbers_are_written_as_null(chain):
    out, _, _ = chain
    kept = strict((out / "patches" / "band_nan.json").read_text())
    band = kept["sources"][0]["bands"][1]
    assert band["min"] is None and band["max"] is None and band["nonfinite"] == kept["n_patches"] * 16 * 16
    described = strict((out / "patches" / "described.json").read_text())["sources"][0]["bands"][1]
    assert described["min"] is None and described["nonfinite"] == band["nonfinite"]
    assert all(b["nodata"] is None for b in strict((out / "patches" / "nan_nodata.json").read_text())
               ["sources"][0]["bands"])
    same = strict((out / "quality" / "same.json").read_text())
    assert any(feature["properties"].get("psnr", 0) is None or "psnr" not in feature["properties"]
               for feature in same["features"])


def test_every_protocol_line_of_the_chain_is_strict(chain):
    _, lines, operations = chain
    messages = [strict(line) for line in lines]
    results = [m for m in messages if m["type"] == "result"]
    assert len(results) == len(operations) and {m["type"] for m in messages} >= {"progress", "log", "result"}
    quality = next(m["outputs"] for m in results if "PSNR" in m["outputs"] and "SSIM" in m["outputs"]
                   and "PIXELS" in m["outputs"])
    assert quality["PSNR"] is None and quality["SSIM"] == 1.0  # infinite PSNR: null


def test_every_path_a_manifest_names_exists_after_the_run(chain):
    out, _, _ = chain
    manifests = [p for p in out.rglob("*.json") if strict(p.read_text()).get("format") == "patchflow-dataset"]
    assert len(manifests) >= 10
    checked = 0
    for path in manifests:
        manifest = strict(path.read_text())
        for key, named in walk_paths(manifest):
            target = named if os.path.isabs(named) else os.path.join(path.parent, named)
            assert os.path.exists(target), f"{path.relative_to(out)}: {key} {named} does not exist"
            assert ".patchflow-staging-" not in named, f"{path.relative_to(out)}: {key} {named} is a staging file"
            checked += 1
    assert checked > 50
    sr = strict((out / "sr" / "kept_lr" / "train.json").read_text())
    assert [b["raster"] for b in sr["sources"][0]["bands"]] == [str(out / "sr" / "lr.tif")] * 5
    no_lr = strict((out / "sr" / "no_lr" / "train.json").read_text())
    assert [b["raster"] for b in no_lr["sources"][0]["bands"]] == [None] * 5
    assert not list((out / "sr" / "no_lr").glob("*degraded*"))
