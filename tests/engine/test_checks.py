"""Cheap checks first (the checks package): bad inputs fail in seconds, before TensorFlow or scikit-learn
load, naming their parameter; and the warnings that say what a run did with a surprising input.
Real data: the North Carolina Landsat-7 scene (a Float32 reflectance derived from it stands for
"an image given as labels")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr

from patchflow.plugin import protocol
from patchflow.plugin.engine import checks
from patchflow.plugin.engine.errors import Cancelled, PatchFlowError
from patchflow.plugin.engine.params import Params
from patchflow.plugin.engine.reporting import Reporter
from patchflow.plugin.engine.worker import run_job

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("tensorflow", "keras", "sklearn", "joblib")


def run(operation: str, reporter: Reporter | None = None, **parameters) -> dict:
    return run_job(protocol.Job(operation, parameters, "checks"), reporter or Reporter())


def write_like(path: Path, reference: str, array: np.ndarray, dtype=gdal.GDT_Float32, nodata=None,
               crs: bool = True, options=()) -> str:
    """A raster on the grid of ``reference`` holding ``array`` (rows, cols)."""
    source = gdal.Open(reference)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), source.RasterXSize, source.RasterYSize, 1, dtype,
                                              list(options))
    ds.SetGeoTransform(source.GetGeoTransform())
    if crs:
        ds.SetProjection(source.GetProjection())
    ds.GetRasterBand(1).WriteArray(array)
    if nodata is not None:
        ds.GetRasterBand(1).SetNoDataValue(nodata)
    ds = None
    return str(path)


def truncate(source: str, target: Path, fraction: float = 0.3) -> str:
    data = Path(source).read_bytes()
    target.write_bytes(data[:int(len(data) * fraction)])
    return str(target)


@pytest.fixture(scope="module")
def data(nc, tmp_path_factory) -> dict[str, str]:
    """NC datasets (train/valid, 16 px patches of the 5 bands; one of a single class), a 3-band
    model, a 5-band model, a pixel Random Forest, a Float32 reflectance and truncated copies."""
    folder = tmp_path_factory.mktemp("checks")
    image, points = str(nc / "landsat_multiband.tif"), str(nc / "landsat96_points.shp")
    run("grid_split", INPUT=image, SAMPLES=points, CLASS_FIELD="id", PATCH_SIZE=16, BLOCK_SIZE=4, TRAIN=0.7,
        VALID=0.3, TEST=0.0, OUTPUT_TRAIN=str(folder / "train.gpkg"), OUTPUT_VALID=str(folder / "valid.gpkg"))
    for name in ("train", "valid"):
        run("extract_patches", INPUT=str(folder / f"{name}.gpkg"), SOURCE1=[image], PATCH_SIZE1=16,
            CLASS_FIELD="class", OUTPUT=str(folder / f"{name}.json"))
    gdal.VectorTranslate(str(folder / "one.gpkg"), points, where="id = 4")
    run("extract_patches", INPUT=str(folder / "one.gpkg"), SOURCE1=[image], PATCH_SIZE1=16, CLASS_FIELD="id",
        OUTPUT=str(folder / "one.json"))
    run("extract_patches", INPUT=points, SOURCE1=[image], PATCH_SIZE1=8, CLASS_FIELD="id",
        OUTPUT=str(folder / "small.json"))
    coarse = str(folder / "coarse.tif")  # the image x4 coarser: a second source over the same ground
    gdal.Warp(coarse, image, xRes=114.0, yRes=114.0, resampleAlg="average")
    run("extract_patches", INPUT=points, SOURCE1=[image], PATCH_SIZE1=16, SOURCE2=[coarse], PATCH_SIZE2=4,
        CLASS_FIELD="id", OUTPUT=str(folder / "two.json"))
    run("create_model", ARCHITECTURE="patch_cnn", BANDS=3, PATCH_SIZE=16, N_CLASSES=7, WIDTH=2,
        OUTPUT=str(folder / "cnn3"))
    run("create_model", ARCHITECTURE="patch_cnn", DATASET=str(folder / "train.json"), WIDTH=2,
        OUTPUT=str(folder / "cnn5"))
    run("train_classifier", DATASET=str(folder / "train.json"), N_TREES=3, OUTPUT=str(folder / "rf.joblib"))
    values = gdal.Open(image).ReadAsArray()[3]
    reflectance = write_like(folder / "reflectance.tif", image, (values / 255.0 * 0.6).astype(np.float32))
    manifest = json.loads((folder / "train.json").read_text())
    manifest["sources"][0]["patches"] = "cut_source1.tif"
    (folder / "cut.json").write_text(json.dumps(manifest))
    truncate(str(folder / "train_source1.tif"), folder / "cut_source1.tif")
    return {"folder": str(folder), "image": image, "points": points,
            "labels": str(nc / "landsat96_labelled_pixels.tif"), "band": str(nc / "lsat7_2000_10.tif"),
            "reflectance": reflectance,
            "truncated": truncate(image, folder / "truncated.tif"), **{
                name: str(folder / f"{name}.json") for name in ("train", "valid", "one", "small", "cut", "two")},
            "cnn3": str(folder / "cnn3"), "cnn5": str(folder / "cnn5"), "rf": str(folder / "rf.joblib")}


WORKER = """
import json, sys, time
started = time.monotonic()
from patchflow.plugin import protocol
from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.reporting import Reporter
from patchflow.plugin.engine.worker import run_job
try:
    run_job(protocol.Job(sys.argv[1], json.loads(sys.argv[2]), "t"), Reporter())
    error = None
