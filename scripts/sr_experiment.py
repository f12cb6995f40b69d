#!/usr/bin/env python3
"""Does super-resolution help? The same FCNN (and, as a baseline, the same per-pixel Random Forest) on
the LR, bicubic, SR and HR images.

    make sr-experiment
    .venv/bin/python scripts/sr_experiment.py [--scene spot6|nc] [--data DIR] [--output DIR] [--sr-epochs N]

``--scene nc``: the NC Landsat-7 scene with its 7 land-cover classes (scripts/sr_experiment_nc.py,
output in sr-experiment-output/nc/). The default, ``--scene spot6``:

Needs the Spot-6 Amsterdam sample data (``../shared/data/spot6_amsterdam``: fake_spot6.jp2, 1.5 m, and
the OTBTF building patches); the plugin itself does not. Steps:

1. scripts/amsterdam_labels.py locates the labelled patches in the scene and writes the building
   labels on its grid (1 building, 2 background, 0 none);
2. spatial split at 60 % of the width: the left part trains (the SR model and the classifiers), the
   labels of the right part are held out;
3. resources/does_sr_help.model3 (scripts/make_sr_model3.py) runs in Processing: HR degraded x4
   (6 m, Wald's protocol) -> LR; SR generator trained on the left part's LR/HR pairs, applied to the LR;
   bicubic LR -> 1.5 m; per image, the per-pixel Random Forest trained on the left labels, the whole
   scene classified, assessed at every held-out label pixel (the LR map is read at the HR label pixels'
   centres);
4. the main table: per image, the same zoo FCNN (spatial context) trained on 96 x 96 m label
   patches around sampled training label pixels of the left part (Extract patches with the label
   raster, nodata 0 = no label = weight 0; Train model, fcnn), the whole scene classified (Apply
   model, class) and assessed at the same held-out label pixels. The LR image keeps its 6 m grid:
   16-px patches (the ground of the 64-px patches at 1.5 m) with the training labels at 6 m (the
   majority of the labelled 1.5 m pixels of each 6 m cell);
5. sr-experiment-output/comparison.csv and .html (FCNN, main table) and rf_comparison.csv and .html
   (the four per-pixel Random Forest score CSVs of the model: the baseline).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import amsterdam_labels  # noqa: E402
from make_model3 import start_qgis  # noqa: E402  (sets the Qt environment before QGIS loads)
from make_sr_model3 import IMAGE_WORDS, IMAGES, MODEL3  # noqa: E402
from osgeo import gdal  # noqa: E402
from sr_experiment_nc import write_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "sr-experiment-output"
SPLIT = 0.6  # share of the width (left) used for training
SCALE = 4
ROWS = {"lr": "a", "bicubic": "b", "sr": "c", "hr": "d"}
CLASSES = {amsterdam_labels.BUILDING: "building", amsterdam_labels.BACKGROUND: "background"}
PATCH_SIZE = 64  # FCNN patches at 1.5 m (96 m); the LR image's are PATCH_SIZE // SCALE px on the same ground
CENTRES_PER_CLASS = 200  # training patch centres drawn per class from the left labels
# the same FCNN settings for the four images (Train model's parameters; ARCHITECTURE 1: fcnn)
FCNN = {"ARCHITECTURE": 1, "WIDTH": 16, "EPOCHS": 15, "BATCH_SIZE": 16, "CLASS_WEIGHTS": True, "AUGMENT": True,
        "SEED": 0}

gdal.UseExceptions()


def split_inputs(labels: Path, scene: Path, out: Path) -> tuple[Path, Path, Path, int]:
    """Training labels (left), held-out labels (right), the left part of the HR image; the split
    column, a multiple of the scale so the left part degrades on the same LR grid."""
    ds = gdal.Open(str(labels))
    array = ds.ReadAsArray()
    column = int(array.shape[1] * SPLIT) // SCALE * SCALE
    paths = {}
    for name, keep in (("train", np.arange(array.shape[1]) < column), ("test", np.arange(array.shape[1]) >= column)):
        part = np.where(keep[None, :], array, amsterdam_labels.NO_LABEL).astype(np.uint8)
        paths[name] = out / f"labels_{name}.tif"
        amsterdam_labels.write_labels(part, ds, paths[name])
    left = out / "hr_left.tif"
    gdal.Translate(str(left), str(scene), srcWin=[0, 0, column, array.shape[0]])
    return paths["train"], paths["test"], left, column


def label_counts(path: Path) -> dict[str, int]:
    counts = np.bincount(gdal.Open(str(path)).ReadAsArray().ravel(), minlength=3)
    return {name: int(counts[class_id]) for class_id, name in CLASSES.items()}


def read_scores(path: Path) -> dict[str, float]:
    """kappa, OA and F1 per class from an Assess accuracy CSV."""
    scores: dict[str, float] = {}
    with open(path, newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            if row["id"]:
                scores[f"F1 {row['name']}"] = float(row["f1"])
            elif row["name"] in ("kappa", "overall accuracy"):
                scores["OA" if row["name"] == "overall accuracy" else "kappa"] = float(row["value"])
    return scores


def feedback(stream):
    """A Processing feedback writing its log to ``stream`` (errors to standard error too)."""
    from qgis.core import QgsProcessingFeedback

    class Feedback(QgsProcessingFeedback):
        def pushInfo(self, text: str) -> None:  # noqa: N802 (Qt's name)
            stream.write(text + "\n")

        def reportError(self, text: str, fatalError: bool = False) -> None:  # noqa: N802, N803
            stream.write("ERROR: " + text + "\n")
            print(f"sr_experiment: {text}", file=sys.stderr)

    return Feedback()


def run_processing(algorithm, parameters: dict, log: Path) -> dict:
    """An algorithm (or the model) in Processing; its log is appended to ``log``."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingException

    from patchflow.algorithms.base import inputs_without_side_files

    with open(log, "a", encoding="utf-8") as stream:
        try:
            with inputs_without_side_files():  # a model loads its raster inputs itself: no .aux.xml beside them
                return processing.run(algorithm, parameters, context=QgsProcessingContext(),
                                      feedback=feedback(stream))
        except QgsProcessingException as exc:
            name = algorithm if isinstance(algorithm, str) else "the model"
            raise SystemExit(f"sr_experiment: {name} failed: {exc} (log: {log})") from exc


