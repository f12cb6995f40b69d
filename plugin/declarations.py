"""Every operation's parameters and outputs, declared once (no QGIS, no numpy).

The QGIS side builds its Processing parameters and outputs from these declarations
(algorithms/base.py) and turns the dialog's values into a job by parameter kind; the engine's
``Params`` (plugin/engine/params.py) takes defaults, bounds and choices from them. Names are the
Processing names (INPUT, PATCH_SIZE, ...), and an engine result's keys are the output names.

Kinds of parameter, and what the job carries for each:

- ``integer``, ``number``, ``distance`` (a number in the units of ``parent``'s CRS), ``band``: a number;
- ``boolean``: true/false, or with ``choices`` the engine value of false and of true;
- ``enum``: the engine value of the chosen item (``choices`` are ``(engine value, label)`` pairs);
- ``string``, ``field`` (of the layer ``parent``): text;
- ``file``, ``model`` (a file; a SavedModel's saved_model.pb becomes its folder): a path;
- ``raster``, ``vector``: a path (a vector may be ``path|layername=name``); ``rasters``, ``files``: paths;
- ``extent``: "xmin,xmax,ymin,ymax" in the CRS of the first layer of ``parent``;
- ``raster_destination``, ``vector_destination``, ``file_destination``, ``folder_destination``: a path.

Kinds of output: ``number``, ``string``, ``file``, ``folder``, ``html``. A destination parameter is an
output as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DESTINATIONS = ("raster_destination", "vector_destination", "file_destination", "folder_destination")
# the Params accessor(s) the engine reads each kind with
ENGINE_KINDS: dict[str, tuple[str, ...]] = {
    "integer": ("integer",), "band": ("integer",), "number": ("number", "nodata"), "distance": ("number",),
    "boolean": ("boolean",), "enum": ("choice",), "string": ("string",), "field": ("string",),
    "file": ("string",), "model": ("string",), "raster": ("string", "paths"), "vector": ("string",),
    "extent": ("string",),
    "rasters": ("paths",), "files": ("paths",), **{kind: ("string",) for kind in DESTINATIONS},
}
TRUST_MODEL = "TRUST_MODEL"
MODEL_FILES = "Models (*.keras saved_model.pb);;All files (*)"
JSON_FILES = "JSON files (*.json)"


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    label: str
    default: Any = None  # engine value (an enum's engine value, not its index)
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[tuple[str, str], ...] = ()  # (engine value, label); a boolean's: (false's, true's)
    optional: bool = False
    advanced: bool = False
    help: str = ""
    why: str = ""  # why the bounds, told when a value is out of them
    # QGIS-only, declarative too
    layers: tuple[str, ...] = ()  # "raster", "point", "polygon", "vector", "file"
    parent: str = ""  # the layer of a field, band or distance; the layers whose CRS an extent is in
    file_filter: str = ""
    create_by_default: bool = True
    file_based: bool = False  # a vector destination that must be a file (no memory layer)
    style: str = ""  # the result key holding the QML the engine wrote for this output, loaded with it

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(value for value, _ in self.choices)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for _, label in self.choices)

    @property
    def destination(self) -> bool:
        return self.kind in DESTINATIONS

    @property
    def engine_default(self) -> Any:
        """The value the engine takes when the job does not give one (a boolean with choices: the
        engine value of its default)."""
        if self.kind == "boolean" and self.choices:
            return self.values[bool(self.default)]
        if self.kind == "enum" and self.default is None:
            return self.values[0]
        return self.default


@dataclass(frozen=True)
class Output:
    name: str
    kind: str  # number, string, file, folder, html
    label: str


@dataclass(frozen=True)
class Operation:
    name: str
    parameters: tuple[Param, ...]
    outputs: tuple[Output, ...] = ()

    def parameter(self, name: str) -> Param | None:
        return next((p for p in self.parameters if p.name == name), None)

    @property
    def results(self) -> tuple[str, ...]:
        """The keys of the engine's result: the destinations and the outputs, in order."""
        return tuple(p.name for p in self.parameters if p.destination) + tuple(o.name for o in self.outputs)


# ---- choices shared by several operations ---------------------------------------------------------