except PatchFlowError as exc:
    error = {"parameter": exc.parameter, "message": exc.message}
print(json.dumps({"error": error, "seconds": time.monotonic() - started,
                  "heavy": sorted(m for m in HEAVY if m in sys.modules)}))
""".replace("HEAVY", repr(HEAVY))


def in_a_worker(operation: str, parameters: dict) -> dict:
    """Run one job in a fresh Python, as the worker does: the error, the seconds from the engine's
    first import to the error, and which heavy libraries got imported."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / ".cache" / "plugins"))
    done = subprocess.run([sys.executable, "-c", WORKER, operation, json.dumps(parameters)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


FAST_CASES = {
    "train-one-class": ("train_model", {"TRAIN": "one"}, "TRAIN", "holds 1 class"),
    "train-card-bands": ("train_model", {"TRAIN": "train", "MODEL": "cnn3"}, "MODEL", "takes 3 bands"),
    "train-truncated-patches": ("train_model", {"TRAIN": "cut"}, "TRAIN", "is truncated"),
    "train-architecture-patch-size": ("train_model", {"TRAIN": "small", "ARCHITECTURE": "fcnn"}, "TRAIN",
                                      "multiple of 16"),
    "train-source-left-out": ("train_model", {"TRAIN": "two"}, "ARCHITECTURE", "source2 would be silently left out"),
    "train-output-under-a-file": ("train_model", {"TRAIN": "train", "OUTPUT": "@file/model"}, "OUTPUT",
                                  "cannot write"),
    "classifier-one-class": ("train_classifier", {"DATASET": "one"}, "DATASET", "holds 1 class"),
    "classifier-feature-output": ("train_classifier", {"DATASET": "train", "MODEL": "cnn5", "FEATURE_OUTPUT": "nope"},
                                  "FEATURE_OUTPUT", "no output nope"),
    "classifier-card-bands": ("train_classifier", {"DATASET": "train", "MODEL": "cnn3"}, "MODEL", "takes 3 bands"),
    "classify-bands": ("classify", {"INPUT": ["band"], "CLASSIFIER": "rf"}, "INPUT", "trained on 5 bands"),
    "apply-bands": ("apply_model", {"MODEL": "cnn5", "SOURCE1": ["band"]}, "SOURCE1", "takes 5 bands"),
    "apply-sources": ("apply_model", {"MODEL": "cnn5", "SOURCE1": ["image"], "SOURCE2": ["image"]}, "SOURCE1",
                      "1 input(s)"),
    "apply-outputs": ("apply_model", {"MODEL": "cnn5", "SOURCE1": ["image"], "OUTPUTS": "segmentation"}, "OUTPUTS",
                      "no output segmentation"),
    "apply-extent": ("apply_model", {"MODEL": "cnn5", "SOURCE1": ["image"], "EXTENT": "0,10,0,10"}, "EXTENT",
                     "lies outside"),
    "apply-truncated": ("apply_model", {"MODEL": "cnn5", "SOURCE1": ["truncated"]}, "SOURCE1", "is truncated"),
    "sample-reflectance": ("sample_label_raster", {"INPUT": "reflectance"}, "INPUT", "not a label raster"),
    "extract-reflectance": ("extract_patches", {"INPUT": "points", "SOURCE1": ["image"], "LABEL_RASTER": "reflectance"},
                            "LABEL_RASTER", "not a label raster"),
    "split-reflectance": ("grid_split", {"INPUT": "image", "LABELS": "reflectance"}, "LABELS", "not a label raster"),
    "assess-reflectance": ("assess_accuracy", {"INPUT": "reflectance", "REFERENCE": "points", "CLASS_FIELD": "id",
                                               "OUTPUT_CSV": "@out/a.csv", "OUTPUT_HTML": "@out/a.html"}, "INPUT",
                           "not a label raster"),
}
DEFAULT_OUTPUT = {"train_model": "OUTPUT", "train_classifier": "OUTPUT", "classify": "OUTPUT", "apply_model": "OUTPUT",
                  "sample_label_raster": "OUTPUT", "extract_patches": "OUTPUT", "grid_split": "OUTPUT_TRAIN"}


@pytest.mark.parametrize("case", list(FAST_CASES))
def test_cheap_errors_come_in_seconds_before_tensorflow_and_scikit_learn(case, data, tmp_path):
    operation, given, key, fragment = FAST_CASES[case]
    (tmp_path / "file").write_text("a file, not a folder")
    out = tmp_path / "out"

    def value(v):
        if isinstance(v, list):
            return [value(x) for x in v]
        if isinstance(v, str) and v.startswith("@file/"):
            return str(tmp_path / "file" / v[6:])
        if isinstance(v, str) and v.startswith("@out/"):
            return str(out / v[5:])
        return data.get(v, v) if isinstance(v, str) else v

    parameters = {name: value(v) for name, v in given.items()}
    if operation in DEFAULT_OUTPUT and DEFAULT_OUTPUT[operation] not in parameters:
        parameters[DEFAULT_OUTPUT[operation]] = str(out / ("model" if operation == "train_model" else "o.tif"))
    answer = in_a_worker(operation, parameters)
    print(f"{case}: {answer['seconds']:.2f} s of worker time")
    assert answer["error"] is not None, "the bad input was accepted"
    assert answer["error"]["parameter"] == key and fragment in answer["error"]["message"], answer["error"]
    assert answer["heavy"] == [], f"imported {answer['heavy']} before refusing"  # so it comes in seconds
    assert not out.exists()


def test_inputs_and_second_outputs_are_checked_before_loading_anything(data, tmp_path):
    """INPUTS is read against the card, OUTPUT_CONFIDENCE's folder before the classifier is unpickled."""
    answer = in_a_worker("train_model", {"TRAIN": data["train"], "MODEL": data["cnn5"], "EPOCHS": 1,
                                         "OUTPUT": str(tmp_path / "m"), "INPUTS": "x9=source1"})
    assert answer["error"]["parameter"] == "INPUTS" and "no input 'x9'" in answer["error"]["message"]
    assert answer["heavy"] == []
    answer = in_a_worker("classify", {"INPUT": [data["image"]], "CLASSIFIER": data["rf"],
                                      "OUTPUT": str(tmp_path / "new" / "c.tif"), "OUTPUT_CONFIDENCE": "/proc/x/p.tif"})
    assert answer["error"]["parameter"] == "OUTPUT_CONFIDENCE" and answer["heavy"] == []
    assert not (tmp_path / "new").exists()


def test_good_inputs_pass_the_checks(data, tmp_path):
    """A 5-band model card on the 5-band dataset, a label raster of Float32 class ids: the runs go on."""
    outputs = run("train_model", TRAIN=data["train"], MODEL=data["cnn5"], EPOCHS=1, OUTPUT=str(tmp_path / "m"))
    assert outputs["EPOCHS_RUN"] == 1 and (tmp_path / "m" / "saved_model.pb").exists()
    outputs = run("sample_label_raster", INPUT=data["labels"], NUMBER=3, OUTPUT=str(tmp_path / "s.gpkg"))
    assert outputs["COUNT"] == 21


# ---- the checks themselves --------------------------------------------------------------------------


def test_float_label_rasters_pass_when_their_values_are_whole(data, tmp_path):
    whole = gdal.Open(data["labels"])  # Float32 class ids 1..7 and nodata -99999
    checks.integer_valued(whole, data["labels"], "INPUT")
    values = gdal.Open(data["labels"]).ReadAsArray()
    with_nan = write_like(tmp_path / "nan.tif", data["labels"], np.where(values < 0, np.nan, values))
    checks.integer_valued(gdal.Open(with_nan), with_nan, "INPUT")
    with pytest.raises(PatchFlowError, match=r"reflectance.tif is not a label raster: band 1 \(float32\)") as error:
        checks.integer_valued(gdal.Open(data["reflectance"]), data["reflectance"], "LABELS")
    assert error.value.parameter == "LABELS"
    one = values.copy()
    one[-1, -1] = 3.5  # the last block is always among those read
    damaged = write_like(tmp_path / "one.tif", data["labels"], one, nodata=-99999)
    with pytest.raises(PatchFlowError, match="holds 3.5"):
        checks.integer_valued(gdal.Open(damaged), damaged, "LABEL_RASTER")
    integers = write_like(tmp_path / "int.tif", data["labels"], values.astype(np.int16), dtype=gdal.GDT_Int16)
    checks.integer_valued(gdal.Open(integers), integers, "INPUT")


@pytest.mark.parametrize("layout", [(), ("TILED=YES", "COMPRESS=DEFLATE"), ("INTERLEAVE=BAND",)])
def test_a_truncated_raster_names_its_parameter(data, tmp_path, layout):
    from osgeo import gdal as g

    full = tmp_path / "full.tif"
    g.Translate(str(full), data["image"], creationOptions=list(layout))
    checks.readable_raster(str(full), "SOURCE1")  # the whole file passes
    for fraction in (0.3, 0.9, 0.999):
        cut = truncate(str(full), tmp_path / f"cut{fraction}.tif", fraction)
        with pytest.raises(PatchFlowError) as error:
            checks.readable_raster(cut, "SOURCE1")
        assert error.value.parameter == "SOURCE1" and cut in error.value.message
        assert "truncated" in error.value.message or "cannot" in error.value.message


def test_writable_refuses_a_folder_under_a_file_and_creates_nothing(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PatchFlowError, match="is a file, not a folder") as error:
        checks.check_writable(str(tmp_path / "file" / "sub" / "o.tif"), "OUTPUT")
    assert error.value.parameter == "OUTPUT"
    checks.check_writable(str(tmp_path / "new" / "deeper" / "o.tif"), "OUTPUT")  # folders to make: fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


# ---- warnings -----------------------------------------------------------------------------------------


def without_crs(source: str, target: Path) -> str:
    ds = gdal.Translate(str(target), source)
    ds.SetProjection("")
    ds = None
    assert not gdal.Open(str(target)).GetProjection()
    return str(target)


@pytest.mark.parametrize("operation, keys", [("sample_label_raster", ["INPUT"]), ("grid_split", ["INPUT"]),
                                             ("assess_image_quality", ["INPUT", "REFERENCE"])])
def test_a_raster_without_crs_is_said(data, tmp_path, operation, keys):
    source = data["labels"] if operation == "sample_label_raster" else data["image"]
    raster = without_crs(source, tmp_path / "nocrs.tif")
    parameters = {
        "sample_label_raster": {"INPUT": "@", "NUMBER": 5, "OUTPUT": str(tmp_path / "s.gpkg")},
        "grid_split": {"INPUT": "@", "PATCH_SIZE": 32, "OUTPUT_TRAIN": str(tmp_path / "t.gpkg")},
        "assess_image_quality": {"INPUT": ["@"], "REFERENCE": ["@"], "OUTPUT_CSV": str(tmp_path / "q.csv"),
                                 "OUTPUT_HTML": str(tmp_path / "q.html")},
    }[operation]
    for path, expected in ((raster, keys), (source, [])):
        reporter = Reporter()
        run(operation, reporter, **{k: (path if v == "@" else [path] if v == ["@"] else v)
                                    for k, v in parameters.items()})
        said = [w for w in reporter.warnings if "has no CRS" in w]
        assert [w.split(":")[0] for w in said] == expected, reporter.warnings
        assert all(w.startswith(f"{key}: {raster} has no CRS") for w, key in zip(said, expected))


def test_grid_split_says_which_classes_the_validation_and_test_sets_lack(data, tmp_path):
    reporter = Reporter()
    run("grid_split", reporter, INPUT=data["image"], SAMPLES=data["points"], CLASS_FIELD="id", PATCH_SIZE=16,
        BLOCK_SIZE=8, TRAIN=0.6, VALID=0.2, TEST=0.2, SEED=1, STRATIFY=False, OUTPUT_TRAIN=str(tmp_path / "train.gpkg"),
        OUTPUT_VALID=str(tmp_path / "valid.gpkg"), OUTPUT_TEST=str(tmp_path / "test.gpkg"))

    def classes(name):
        ds = ogr.Open(str(tmp_path / f"{name}.gpkg"))
        return {feature.GetField("class") for feature in ds.GetLayer(0)}

    train = classes("train")
    for name, words in (("valid", "validation set (OUTPUT_VALID)"), ("test", "test set (OUTPUT_TEST)")):
        missing = sorted(train - classes(name))
        said = [w for w in reporter.warnings if words in w]
        if missing:
            assert len(said) == 1 and [int(t.split(" ")[0]) for t in said[0].split("class(es) ")[1]
                                       .split(":")[0].split(", ")] == missing, said
        else:
            assert not said
    assert any(words in w for w in reporter.warnings for words in ("validation set", "test set")), \
        "choose a seed or block size that leaves a class out of a set"


def test_assess_says_which_map_classes_the_reference_lacks(data, nc_nearest_mean_map, tmp_path):
    without_water = tmp_path / "reference.gpkg"
    gdal.VectorTranslate(str(without_water), data["points"], where="id <> 7")
    reporter = Reporter()
    run("assess_accuracy", reporter, INPUT=str(nc_nearest_mean_map), REFERENCE=str(without_water), CLASS_FIELD="id",
        OUTPUT_CSV=str(tmp_path / "a.csv"), OUTPUT_HTML=str(tmp_path / "a.html"))
    said = [w for w in reporter.warnings if "has no sample of class(es)" in w]
    assert len(said) == 1 and said[0].startswith("the reference (REFERENCE) has no sample of class(es) 7 "), said
    reporter = Reporter()
    run("assess_accuracy", reporter, INPUT=str(nc_nearest_mean_map), REFERENCE=data["points"], CLASS_FIELD="id",
        OUTPUT_CSV=str(tmp_path / "b.csv"), OUTPUT_HTML=str(tmp_path / "b.html"))
    assert not [w for w in reporter.warnings if "has no sample of class(es)" in w]


def test_training_says_batch_larger_than_the_dataset_valid_without_a_class_and_nothing_to_resume(data, tmp_path):
    valid = tmp_path / "valid.json"  # the validation set without class 1
    gdal.VectorTranslate(str(tmp_path / "v.gpkg"), data["folder"] + "/valid.gpkg", where="class <> 1")
    run("extract_patches", INPUT=str(tmp_path / "v.gpkg"), SOURCE1=[data["image"]], PATCH_SIZE1=16,
        CLASS_FIELD="class", OUTPUT=str(valid))
    count = json.loads(Path(data["train"]).read_text())["n_patches"]
    reporter = Reporter()
    outputs = run("train_model", reporter, TRAIN=data["train"], VALID=str(valid), EPOCHS=1, WIDTH=2,
                  BATCH_SIZE=count + 100, RESUME=True, OUTPUT=str(tmp_path / "m"))
    assert outputs["EPOCHS_RUN"] == 1
    assert f"BATCH_SIZE {count + 100} is larger than TRAIN's {count} patches" in "\n".join(reporter.warnings)
    said = [w for w in reporter.warnings if w.startswith(f"VALID ({valid}) has no sample of class(es) 1 ")]
    assert len(said) == 1, reporter.warnings
    assert any(line.startswith("RESUME: there is no interrupted training") for line in reporter.logs)


def test_resume_with_fewer_epochs_than_done_says_it_trains_none(data, tmp_path):
    class CancelAfterEpoch(Reporter):
        def __init__(self, event, epochs):
            super().__init__()
            self.event, self.epochs = event, epochs

        def log(self, text):
            super().log(text)
            if text.startswith(f"epoch {self.epochs}/"):
                self.event.set()

    job = {"TRAIN": data["train"], "EPOCHS": 4, "WIDTH": 2, "SEED": 1, "OUTPUT": str(tmp_path / "m")}
    event = threading.Event()
    with pytest.raises(Cancelled):
        run_job(protocol.Job("train_model", job, "c"), CancelAfterEpoch(event, 2), event)
    reporter = Reporter()
    outputs = run("train_model", reporter, **dict(job, EPOCHS=1, RESUME=True))
    said = [w for w in reporter.warnings if w.startswith("RESUME:")]
    assert len(said) == 1 and "has done 2 epochs, more than EPOCHS (1)" in said[0], reporter.warnings
    assert outputs["EPOCHS_RUN"] == 2  # what was exported, as the warning says
    assert not (tmp_path / "m.training").exists()


def test_resume_is_quiet_when_not_asked_or_when_it_resumes(tmp_path):
    work = tmp_path / "m.training"
    for values, expected in (({}, []), ({"RESUME": False}, []), ({"RESUME": True}, [])):  # a new OUTPUT: a log line
        reporter = Reporter()
        checks.resume(Params(values), reporter, str(work), "sig", 3)
        assert reporter.warnings == expected
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "saved_model.pb").write_bytes(b"")  # a finished model: RESUME will not train it on
    reporter = Reporter()
    checks.resume(Params({"RESUME": True}), reporter, str(work), "sig", 3)
    assert len(reporter.warnings) == 1 and "no interrupted training" in reporter.warnings[0]
    assert "give it as MODEL to fine-tune it" in reporter.warnings[0]
    work.mkdir()
    (work / "checkpoint.keras").write_bytes(b"")
    for done, warned in ((2, False), (3, False), (5, True)):
        (work / "state.json").write_text(json.dumps({"signature": "sig", "epoch": done}))
        reporter = Reporter()
        checks.resume(Params({"RESUME": True}), reporter, str(work), "sig", 3)
        assert bool(reporter.warnings) == warned, (done, reporter.warnings)
    reporter = Reporter()
    checks.resume(Params({"RESUME": True}), reporter, str(work), "other settings", 3)
    assert reporter.warnings == []  # the training itself says that checkpoint is not used
    shutil.rmtree(work)


def test_a_user_error_carries_no_traceback_that_would_repeat_it(tmp_path):
    """The worker's error line for a bad input holds the message once: no traceback (whose last line
    repeats it) for QGIS to print again; a bug keeps its traceback."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / ".cache" / "plugins"))
    job = protocol.Job("sample_label_raster", {"INPUT": str(tmp_path / "missing.tif"),
                                               "OUTPUT": str(tmp_path / "s.gpkg")}, "w")
    done = subprocess.run([sys.executable, "-m", "patchflow.plugin.engine", "worker"], input=job.to_line() + "\n",
                          capture_output=True, text=True, env=env, timeout=120)
    messages = [protocol.Message.from_line(line) for line in done.stdout.splitlines()]
    error = [m for m in messages if m is not None and m.kind == protocol.ERROR]
    assert len(error) == 1 and error[0].payload["parameter"] == "INPUT"
    assert error[0].payload["traceback"] == ""
    assert done.stdout.count("missing.tif") == 1 and "missing.tif" not in done.stderr
