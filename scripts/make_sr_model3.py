#!/usr/bin/env python3
"""Writes resources/does_sr_help.model3: "Does super-resolution help?" as a graphical-modeler model.

    .venv/bin/python scripts/make_sr_model3.py [--output PATH]

The HR image is degraded (Wald's protocol, x scale) into the LR image; a super-resolution generator
is trained on LR/HR pairs of another HR image (the part set aside for it: train it on the labels'
training side so the assessed side stays unseen) and serves the LR image at the HR grid (SR); the
LR image is also upsampled bicubically to the HR pixel size. Then the same per-pixel Random Forest
is trained on the same training labels with each of the four images (LR, bicubic, SR, HR),
classifies it, and the map is assessed at every pixel of the held-out labels (points at the label
pixels' centres, so the LR map is read where the HR labels are), and Compare accuracy puts the four
reports side by side in one table (comparison CSV + HTML). Headless:

    bash scripts/qgis_process.sh run resources/does_sr_help.model3 -- hr=HR.tif sr_train_hr=LEFT.tif \\
        train_labels=TRAIN.tif test_labels=TEST.tif hr_pixel_size=1.5 \\
        assess_lr:scores=lr.csv assess_bicubic:scores=bicubic.csv assess_sr:scores=sr.csv assess_hr:scores=hr.csv ...
"""

from __future__ import annotations

import sys
from pathlib import Path

import make_model3  # scripts/make_model3.py: the model builder and QGIS start-up it shares
from make_model3 import INTEGER, Chain
from qgis.core import QgsProcessingParameterNumber, QgsProcessingParameterRasterLayer

ROOT = Path(__file__).resolve().parent.parent
MODEL3 = ROOT / "resources" / "does_sr_help.model3"
DOUBLE = QgsProcessingParameterNumber.Double
# number inputs' defaults, reaching the children as coalesce(@input, default) (see make_model3.py)
NUMBERS = {"scale": 4, "hr_pixel_size": 1.5, "sr_epochs": 8, "samples_per_class": 1000}
make_model3.NUMBERS.update(NUMBERS)
IMAGES = ("lr", "bicubic", "sr", "hr")
IMAGE_WORDS = {"lr": "LR image", "bicubic": "bicubic-upsampled LR", "sr": "SR image", "hr": "HR image"}
HELP = (
    "Does super-resolution help a classifier? The HR image is degraded ×scale (Wald's protocol) into the LR "
    "image; a super-resolution generator trained on the LR/HR pairs of the HR image set aside for it serves "
    "the LR image at the HR grid; the LR image is also upsampled bicubically. The same per-pixel Random Forest "
    "(1000 training pixels per class by default) is trained on the training labels with each of "
    "the four images (a: LR, b: bicubic, c: SR, d: HR), classifies it and is assessed at every pixel of the "
    "held-out labels.<br><br>Outputs: the LR and SR images, per image the accuracy scores (CSV: kappa, "
    "F1 per class) and report (HTML), and the comparison of the four maps in one table (CSV and HTML, "
    "Compare accuracy). scripts/sr_experiment.py runs this model on the Spot-6 Amsterdam scene."
)
PARAMETER_HELP = {
    "hr": "The high-resolution image (every band is used).",
    "sr_train_hr": "The HR image the SR generator learns from (e.g. the part of the HR image on the training "
                   "labels' side; the HR image itself if no labelled area must stay unseen).",
    "train_labels": "Label raster on the HR grid for training the classifiers (class ids, 0 or nodata: none).",
    "test_labels": "Held-out label raster for assessing the four maps (class ids, 0 or nodata: none).",
    "scale": "Degradation factor: LR pixel / HR pixel.",
    "hr_pixel_size": "The HR image's pixel size (map units): the bicubic upsampling's target resolution.",
    "sr_epochs": "Training epochs of the SR generator.",
    "samples_per_class": "Training pixels per class for each Random Forest.",
}