SAMPLING_STRATEGIES = (
    ("constant", "Constant: the same number per class"),
    ("all", "All labelled pixels"),
    ("smallest", "Smallest class size, for every class"),
    ("total", "Total number, split in proportion to class sizes"),
)
SPLIT_STRATEGIES = (
    ("split", "Split: random blocks in the given proportions"),
    ("chessboard", "Chessboard: blocks alternate training / validation"),
    ("all", "All: every patch to training"),
    ("balanced", "Balanced: split, then as many patches per class as the rarest has"),
)
# plugin/engine/zoo.py ARCHITECTURES
ARCHITECTURES = (
    ("patch_cnn", "Patch CNN (OTBTF tutorial): 16×16 patch → one class"),
    ("fcnn", "FCNN (OTBTF API tutorial, U-Net-like): one class per pixel"),
    ("unet", "U-Net with batch normalisation: one class per pixel"),
    ("sr_generator", "Super-resolution generator (SR4RS-style): LR patch → HR patch (a super-resolution dataset)"),
    ("fusion_cnn", "Fusion CNN (OTBTF/M3Fusion-style): one branch per image source, each at its own resolution "
     "and patch size → one class per patch (a dataset of 2 sources or more)"),
    ("fusion_unet", "Fusion U-Net: coarser sources upsampled (integer ratio) to source 1's grid, then U-Net → one "
     "class per pixel (a dataset of 2 sources or more)"),
)
MODES = (
    ("auto", "Auto: patch-based for one pixel per receptive field, else fully convolutional"),
    ("fully_convolutional", "Fully convolutional: whole blocks, outputs on the model's own grid"),
    ("patch", "Patch-based: one receptive field per output pixel (every STRIDE pixels)"),
)
OUTPUT_TYPES = (("auto", "Auto: the smallest integer type for classes, else float32"),
                *((name, name) for name in ("uint8", "uint16", "int16", "int32", "float32")))
OPTIMIZERS = tuple((name, name) for name in ("adam", "adamw", "sgd", "rmsprop"))
LOSSES = (
    ("auto", "Auto: cross-entropy for classes, L1 for images"),
    ("crossentropy", "Cross-entropy"),
    ("l1", "L1 (mean absolute error, images)"),
    ("l2", "L2 (mean squared error, images)"),
    ("ssim", "SSIM (1 - structural similarity, images)"),
)
DEVICES = (
    ("auto", "Auto: a GPU if TensorFlow sees one, else the CPU"),
    ("cpu", "CPU"),
    ("gpu", "One GPU"),
    ("multi-gpu", "Several GPUs (MirroredStrategy)"),
)
NORMALIZATIONS = (
    ("auto", "Auto: the model card's, else the training set's mean/std"),
    ("dataset", "The training set's per-band mean/std"),
    ("none", "None: raw pixel values"),
)
# plugin/engine/classify/features.py PIXELS, CONTEXT
PIXEL_FEATURES = (("pixels", "Pixel values"),
                  ("pixels_neighbourhood", "Pixel values + neighbourhood mean and std (per band, N x N pixels)"))
RESTORE_CHOICES = (
    ("auto", "Auto: the best epoch's with early stopping (PATIENCE > 0), else the last epoch's"),
    ("best", "The best epoch's (lowest validation loss, else training loss)"),
    ("last", "The last epoch's"),
)
CLASSIFIERS = (("rf", "Random Forest"), ("svm", "SVM (RBF kernel, standardised features, calibrated probabilities)"))


def trust() -> Param:
    """Every operation that loads a model or a classifier: the engine's model gate refuses one that
    could run code or touch files unless this is ticked."""
    return Param(TRUST_MODEL, "boolean", "I trust this model (allow file, network or Python ops)", False)


def _sampling(distance_parent: str) -> tuple[Param, ...]:
    return (
        Param("STRATEGY", "enum", "Sampling strategy", "constant", choices=SAMPLING_STRATEGIES),
        Param("NUMBER", "integer", "Number of samples (per class for 'constant', in all for 'total')", 100,
              minimum=1),
        Param("PATCH_SIZE", "integer", "Patch size that must fit around each sample (edge padding)", 1, minimum=1),
        Param("MIN_DISTANCE", "distance", "Minimum distance between samples (0: none)", 0.0, minimum=0.0,
              parent=distance_parent),
        Param("SEED", "integer", "Random seed", 0),
        Param("OUTPUT", "vector_destination", "Samples", layers=("point",), file_based=True, style="STYLE"),
    )


