"""The same classifier trained on each version of the image (training part only), then the whole
version classified: a zoo CNN with a class per pixel (fcnn, unet: label patches around sampled training
pixels, Extract patches + Train model + Apply model), or a Random Forest on each pixel's band values with
their neighbourhood mean and std (spatial features: Extract patches + Train classifier + Classify). A
coarser version (LR) gets the training labels on its own grid (the majority of the labelled HR pixels
of each cell) and patches of the same ground (rounded up to what the architecture takes)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ..models.zoo import ARCHITECTURES
from ..params import RunContext
from ..reporting import Reporter
from .srscene import Scene, centres_labels, write_labels
from .srversions import Version
from .steps import run_step

CNNS = ("fcnn", "unet")
WORDS = {"fcnn": "FCNN", "unet": "U-Net", "rf": "Random Forest (spatial features)"}


@dataclass(frozen=True)
class ClassifierSettings:
    kind: str  # fcnn, unet, rf
    patch: int  # HR pixels (CNN)
    samples: int  # training centres per class
    epochs: int
    neighbourhood: int  # RF: N x N pixels
    width: int = 16
    batch: int = 16
    trees: int = 100

    @property
    def name(self) -> str:
        return WORDS[self.kind]

    def text(self) -> str:
        if self.kind == "rf":
            return (f"Random Forest ({self.trees} trees) on each pixel's band values and their mean and std over its "
                    f"{self.neighbourhood} x {self.neighbourhood} neighbourhood, {self.samples} training pixels per "
                    "class")
        return (f"zoo {self.kind} (width {self.width}, {self.epochs} epochs, batch {self.batch}, class weights, "
                f"augmentation) on {self.patch}-px label patches around {self.samples} training pixels per class")

    def patch_on(self, version: Version, hr_pixel: float) -> int:
        """The patch on ``version``'s grid covering the HR patch's ground, rounded up to the architecture's."""
        if self.kind == "rf":
            return self.neighbourhood
        arch = ARCHITECTURES[self.kind]
        size = max(1, round(self.patch * hr_pixel / abs(version.grid.dx)))
        multiple = max(1, arch.patch_multiple)
        return max(math.ceil(size / multiple) * multiple, arch.min_segmentation_patch or 0, multiple)


class Trainer:
    """Trains the classifier on the versions, one seed at a time; the training points (and the label
    rasters of each grid) are made once and shared by every version and seed."""

    def __init__(self, scene: Scene, settings: ClassifierSettings, work: str, context: RunContext) -> None:
        self.scene, self.settings, self.work, self.context = scene, settings, work, context
        self.labels: dict[tuple, str] = {}
        self.points = ""
        self.notes: list[str] = []

    def sample(self, reporter: Reporter) -> int:
        """The training points: SAMPLES per class of the training labels (a CNN's: whose patch stays in
        the training part)."""
        cnn = self.settings.kind in CNNS
        size = self.settings.patch if cnn else self.settings.neighbourhood
        source = centres_labels(self.scene, size if cnn else 1, os.path.join(self.work, "centres.tif"))
        self.points = os.path.join(self.work, "training_points.gpkg")
        result = run_step("sample_label_raster", {
            "INPUT": source, "STRATEGY": "constant", "NUMBER": self.settings.samples, "PATCH_SIZE": size, "SEED": 0,
            "OUTPUT": self.points}, self.context, reporter, "sampling the training pixels")
        return int(result.get("COUNT") or 0)

    def labels_on(self, version: Version) -> str:
        """The training labels on the version's grid."""
        g = version.grid
        key = (g.width, g.height, round(g.x0, 6), round(g.y0, 6), round(g.dx, 9), round(g.dy, 9))
        if key not in self.labels:
            path = os.path.join(self.work, f"labels_{len(self.labels)}.tif")
            same = g.same_as(self.scene.grid)
            self.labels[key] = write_labels(self.scene, self.scene.train, path, None if same else g)
        return self.labels[key]

    def train(self, version: Version, seed: int, map_path: str, reporter: Reporter, label: str) -> str:
        """Train on ``version`` with ``seed`` and classify the whole of it into ``map_path``; ``label``
        ("version 2/4 (bicubic), repeat 1/3") begins the progress texts."""
        folder = os.path.join(self.work, f"{version.key}_seed{seed}")
        s = self.settings
        patch = s.patch_on(version, abs(self.scene.grid.dx))
        what = f"the {s.name} on the {version.name} image (seed {seed})"
        if s.kind in CNNS:
            run_step("extract_patches", {
                "INPUT": self.points, "SOURCE1": [version.path], "PATCH_SIZE1": patch,
                "LABEL_RASTER": self.labels_on(version), "OUTPUT": os.path.join(folder, "patches.json"),
            }, self.context, reporter.span(0, 10), f"extracting the patches of {what}")
            reporter.stage(f"{label}: training", 10, log=False)
            run_step("train_model", {
                "TRAIN": os.path.join(folder, "patches.json"), "ARCHITECTURE": s.kind, "WIDTH": s.width,
                "EPOCHS": s.epochs, "BATCH_SIZE": s.batch, "CLASS_WEIGHTS": True, "AUGMENT": True, "SEED": seed,
                "OUTPUT": os.path.join(folder, "model"),
            }, self.context, reporter.span(10, 80), f"training {what}")
            reporter.stage(f"{label}: classifying", 80, log=False)
            run_step("apply_model", {
                "MODEL": os.path.join(folder, "model"), "SOURCE1": [version.path], "OUTPUTS": "class",
                "OUTPUT": map_path}, self.context, reporter.span(80, 100), f"classifying with {what}")
            return map_path
        run_step("extract_patches", {
            "INPUT": self.points, "SOURCE1": [version.path], "PATCH_SIZE1": patch, "CLASS_FIELD": "class",
            "OUTPUT": os.path.join(folder, "pixels.json")}, self.context, reporter.span(0, 10),
            f"extracting the training pixels of {what}")
        reporter.stage(f"{label}: training", 10, log=False)
        run_step("train_classifier", {
            "DATASET": os.path.join(folder, "pixels.json"), "FEATURES": "pixels_neighbourhood",
            "NEIGHBOURHOOD": patch, "CLASSIFIER": "rf", "N_TREES": s.trees, "SEED": seed,
            "OUTPUT": os.path.join(folder, "rf.skops")}, self.context, reporter.span(10, 40), f"training {what}")
        reporter.stage(f"{label}: classifying", 40, log=False)
        run_step("classify", {"INPUT": [version.path], "CLASSIFIER": os.path.join(folder, "rf.skops"),
                              "OUTPUT": map_path}, self.context, reporter.span(40, 100), f"classifying with {what}")
        return map_path