def build_model():
    chain = Chain()
    chain.model.setName("does_sr_help")
    chain.model.setGroup("PatchFlow")
    for column, (name, text) in enumerate((("hr", "HR image"), ("sr_train_hr", "HR image to train the SR model on"),
                                           ("train_labels", "Training labels (raster)"),
                                           ("test_labels", "Held-out labels (raster)"))):
        chain.add_input(QgsProcessingParameterRasterLayer(name, text), 120 + 220 * column, 60)
    chain.add_input(QgsProcessingParameterNumber("scale", "Scale (LR / HR pixel)", INTEGER, NUMBERS["scale"],
                                                 minValue=2), 1000, 60)
    chain.add_input(QgsProcessingParameterNumber("hr_pixel_size", "HR pixel size", DOUBLE, NUMBERS["hr_pixel_size"],
                                                 minValue=0.0), 1220, 60)
    chain.add_input(QgsProcessingParameterNumber("sr_epochs", "SR training epochs", INTEGER, NUMBERS["sr_epochs"],
                                                 minValue=1), 1440, 60)
    chain.add_input(QgsProcessingParameterNumber("samples_per_class", "Training samples per class", INTEGER,
                                                 NUMBERS["samples_per_class"], minValue=1), 1660, 60)

    scale = ("input", "scale")
    chain.add_child("patchflow:buildsrdataset", "degrade", "Degrade the HR image (LR)", {
        "HR": ("input", "hr"), "SCALE": scale, "PATCH_SIZE": 16, "VALID": 0.0}, 120, 200,
        {"lr_image": ("OUTPUT_LR", "LR image (the HR image degraded)")})
    chain.add_child("patchflow:buildsrdataset", "sr_pairs", "LR/HR pairs for the SR model", {
        "HR": ("input", "sr_train_hr"), "SCALE": scale, "PATCH_SIZE": 16, "STEP": 8, "VALID": 0.2, "SEED": 0},
        460, 200)
    chain.add_child("patchflow:trainmodel", "sr_train", "Train the SR generator", {
        "TRAIN": ("child", "sr_pairs", "OUTPUT_TRAIN"), "VALID": ("child", "sr_pairs", "OUTPUT_VALID"),
        "ARCHITECTURE": 3, "WIDTH": 32, "EPOCHS": ("input", "sr_epochs"), "BATCH_SIZE": 16, "SEED": 0,
        "OVERWRITE": True}, 460, 320)
    chain.add_child("patchflow:applymodel", "sr_apply", "Super-resolve the LR image", {
        "MODEL": ("child", "sr_train", "OUTPUT"), "SOURCE1": ("child", "degrade", "OUTPUT_LR"), "OUTPUTS": "image"},
        460, 440,
        {"sr_image": ("OUTPUT", "SR image")})
    chain.add_child("gdal:warpreproject", "bicubic", "Bicubic upsampling of the LR image", {
        "INPUT": ("child", "degrade", "OUTPUT_LR"), "RESAMPLING": 2,  # cubic convolution (3 is cubic spline)
        "TARGET_RESOLUTION": ("input", "hr_pixel_size")}, 120, 440)
    chain.add_child("patchflow:samplefromlabelraster", "samples", "Training pixels", {
        "INPUT": ("input", "train_labels"), "STRATEGY": 0, "NUMBER": ("input", "samples_per_class"),
        "PATCH_SIZE": 1, "SEED": 0}, 800, 200)
    chain.add_child("patchflow:samplefromlabelraster", "reference", "Held-out label pixels", {
        "INPUT": ("input", "test_labels"), "STRATEGY": 1, "PATCH_SIZE": 1, "SEED": 0}, 1140, 200)

    images = {"lr": ("child", "degrade", "OUTPUT_LR"), "bicubic": ("child", "bicubic", "OUTPUT"),
              "sr": ("child", "sr_apply", "OUTPUT"), "hr": ("input", "hr")}
    for column, key in enumerate(IMAGES):
        x, words = 120 + 340 * column, IMAGE_WORDS[key]
        chain.add_child("patchflow:extractpatches", f"pixels_{key}", f"Pixel values ({words})", {
            "INPUT": ("child", "samples", "OUTPUT"), "SOURCE1": images[key], "PATCH_SIZE1": 1,
            "CLASS_FIELD": "class"}, x, 580)
        chain.add_child("patchflow:trainclassifier", f"rf_{key}", f"Random Forest ({words})", {
            "DATASET": ("child", f"pixels_{key}", "OUTPUT"), "CLASSIFIER": 0, "N_TREES": 50, "SEED": 0}, x, 700)
        chain.add_child("patchflow:classify", f"map_{key}", f"Classify ({words})", {
            "INPUT": images[key], "CLASSIFIER": ("child", f"rf_{key}", "OUTPUT")}, x, 820)
        chain.add_child("patchflow:assessaccuracy", f"assess_{key}", f"Assess ({words})", {
            "INPUT": ("child", f"map_{key}", "OUTPUT"), "REFERENCE": ("child", "reference", "OUTPUT"),
            "CLASS_FIELD": "class"}, x, 940,
            {"scores": ("OUTPUT_CSV", f"Scores, {words} (CSV)"),
             "report": ("OUTPUT_HTML", f"Accuracy report, {words} (HTML)")})

    chain.add_child("patchflow:compareaccuracy", "compare", "Compare the four maps", {
        "REPORTS": [("child", f"assess_{key}", "OUTPUT_CSV") for key in IMAGES],
        "NAMES": ";".join(f"{letter}) {IMAGE_WORDS[key]}" for letter, key in zip("abcd", IMAGES))}, 580, 1080,
        {"comparison": ("OUTPUT_CSV", "Comparison of the four maps (CSV)"),
         "comparison_report": ("OUTPUT_HTML", "Comparison of the four maps (HTML)")})

    model = chain.model
    model.setHelpContent({"ALG_DESC": HELP, "ALG_CREATOR": "PatchFlow (scripts/make_sr_model3.py)",
                          **PARAMETER_HELP})
    ok, errors = model.validate()
    if not ok:
        raise SystemExit("make_sr_model3: the model does not validate:\n" + "\n".join(errors))
    return model


def main(argv: list[str] | None = None) -> int:
    return make_model3.write_model(build_model, MODEL3, __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