_SAMPLING_OUTPUTS = (Output("COUNT", "number", "Number of samples"),)


def _table(label: str) -> tuple[Param, ...]:
    return (
        Param("OUTPUT_CSV", "file_destination", "Scores (CSV)", file_filter="CSV files (*.csv)"),
        Param("OUTPUT_HTML", "file_destination", label, file_filter="HTML files (*.html)"),
        Param("OUTPUT_TABLE", "vector_destination", "Scores table", optional=True, layers=("vector",),
              create_by_default=False, file_based=True),
    )


def _sources(index: int, label: str, optional: bool) -> Param:
    return Param(f"SOURCE{index}", "rasters", label, optional=optional, layers=("raster",))


_QUALITY_SCORES = (("PSNR", "PSNR (dB, all bands)"), ("SSIM", "SSIM (mean of bands)"), ("SAM", "SAM (degrees)"),
                   ("ERGAS", "ERGAS"))
_SCORED_SETS = (("TRAIN_", "training"), ("", "validation"), ("TEST_", "test"))
_SCORE_NAMES = (("OA", "overall accuracy"), ("KAPPA", "kappa"), ("MACRO_F1", "macro F1"))
# train_model: the kept model's scores per set (OA, KAPPA: validation), and their mean and sd over REPEATS
_TRAINING_SCORES = tuple(
    Output(f"{prefix}{name}{suffix}", "number", f"{label.capitalize()} ({where}){what}")
    for suffix, what in (("", ""), ("_MEAN", ", mean over the repeats"), ("_SD", ", sd over the repeats"))
    for prefix, where in _SCORED_SETS for name, label in _SCORE_NAMES)
_SPLIT_SETS = (("TRAIN", "Training patches"), ("VALID", "Validation patches"), ("TEST", "Test patches"))

OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    Operation("sample_label_raster", (
        Param("INPUT", "raster", "Label raster"),
        # optional: QGIS 3.22 rejects an omitted band parameter even with a default
        Param("BAND", "band", "Band with the class ids", 1, optional=True, parent="INPUT"),
        Param("NODATA", "number", "Value meaning 'no label' (default: the raster's nodata)", optional=True),
        *_sampling("INPUT"),
    ), _SAMPLING_OUTPUTS),
    Operation("sample_vector", (
        Param("INPUT", "vector", "Labelled polygons or points", layers=("polygon", "point")),
        Param("FIELD", "field", "Class field (integer or text)", parent="INPUT"),
        Param("RASTER", "raster", "Raster defining the pixel grid"),
        *_sampling("RASTER"),
    ), _SAMPLING_OUTPUTS),
    Operation("grid_split", (
        Param("INPUT", "raster", "Image (defines the grid; nodata is avoided)"),
        Param("PATCH_SIZE", "integer", "Patch size (pixels)", 32, minimum=1),
        Param("STEP", "integer", "Grid step (pixels; default: the patch size)", optional=True, minimum=1),
        Param("STRATEGY", "enum", "Strategy", "split", choices=SPLIT_STRATEGIES),
        Param("TRAIN", "number", "Training proportion", 0.7, minimum=0.0),
        Param("VALID", "number", "Validation proportion", 0.15, minimum=0.0),
        Param("TEST", "number", "Test proportion", 0.15, minimum=0.0),
        Param("BLOCK_SIZE", "integer", "Block size (grid cells per side decided together)", 1, minimum=1),
        Param("STRATIFY", "boolean", "Keep every class in every set (whole blocks exchanged, with classes)", True),
        Param("LABELS", "raster", "Label raster (class at each patch centre)", optional=True),
        Param("SAMPLES", "vector", "Existing samples to split instead of grid centres", optional=True,
              layers=("point",)),
        Param("CLASS_FIELD", "field", "Class field of the samples", optional=True, parent="SAMPLES"),
        Param("NODATA", "number", "Nodata value of the image (default: the raster's)", optional=True),
        Param("SEED", "integer", "Random seed", 0),
        *(Param(f"OUTPUT_{name}", "vector_destination", label, optional=name != "TRAIN", layers=("point",),
                file_based=True, style=f"STYLE_{name}") for name, label in _SPLIT_SETS),
    ), tuple(Output(f"COUNT_{name}", "number", f"Number of {label.lower()}") for name, label in _SPLIT_SETS)),
    Operation("extract_patches", (
        Param("INPUT", "vector", "Patch centres (points)", layers=("point",)),
        *(p for index in (1, 2, 3) for p in (
            _sources(index, f"Source {index}: raster(s), stacked" + ("" if index == 1 else " (optional)"), index > 1),
            Param(f"PATCH_SIZE{index}", "integer", f"Source {index}: patch size (pixels" +
                  ("" if index == 1 else "; default: source 1's footprint") + ")",
                  16 if index == 1 else None, optional=index > 1, minimum=1))),
        Param("CLASS_FIELD", "field", "Class field (writes the labels image)", optional=True, parent="INPUT"),
        Param("LABEL_RASTER", "raster", "Label raster, extracted as an extra source (segmentation)", optional=True),
        Param("LABEL_POLYGONS", "vector", "Labelled polygons, burnt on source 1's grid as label patches "
              "(segmentation; instead of a label raster)", optional=True, layers=("polygon",)),
        Param("LABEL_FIELD", "field", "Class field of the labelled polygons (integer or text)", optional=True,
              parent="LABEL_POLYGONS"),
        Param("LABEL_PATCH_SIZE", "integer", "Label patch size (default: the footprint of source 1)",
              optional=True, minimum=1),
        Param("SKIP_NODATA", "boolean", "Drop patches touching nodata", True),
        Param("OUTPUT", "file_destination", "Dataset manifest", file_filter=JSON_FILES),
    ), (
        # files, not layers: patches-images have no georeferencing, so QGIS should not load them as maps
        *(Output(f"PATCHES{index}", "file", f"Source {index} patches-image") for index in (1, 2, 3)),
        Output("LABELS", "file", "Labels image"),
        Output("LABEL_PATCHES", "file", "Label raster patches-image"),
        Output("COUNT", "number", "Patches kept"),
        Output("DROPPED_NODATA", "number", "Dropped: nodata"),
        Output("DROPPED_OUTSIDE", "number", "Dropped: outside a source"),
    )),
    Operation("describe_patches", (
        Param("PATCHES", "rasters", "Patches-images, one per source", layers=("raster",)),
        Param("PATCH_SIZE", "integer", "Patch size (0: the image width)", 0, minimum=0),
        Param("LABELS", "raster", "Labels image", optional=True),
        Param("OUTPUT", "file_destination", "Dataset manifest", file_filter=JSON_FILES),
    ), (Output("COUNT", "number", "Number of patches"),)),
    Operation("create_model", (
        Param("ARCHITECTURE", "enum", "Architecture", "patch_cnn", choices=ARCHITECTURES),
        Param("DATASET", "file", "Dataset manifest (gives bands, patch size, classes, normalisation)",
              optional=True, file_filter=JSON_FILES),
        Param("BANDS", "integer", "Number of bands (without a dataset)", optional=True, minimum=1,
              why="a model needs 1 band or more"),
        Param("PATCH_SIZE", "integer", "Patch size (without a dataset)", optional=True, minimum=1),
        Param("N_CLASSES", "integer", "Number of classes (without a dataset)", optional=True, minimum=2,
              why="a classifier needs 2 classes or more"),
        Param("WIDTH", "integer", "Width: filters of the first layer (empty: the architecture's default)",
              optional=True, minimum=1),
        Param("SEED", "integer", "Random seed of the weights", 0),
        Param("OVERWRITE", "boolean", "Overwrite an existing model folder", False),
        Param("OUTPUT", "folder_destination", "Model folder (SavedModel)"),
    ), (Output("CARD", "file", "Model card"), Output("PARAMETERS", "number", "Number of parameters"))),
    Operation("train_model", (
        Param("TRAIN", "file", "Training dataset (manifest)", file_filter="Dataset manifests (*.json)"),
        Param("VALID", "file", "Validation dataset (manifest): chooses the best epoch (and seed)", optional=True,
              file_filter="Dataset manifests (*.json)"),
        Param("TEST", "file", "Test dataset (manifest): scored once at the end, never used to choose", optional=True,
              file_filter="Dataset manifests (*.json)"),
        Param("MODEL", "model", "Model: a .keras file or a SavedModel's saved_model.pb (empty: build the "
              "architecture below)", optional=True, file_filter=MODEL_FILES),
        Param("ARCHITECTURE", "enum", "Architecture (when no model is given)", "patch_cnn", choices=ARCHITECTURES),
        Param("EPOCHS", "integer", "Epochs", 20, minimum=1),
        Param("BATCH_SIZE", "integer", "Batch size", 32, minimum=1),
        Param("LEARNING_RATE", "number", "Learning rate", 0.001, minimum=0.0),
        Param("OPTIMIZER", "enum", "Optimiser", "adam", choices=OPTIMIZERS),
        Param("CLASS_WEIGHTS", "boolean", "Balance classes (weights from counts)", True,
              choices=(("none", "No: every sample weighs 1"), ("auto", "Yes: weights from the class counts"))),
        Param("AUGMENT", "boolean", "Augment: flips and 90° rotations", True),
        Param("PATIENCE", "integer", "Early stopping: epochs without improvement (0: off)", 0, minimum=0),
        Param("RESTORE_BEST", "enum", "Weights saved", "auto", choices=RESTORE_CHOICES),
        Param("SEED", "integer", "Random seed", 0),
        Param("REPEATS", "integer", "Repeats: seeds SEED, SEED+1, ... trained in turn (mean ± sd; the seed with the "
              "lowest validation loss is kept)", 1, minimum=1, maximum=100, why="each repeat is a whole training"),
        Param("DEVICE", "enum", "Device", "auto", choices=DEVICES),
        Param("RESUME", "boolean", "Resume an interrupted training of this output", True),
        Param("OVERWRITE", "boolean", "Overwrite the output folder", False),
        trust(),
        Param("WIDTH", "integer", "Architecture width (filters of the first layer; empty: default)", optional=True,
              minimum=1, advanced=True),
        Param("INPUTS", "string", "Which source feeds which model input, e.g. x1=source1;x2=source2 (empty: the "
              "model card's, else in order)", optional=True, advanced=True),
        Param("TARGET", "string", "Target source (empty: the labels image, else the label patches)", optional=True,
              advanced=True),
        Param("LOSS", "enum", "Loss", "auto", choices=LOSSES, advanced=True),
        Param("LOSS_WEIGHTS", "string", "Image losses combined, e.g. l1=1;ssim=0.2;adversarial=0.001 (overrides "
              "Loss; adversarial: an LSGAN discriminator)", optional=True, advanced=True),
        Param("PRETRAIN_EPOCHS", "integer", "Epochs of content loss before the adversarial loss (empty: half the "
              "epochs)", optional=True, minimum=0, advanced=True),
        Param("NORMALIZATION", "enum", "Input normalisation", "auto", choices=NORMALIZATIONS, advanced=True),
        Param("OUTPUT", "folder_destination", "Trained model folder (SavedModel)"),
    ), (
        Output("REPORT", "html", "Training report"),
        Output("CARD", "file", "Model card"),
        Output("HISTORY", "file", "History (CSV)"),
        Output("MODEL_FOLDER", "folder", "Trained model folder"),
        Output("EPOCHS_RUN", "number", "Epochs run"),
        Output("BEST_EPOCH", "number", "Best epoch (lowest validation loss, else training loss)"),
        Output("SAVED_EPOCH", "number", "Epoch whose weights the model holds"),
        Output("KEPT_SEED", "number", "Seed of the model kept"),
        *_TRAINING_SCORES,
        Output("PSNR", "number", "Validation PSNR (dB, image targets)"),
        Output("SSIM", "number", "Validation SSIM (image targets)"),
        Output("BICUBIC_PSNR", "number", "Bicubic PSNR (dB, the baseline)"),
        Output("BICUBIC_SSIM", "number", "Bicubic SSIM (the baseline)"),
    )),
    Operation("assess_accuracy", (
        Param("INPUT", "raster", "Class raster (classification map)"),
        Param("BAND", "band", "Band", 1, optional=True, parent="INPUT"),
        Param("REFERENCE", "vector", "Reference points or polygons", optional=True, layers=("point", "polygon")),
        Param("CLASS_FIELD", "field", "Reference class field (class ids, or the map's class names)", optional=True,
              parent="REFERENCE"),
        Param("REFERENCE_RASTER", "raster", "Or: reference label raster (map's CRS and pixel size)", optional=True),
        Param("REFERENCE_BAND", "band", "Reference label raster band", 1, optional=True, parent="REFERENCE_RASTER"),
        Param("REFERENCE_NODATA", "number", "Reference label raster 'no label' value (default: its nodata)",
              optional=True),
        *_table("Accuracy report (HTML)"),
    ), tuple(Output(name, "number", label) for name, label in (
        ("OA", "Overall accuracy"), ("KAPPA", "Kappa"), ("N", "Number of pairs"), ("MACRO_F1", "Macro F1"),
        ("WEIGHTED_F1", "Weighted F1"))) + (
        Output("PAIRS", "file", "Samples scored (CSV beside the scores: x, y, reference, predicted)"),)),
    Operation("train_classifier", (
        Param("DATASET", "file", "Training dataset manifest (with a class field)", file_filter=JSON_FILES),
        Param("VALID", "file", "Validation dataset manifest", optional=True, file_filter=JSON_FILES),
        Param("TEST", "file", "Test dataset manifest (scored once, beside validation)", optional=True,
              file_filter=JSON_FILES),
        Param("MODEL", "model", "Model: a .keras file, or a SavedModel's saved_model.pb (empty: classify pixel "
              "values)", optional=True, file_filter=MODEL_FILES),
        Param("FEATURE_OUTPUT", "string", "Model output used as features", "features", optional=True),
        Param("FEATURES", "enum", "Features without a model", "pixels", choices=PIXEL_FEATURES),
        Param("NEIGHBOURHOOD", "integer", "Neighbourhood: N x N pixels around each pixel (0: the dataset's patch "
              "size)", 3, minimum=0),
        Param("CLASSIFIER", "enum", "Classifier", "rf", choices=CLASSIFIERS),
        Param("N_TREES", "integer", "Random Forest: number of trees", 100, minimum=1),
        Param("MAX_DEPTH", "integer", "Random Forest: maximum depth (0: unlimited)", 0, minimum=0),
        Param("SVM_C", "number", "SVM: regularisation C", 1.0, minimum=1e-9),
        Param("SEED", "integer", "Random seed", 0),
        trust(),
        Param("OUTPUT", "file_destination", "Classifier (.skops)", file_filter="Classifier files (*.skops)"),
    ), (
        Output("DESCRIPTION", "file", "Classifier description (JSON)"),
        Output("VALIDATION_CSV", "file", "Validation scores (CSV)"),
        Output("COUNT", "number", "Training samples"),
        Output("N_FEATURES", "number", "Features per sample"),
        Output("VALID_OA", "number", "Validation overall accuracy"),
        Output("VALID_KAPPA", "number", "Validation kappa"),
        Output("TEST_CSV", "file", "Test scores (CSV)"),
        Output("TEST_OA", "number", "Test overall accuracy"),
        Output("TEST_KAPPA", "number", "Test kappa"),
    )),
    Operation("classify", (
        Param("INPUT", "rasters", "Raster(s) to classify, stacked", layers=("raster",)),
        *(Param(f"INPUT{index}", "rasters", f"{which} source (multi-source model): raster(s), stacked", optional=True,
                layers=("raster",)) for index, which in ((2, "Second"), (3, "Third"))),
        Param("CLASSIFIER", "file", "Classifier (.skops, its .json beside it)",
              file_filter="Classifier files (*.skops);;Legacy pickle classifiers, need TRUST_MODEL (*.joblib *.pkl)"),
        Param("OUTPUT", "raster_destination", "Class map", style="STYLE"),
        Param("OUTPUT_CONFIDENCE", "raster_destination", "Confidence (highest class probability)", optional=True,
              create_by_default=False),
        trust(),
    ), (Output("STYLE", "file", "Class map style (QML)"), Output("COUNT", "number", "Pixels classified"))),
    Operation("apply_model", (
        Param("MODEL", "model", "Model: a .keras file or a SavedModel's saved_model.pb", file_filter=MODEL_FILES),
        _sources(1, "Source 1: raster(s), stacked", False),
        *(_sources(index, f"Source {index}: raster(s), stacked (models with {index} inputs)", True)
          for index in (2, 3)),
        Param("OUTPUTS", "string", "Model output(s) to write, separated by ; (stacked as bands; empty: 'class' if "
              "the model has it, else its first output, e.g. a super-resolved 'image')", "", optional=True),
        Param("MODE", "enum", "Mode", "auto", choices=MODES),
        Param("STRIDE", "integer", "Stride: input pixels between output pixels (patch-based)", 1, minimum=1),
        Param("TILE_SIZE", "integer", "Tile size in output pixels (fully convolutional; 0: about 512 pixels a side "
              "on the finer of the input and output grids)", 0, minimum=0),
        Param("BATCH_SIZE", "integer", "Batch size: patches, or blocks (fully convolutional), per model call "
              "(0: auto)", 0, minimum=0),
        Param("EXTENT", "extent", "Processing extent (empty: the whole of source 1)", optional=True,
              parent="SOURCE1"),
        Param("OUTPUT_TYPE", "enum", "Output data type", "auto", choices=OUTPUT_TYPES),
        Param("NODATA", "number", "Output nodata value (empty: 0 or 255 for classes, -9999 otherwise)",
              optional=True),
        Param("CLIP", "boolean", "Clip image outputs to the range of the training target (a super-resolved image "
              "to the HR training data's; only models whose card records it)", True),
        trust(),
        Param("INPUT_NAMES", "string", "Model inputs fed by the sources, in order, e.g. x1;x2 (empty: the model "
              "card's)", optional=True, advanced=True),
        Param("RECEPTIVE_FIELD", "integer", "Receptive field: input patch size in pixels (0: the model card's)", 0,
              minimum=0, advanced=True),
        Param("EXPRESSION_FIELD", "integer", "Expression field: output pixels per receptive field (0: measured)", 0,
              minimum=0, advanced=True),
        Param("SCALE_FACTOR", "number", "Scale factor: output pixels per input pixel, e.g. 0.25 for stride 4 (0: "
              "the model card's, else 1)", 0.0, minimum=0.0, advanced=True),
        Param("MARGIN", "integer", "Margin cropped around blocks, input pixels (fully convolutional; -1: measured)",
              -1, minimum=-1, advanced=True),
        Param("OUTPUT", "raster_destination", "Output raster", style="STYLE"),
    ), (
        Output("STYLE", "file", "Output style (QML)"),
        Output("KIND", "string", "Output kind (class, probabilities, features, image)"),
        Output("WIDTH", "number", "Output width (pixels)"),
        Output("HEIGHT", "number", "Output height (pixels)"),
    )),
    Operation("build_sr_dataset", (
        Param("HR", "rasters", "High-resolution image: raster(s), stacked", layers=("raster",)),
        Param("LR", "rasters", "Low-resolution image: raster(s), stacked (empty: degrade the HR image)",
              optional=True, layers=("raster",)),
        Param("SCALE", "number", "Scale factor when degrading (whole number; empty: 4; with an LR image it is "
              "measured)", optional=True, minimum=1.0),
        Param("PATCH_SIZE", "integer", "LR patch size (pixels)", 32, minimum=1),
        Param("STEP", "integer", "Step between patch centres (LR pixels; default: the patch size)", optional=True,
              minimum=1),
        Param("VALID", "number", "Validation fraction", 0.3, minimum=0.0, maximum=0.95,
              why="a larger fraction leaves little or nothing for training"),
        Param("BLOCK_SIZE", "integer", "Block size (patches per side that go to the same set)", 4, minimum=1),
        Param("SEED", "integer", "Random seed", 0),
        Param("RADIOMETRIC", "boolean", "Match the HR radiometry to the LR (per-band linear fit)", False),
        Param("NODATA", "number", "Nodata value of the images (default: the rasters')", optional=True),
        Param("OUTPUT_TRAIN", "file_destination", "Training dataset manifest", file_filter=JSON_FILES),
        Param("OUTPUT_VALID", "file_destination", "Validation dataset manifest", optional=True,
              file_filter=JSON_FILES),
        Param("OUTPUT_LR", "raster_destination", "Degraded LR image (when no LR image is given)", optional=True,
              create_by_default=False),
    ), tuple(Output(name, "number", label) for name, label in (
        ("COUNT_TRAIN", "Training patch pairs"), ("COUNT_VALID", "Validation patch pairs"),
        ("SCALE", "Scale (LR pixel / HR pixel)"),
        ("OFFSET_X", "HR grid offset from the LR grid, across (LR pixels)"),
        ("OFFSET_Y", "HR grid offset from the LR grid, down (LR pixels)")))),
    Operation("assess_image_quality", (
        Param("INPUT", "rasters", "Produced image: raster(s), stacked", layers=("raster",)),
        Param("REFERENCE", "rasters", "Reference image: raster(s), stacked", layers=("raster",)),
        Param("LOW_RESOLUTION", "rasters", "Low-resolution input, for a bicubic baseline: raster(s), stacked",
              optional=True, layers=("raster",)),
        Param("DATA_RANGE", "number", "Data range for PSNR and SSIM (empty: the reference band's max - min)",
              optional=True, minimum=0.0),
        Param("SCALE_FOR_ERGAS", "number", "ERGAS ratio h/l, high- over low-resolution pixel size (empty: from the "
              "pixel sizes, else 1)", optional=True, minimum=0.0),
        Param("EXTENT", "extent", "Compared extent (empty: the whole reference)", optional=True, parent="REFERENCE"),
        Param("FIT_EXTENT", "extent", "Training part the sharpened bicubic baseline is fitted on, outside the compared "
              "extent (empty: the reference outside EXTENT; without EXTENT, the compared pixels)", optional=True,
              parent="REFERENCE"),
        *_table("Image quality report (HTML)"),
    ), (
        *(output for name, label in _QUALITY_SCORES for output in (
            Output(name, "number", label), Output(f"BASELINE_{name}", "number", f"Bicubic baseline {label}"),
            Output(f"LANCZOS_{name}", "number", f"Lanczos baseline {label}"),
            Output(f"SHARPENED_{name}", "number", f"Sharpened bicubic baseline {label}"))),
        Output("SHARPEN_SIGMA", "number", "Sharpened bicubic: fitted Gaussian sigma (reference pixels)"),
        Output("SHARPEN_AMOUNT", "number", "Sharpened bicubic: fitted amount"),
        Output("FIT_PIXELS", "number", "Pixels the sharpened bicubic was fitted on"),
        Output("COMPARISON", "string", "The produced image against the best baseline, per score"),
        Output("PIXELS", "number", "Pixels compared"),
    )),
    Operation("compare_accuracy", (
        Param("REPORTS", "files", "Accuracy reports (CSV from Assess accuracy)", layers=("file",)),
        Param("NAMES", "string", "Names of the maps, separated by ; (empty: the file names)", "", optional=True),
        Param("PAIRS", "files", "Samples scored, one file per report (empty: the <report>_pairs.csv beside each)",
              optional=True, layers=("file",)),
        Param("RESAMPLES", "integer", "Bootstrap resamples (95 % intervals)", 2000, minimum=100,
              why="fewer resamples give unstable 95 % intervals"),
        Param("SEED", "integer", "Bootstrap random seed", 0),
        Param("OUTPUT_CSV", "file_destination", "Comparison (CSV)", file_filter="CSV files (*.csv)"),
        Param("OUTPUT_HTML", "file_destination", "Comparison (HTML)", optional=True,
              file_filter="HTML files (*.html)"),
    ), (
        Output("BEST", "string", "Map with the highest kappa"), Output("BEST_KAPPA", "number", "Its kappa"),
        Output("BEST_KAPPA_LOW", "number", "Its kappa: bootstrap 95 % interval, low"),
        Output("BEST_KAPPA_HIGH", "number", "Its kappa: bootstrap 95 % interval, high"),
        Output("MCNEMAR_P", "number", "McNemar p-value, the best map against the runner-up"),
        Output("SIGNIFICANCE", "string", "Whether the best map is significantly better than the runner-up"),
        Output("SIGNIFICANCE_CSV", "file", "Every two maps tested (CSV)"),
    )),
)}