def run_model(parameters: dict, log: Path) -> dict:
    from qgis.core import QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    if not model.fromFile(str(MODEL3)):
        raise SystemExit(f"sr_experiment: cannot load {MODEL3}")
    return run_processing(model, parameters, log)


def fcnn_inputs(train: Path, test: Path, lr: Path, column: int, out: Path) -> dict[str, Path]:
    """What every FCNN shares: the bicubic image (as the model makes it), the training labels at 6 m
    (majority of the labelled 1.5 m pixels per cell), the patch centres (training label pixels whose
    patch stays left of the split) and the held-out reference points."""
    hr_pixel = abs(gdal.Open(str(train)).GetGeoTransform()[1])
    paths = {"bicubic": out / "bicubic.tif", "train_lr": out / "labels_train_6m.tif",
             "centres_raster": out / "labels_centres.tif", "centres": out / "fcnn_centres.gpkg",
             "reference": out / "reference.gpkg"}
    gdal.Warp(str(paths["bicubic"]), str(lr), xRes=hr_pixel, yRes=hr_pixel, resampleAlg="cubic")
    coarse = gdal.Warp("", str(train), xRes=hr_pixel * SCALE, yRes=hr_pixel * SCALE, resampleAlg="mode",
                      srcNodata=amsterdam_labels.NO_LABEL, dstNodata=amsterdam_labels.NO_LABEL, format="MEM")
    amsterdam_labels.write_labels(coarse.ReadAsArray(), coarse, paths["train_lr"])  # with the class names
    ds = gdal.Open(str(train))
    labels = ds.ReadAsArray()
    labels[:, column - PATCH_SIZE // 2:] = amsterdam_labels.NO_LABEL
    amsterdam_labels.write_labels(labels, ds, paths["centres_raster"])
    log = out / "fcnn.log"
    run_processing("patchflow:samplefromlabelraster", {
        "INPUT": str(paths["centres_raster"]), "STRATEGY": 0, "NUMBER": CENTRES_PER_CLASS, "PATCH_SIZE": PATCH_SIZE,
        "SEED": 0, "OUTPUT": str(paths["centres"])}, log)
    run_processing("patchflow:samplefromlabelraster", {
        "INPUT": str(test), "STRATEGY": 1, "PATCH_SIZE": 1, "SEED": 0, "OUTPUT": str(paths["reference"])}, log)
    return paths


def run_fcnn(key: str, image: Path, labels: Path, patch_size: int, shared: dict[str, Path], out: Path) -> Path:
    """Extract label patches, train the FCNN, classify the scene, assess: the scores CSV."""
    folder, log = out / "fcnn" / key, out / "fcnn.log"
    folder.mkdir(parents=True)
    run_processing("patchflow:extractpatches", {
        "INPUT": str(shared["centres"]), "SOURCE1": [str(image)], "PATCH_SIZE1": patch_size,
        "LABEL_RASTER": str(labels), "OUTPUT": str(folder / "patches.json")}, log)
    run_processing("patchflow:trainmodel", {
        "TRAIN": str(folder / "patches.json"), **FCNN, "OVERWRITE": True, "OUTPUT": str(folder / "model")}, log)
    run_processing("patchflow:applymodel", {
        "MODEL": str(folder / "model"), "SOURCE1": [str(image)], "OUTPUTS": "class",
        "OUTPUT": str(folder / "map.tif")}, log)
    scores = out / "reports" / f"fcnn_{key}.csv"
    run_processing("patchflow:assessaccuracy", {
        "INPUT": str(folder / "map.tif"), "REFERENCE": str(shared["reference"]), "CLASS_FIELD": "class",
        "OUTPUT_CSV": str(scores), "OUTPUT_HTML": str(scores.with_suffix(".html"))}, log)
    return scores


FCNN_TEXT = (f"The same FCNN (zoo fcnn, width {FCNN['WIDTH']}, {FCNN['EPOCHS']} epochs, class weights, "
             f"augmentation, seed 0) trained on each image's label patches ({PATCH_SIZE} px at 1.5 m, "
             f"{PATCH_SIZE // SCALE} px on the 6 m LR image: the same ground) around {CENTRES_PER_CLASS} training "
             "label pixels per class of the left 60 % of the scene, assessed at every labelled pixel of the right "
             "40 % (held out). The per-pixel Random Forest baseline: rf_comparison.html. Details: reports/*.html.")
RF_TEXT = ("The per-pixel baseline: the same Random Forest (4 band values, 1000 training pixels per class from the "
           "left 60 % of the scene) on each image, assessed at every labelled pixel of the right 40 % (held out). "
           "Details: reports/*.html.")


COLUMNS = ["row", "image", "pixel", "kappa", "OA", "F1 building", "F1 background"]
TITLE = "Does super-resolution help?"


def text_table(rows: list[dict]) -> str:
    lines = [f"{'':3}{'image':<24}{'pixel':>7}{'kappa':>8}{'OA':>8}{'F1 bldg':>9}{'F1 bg':>8}"]
    for row in rows:
        lines.append(f"{row['row'] + ')':3}{row['image']:<24}{row['pixel']:>7}{row['kappa']:>8.3f}{row['OA']:>8.3f}"
                     f"{row['F1 building']:>9.3f}{row['F1 background']:>8.3f}")
    return "\n".join(lines)


def main_nc(args: argparse.Namespace) -> int:
    import sr_experiment_nc

    data = (args.data or sr_experiment_nc.default_data()).resolve()
    out = (args.output or DEFAULT_OUTPUT / "nc").resolve()
    if not (data / sr_experiment_nc.IMAGE).exists():
        print(f"sr_experiment: {data / sr_experiment_nc.IMAGE} is missing: run scripts/get_demo_data.sh (make data) "
              "or pass --data DIR.", file=sys.stderr)
        return 2
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    app = start_qgis()
    try:
        return sr_experiment_nc.run_nc(data, out, args.sr_epochs,
                                       lambda algorithm, parameters: run_processing(algorithm, parameters,
                                                                                    out / "experiment.log"),
                                       read_scores)
    finally:
        app.exitQgis()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", choices=("spot6", "nc"), default="spot6",
                        help="spot6: Amsterdam buildings (default); nc: NC Landsat-7 land cover "
                             "(scripts/sr_experiment_nc.py)")
    parser.add_argument("--data", type=Path, help="default: the scene's sample data")
    parser.add_argument("--output", type=Path, help="recreated on every run (default: sr-experiment-output[/nc])")
    parser.add_argument("--sr-epochs", type=int, default=8)
    args = parser.parse_args(argv)
    if args.scene == "nc":
        return main_nc(args)
    args.data = args.data or amsterdam_labels.DEFAULT_DATA
    args.output = args.output or DEFAULT_OUTPUT
    data, out = args.data.resolve(), args.output.resolve()
    scene = data / amsterdam_labels.SCENE
    if not scene.exists():
        print(f"sr_experiment: {scene} is missing. The experiment needs the Spot-6 Amsterdam sample data "
              "(../shared/data/spot6_amsterdam, or --data DIR); the plugin itself does not.", file=sys.stderr)
        return 2
    if out.exists():
        shutil.rmtree(out)
    (out / "reports").mkdir(parents=True)
    started = time.monotonic()
    located = amsterdam_labels.make_labels(data, out / "labels.tif")
    print(f"labels: {located.found} patches located in the scene ({len(located.missing)} not found), "
          f"{located.labelled_pixels} labelled pixels")
    train, test, left, column = split_inputs(out / "labels.tif", scene, out)
    print(f"split at column {column}: training labels {label_counts(train)}, held out {label_counts(test)}")
    app = start_qgis()
    hr_pixel = abs(gdal.Open(str(scene)).GetGeoTransform()[1])
    parameters = {
        "hr": str(scene), "sr_train_hr": str(left), "train_labels": str(train), "test_labels": str(test),
        "scale": SCALE, "hr_pixel_size": hr_pixel,
        "sr_epochs": args.sr_epochs, "samples_per_class": 1000,
        "degrade:lr_image": str(out / "lr.tif"), "sr_apply:sr_image": str(out / "sr.tif"),
        **{f"assess_{key}:scores": str(out / "reports" / f"{key}.csv") for key in IMAGES},
        **{f"assess_{key}:report": str(out / "reports" / f"{key}.html") for key in IMAGES},
        "compare:comparison": str(out / "rf_compared.csv"), "compare:comparison_report": str(out / "rf_compared.html"),
    }
    timings = {}
    run_model(parameters, out / "model.log")
    timings["model (SR training, 4 RF)"] = time.monotonic() - started
    pixels = {key: f"{abs(gdal.Open(str(out / 'lr.tif')).GetGeoTransform()[1]) if key == 'lr' else hr_pixel:g} m"
              for key in IMAGES}
    rf_rows = [{"row": ROWS[key], "image": IMAGE_WORDS[key], "pixel": pixels[key],
                **read_scores(out / "reports" / f"{key}.csv")} for key in IMAGES]
    shared = fcnn_inputs(train, test, out / "lr.tif", column, out)
    images = {"lr": out / "lr.tif", "bicubic": shared["bicubic"], "sr": out / "sr.tif", "hr": scene}
    fcnn_rows = []
    for key in IMAGES:
        start = time.monotonic()
        lr = key == "lr"
        scores = run_fcnn(key, images[key], shared["train_lr"] if lr else train,
                          PATCH_SIZE // SCALE if lr else PATCH_SIZE, shared, out)
        timings[f"FCNN {key}"] = time.monotonic() - start
        print(f"FCNN {key}: {timings[f'FCNN {key}']:.0f} s")
        fcnn_rows.append({"row": ROWS[key], "image": IMAGE_WORDS[key], "pixel": pixels[key], **read_scores(scores)})
    csv_path, html_path = write_table(fcnn_rows, COLUMNS, out, "comparison", TITLE, FCNN_TEXT)
    rf_csv, rf_html = write_table(rf_rows, COLUMNS, out, "rf_comparison", TITLE, RF_TEXT)
    from sr_experiment_nc import question_sentences, significance

    def processing_run(algorithm: str, parameters: dict) -> dict:
        return run_processing(algorithm, parameters, out / "experiment.log")

    fcnn_tests = significance({key: out / "reports" / f"fcnn_{key}.csv" for key in IMAGES}, out,
                              "compared", processing_run)
    # the model's own Compare accuracy step compared the Random Forest maps (names "a) LR image", ...)
    rf_tests = question_sentences(out / "rf_compared_significance.csv",
                                  {key: f"{letter}) {IMAGE_WORDS[key]}" for letter, key in zip("abcd", IMAGES)})
    print(f"\nDoes super-resolution help? ({time.monotonic() - started:.0f} s)\n\nFCNN (spatial context):\n"
          f"{text_table(fcnn_rows)}\n" + "".join(f"  {sentence}\n" for sentence in fcnn_tests)
          + f"\nper-pixel Random Forest (baseline):\n{text_table(rf_rows)}\n"
          + "".join(f"  {sentence}\n" for sentence in rf_tests) + "\n"
          + "".join(f"{name}: {seconds:.0f} s\n" for name, seconds in timings.items())
          + f"\ntables: {csv_path}\n        {html_path}\n        {rf_csv}\n        {rf_html}\n"
            f"        {out / 'compared.html'}, {out / 'rf_compared.html'} (bootstrap intervals, McNemar)")
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
