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
    ("constant", "Constant: same number per class"),
    ("all", "All labelled pixels"),
    ("smallest", "Smallest class size, per class"),
    ("total", "Total, in proportion to class sizes"),
)
SPLIT_STRATEGIES = (
    ("split", "Split: random blocks, in proportions"),
    ("chessboard", "Chessboard: training / validation"),
    ("all", "All: every patch to training"),
    ("balanced", "Balanced: rarest class's count"),
)
# plugin/engine/zoo.py ARCHITECTURES
ARCHITECTURES = (
    ("patch_cnn", "Patch CNN: 16×16 patch → one class"),
    ("fcnn", "FCNN (U-Net-like): a class per pixel"),
    ("unet", "U-Net: a class per pixel"),
    ("sr_generator", "Super-resolution generator (SR4RS)"),
    ("fusion_cnn", "Fusion CNN: per patch, 2+ sources"),
    ("fusion_unet", "Fusion U-Net: per pixel, 2+ sources"),
)
ARCHITECTURES_HELP = (
    "<b>Patch CNN</b>: OTBTF tutorial's, a 16×16 patch → one class. <b>FCNN</b>: OTBTF API tutorial's, "
    "U-Net-like, one class per pixel. <b>U-Net</b>: with batch normalisation, one class per pixel. "
    "<b>Super-resolution generator</b> (SR4RS-style): LR patch → HR patch, for a super-resolution dataset. "
    "<b>Fusion CNN</b> (OTBTF/M3Fusion-style): one branch per image source, each at its own resolution and "
    "patch size → one class per patch (a dataset of 2 sources or more). <b>Fusion U-Net</b>: coarser sources "
    "upsampled (integer ratio) to source 1's grid, then U-Net → one class per pixel (2 sources or more).")
MODES = (
    ("auto", "Auto"),
    ("fully_convolutional", "Fully convolutional: whole blocks"),
    ("patch", "Patch-based: a patch per output pixel"),
)
MODES_HELP = (
    "<b>Auto</b>: patch-based for a model that gives one pixel per receptive field, else fully convolutional. "
    "<b>Fully convolutional</b>: whole blocks, outputs on the model's own grid. <b>Patch-based</b>: one "
    "receptive field per output pixel (every STRIDE pixels).")
OUTPUT_TYPES = (("auto", "Auto: smallest integer type, or float32"),
                *((name, name) for name in ("uint8", "uint16", "int16", "int32", "float32")))
OPTIMIZERS = tuple((name, name) for name in ("adam", "adamw", "sgd", "rmsprop"))
LOSSES = (
    ("auto", "Auto: cross-entropy, or L1 for images"),
    ("crossentropy", "Cross-entropy"),
    ("l1", "L1 (mean absolute error, images)"),
    ("l2", "L2 (mean squared error, images)"),
    ("ssim", "SSIM (1 - structural similarity)"),
)
DEVICES = (
    ("auto", "Auto: a GPU if there is one, else CPU"),
    ("cpu", "CPU"),
    ("gpu", "One GPU"),
    ("multi-gpu", "Several GPUs (MirroredStrategy)"),
    ("multi-worker", "Several machines (cluster)"),
)
DEVICES_HELP = (
    "<b>Several machines</b>: every machine runs the same command (MultiWorkerMirroredStrategy), the cluster from "
    "TF_CONFIG or from the SLURM job step (srun); BATCH_SIZE is the global batch; task 0 writes the outputs. See "
    "docs/scaling.md.")
NORMALIZATIONS = (
    ("auto", "Auto: the model card's, else dataset"),
    ("dataset", "The training set's per-band mean/std"),
    ("none", "None: raw pixel values"),
)
# plugin/engine/classify/features.py PIXELS, CONTEXT
PIXEL_FEATURES = (("pixels", "Pixel values"),
                  ("pixels_neighbourhood", "Pixels + neighbourhood mean and std"))
RESTORE_CHOICES = (
    ("auto", "Auto: best if early stopping, else last"),
    ("best", "The best epoch's"),
    ("last", "The last epoch's"),
)
RESTORE_HELP = (
    "<b>Auto</b>: the best epoch's weights with early stopping (PATIENCE > 0), else the last epoch's. "
    "<b>Best</b>: the epoch with the lowest validation loss (else training loss). <b>Last</b>: the last epoch's.")
CLASSIFIERS = (("rf", "Random Forest"), ("svm", "SVM (RBF kernel)"))
# plugin/engine/scale/execution.py: where raster work runs (Apply model on Dask)
EXECUTIONS = (
    ("setting", "The PatchFlow setting"),
    ("process", "This process"),
    ("local", "Local Dask cluster (WORKERS processes)"),
    ("scheduler", "A Dask scheduler (SCHEDULER)"),
    ("jobqueue", "SLURM or PBS jobs (CLUSTER_CONFIG)"),
)
# the PatchFlow setting behind EXECUTION "setting": Processing settings (plugin/settings.py) on the QGIS side,
# environment variables of the same names for the engine run alone (plugin/engine/scale/execution.py)
EXECUTION_SETTINGS = {"EXECUTION": "PATCHFLOW_EXECUTION", "WORKERS": "PATCHFLOW_DASK_WORKERS",
                      "SCHEDULER": "PATCHFLOW_DASK_SCHEDULER", "CLUSTER_CONFIG": "PATCHFLOW_DASK_CLUSTER_CONFIG"}
EXECUTION_HELP = (
    "<b>The PatchFlow setting</b>: what Settings > Options > PatchFlow says (by default this process). <b>This "
    "process</b>: the worker does every tile or block itself. <b>Local Dask cluster</b>: WORKERS processes on this "
    "computer, one thread and one copy of the model each. <b>A Dask scheduler</b>: its workers, which must see the "
    "inputs, the model and the output folder at the same paths (a shared file system). <b>SLURM or PBS jobs</b>: "
    "Dask workers started as batch jobs from the CLUSTER_CONFIG file. The raster is cut into windows of whole tiles "
    "(or blocks) of a one-process run; each window is written to a part file beside the output, joined when all are "
    "done.")


TRUST_PARAM_HELP = ("Tick only for a model from a source you trust: without it, a model that could run code or "
              "touch files, the network or the Python interpreter (file, network or Python ops) is refused "
              "before it is loaded.")
PATCH_SIZE_HELP = ("The side of the square patch, in pixels of the source: a model's receptive field (16 for the "
                   "zoo's patch CNN). The same size along the chain: sampling keeps the patch inside the image, "
                   "the grid split puts one patch in each grid cell, extraction cuts it.")


def trust() -> Param:
    """Every operation that loads a model or a classifier: the engine's model gate refuses one that
    could run code or touch files unless this is ticked."""
    return Param(TRUST_MODEL, "boolean", "I trust this model", False, help=TRUST_PARAM_HELP)


def _sampling(distance_parent: str) -> tuple[Param, ...]:
    return (
        Param("STRATEGY", "enum", "Sampling strategy", "constant", choices=SAMPLING_STRATEGIES,
              help="Constant: NUMBER samples per class. All: every labelled pixel. Smallest: as many per class "
                   "as the smallest class has. Total: NUMBER samples in all, split in proportion to class sizes."),
        Param("NUMBER", "integer", "Number of samples", 100, minimum=1,
              help="Per class for 'constant', in all for 'total' (unused by the other strategies)."),
        Param("PATCH_SIZE", "integer", "Patch size (pixels)", 16, minimum=1,
              help="Samples are drawn where a patch of this size centred on them fits in the image (edge "
                   "padding); 1: anywhere. " + PATCH_SIZE_HELP),
        Param("MIN_DISTANCE", "distance", "Minimum distance between samples", 0.0, minimum=0.0,
              parent=distance_parent, help="No two samples are closer than this (0: no minimum)."),
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


def execution() -> tuple[Param, ...]:
    """Where raster work runs (this process, or Dask): advanced parameters shared by the operations that
    serve rasters window by window (plugin/engine/scale/); optional, so that models of the graphical modeler
    saved without them still run (this process, or the PatchFlow setting)."""
    return (
        Param("EXECUTION", "enum", "Run on", "setting", choices=EXECUTIONS, optional=True, advanced=True,
              help=EXECUTION_HELP),
        Param("WORKERS", "integer", "Local Dask workers", 2, minimum=1, maximum=256, optional=True, advanced=True,
              help="Worker processes of a local Dask cluster (EXECUTION local), one thread each."),
        Param("SCHEDULER", "string", "Dask scheduler address", "", optional=True, advanced=True,
              help="e.g. tcp://host:8786 (EXECUTION scheduler). It and its workers need PatchFlow importable "
                   "(PYTHONPATH: the folder holding the plugin); the workers, the same paths to the data."),
        Param("CLUSTER_CONFIG", "file", "SLURM/PBS cluster file", optional=True, advanced=True,
              file_filter="Cluster files (*.json *.yaml *.yml)",
              help="JSON or YAML (EXECUTION jobqueue): system (slurm or pbs), queue, cores, memory, walltime, gpus "
                   "(per job), jobs; see docs/scaling.md."),
        Param("WINDOW_TILES", "integer", "Tiles per window (0: auto)", 0, minimum=0, optional=True, advanced=True,
              help="A Dask task's window: Apply model's tiles along its side (fully convolutional) or strips "
                   "(patch-based), 0: about 1024 pixels a side; Classify's blocks along a row, 0: 4; Extract patches' "
                   "rows of 512-pixel chunks, 0: about 3 windows a worker."),
    )


def _sources(index: int, label: str, optional: bool, help: str = "") -> Param:  # noqa: A002 (Param's field)
    return Param(f"SOURCE{index}", "rasters", label, optional=optional, layers=("raster",), help=help)


STACKED = "One raster, or several on one grid stacked as the bands of one source, in order."
MODEL_HELP = "A Keras .keras file, or a SavedModel: pick its saved_model.pb."
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
        Param("NODATA", "number", "'No label' value", optional=True,
              help="The value meaning 'no label' (default: the raster's nodata)."),
        *_sampling("INPUT"),
    ), _SAMPLING_OUTPUTS),
    Operation("sample_vector", (
        Param("INPUT", "vector", "Labelled polygons or points", layers=("polygon", "point")),
        Param("FIELD", "field", "Class field (integer or text)", parent="INPUT"),
        Param("RASTER", "raster", "Raster defining the pixel grid"),
        *_sampling("RASTER"),
    ), _SAMPLING_OUTPUTS),
    Operation("grid_split", (
        Param("INPUT", "raster", "Image (defines the grid)", help="The grid's image; nodata is avoided."),
        Param("PATCH_SIZE", "integer", "Patch size (pixels)", 16, minimum=1,
              help="The side of a grid cell: one patch per cell, so no pixel is in two sets. " + PATCH_SIZE_HELP),
        Param("STEP", "integer", "Grid step (pixels)", optional=True, minimum=1,
              help="Pixels between grid centres (default: the patch size)."),
        Param("STRATEGY", "enum", "Strategy", "split", choices=SPLIT_STRATEGIES,
              help="Split: random blocks in the given proportions. Chessboard: blocks alternate training / "
                   "validation. All: every patch to training. Balanced: split, then as many patches per class "
                   "as the rarest class has."),
        Param("TRAIN", "number", "Training proportion", 0.7, minimum=0.0),
        Param("VALID", "number", "Validation proportion", 0.15, minimum=0.0),
        Param("TEST", "number", "Test proportion", 0.15, minimum=0.0),
        Param("BLOCK_SIZE", "integer", "Block size (grid cells per side)", 1, minimum=1,
              help="Grid cells per side of a block decided together (all to the same set)."),
        Param("STRATIFY", "boolean", "Keep every class in every set", True,
              help="Whole blocks are exchanged, with their classes, so that every class is in every set when the "
                   "blocks allow it (a warning names the class and the set otherwise)."),
        Param("LABELS", "raster", "Label raster", optional=True, help="The class at each patch centre."),
        Param("SAMPLES", "vector", "Existing samples to split", optional=True, layers=("point",),
              help="Split these samples instead of grid centres."),
        Param("CLASS_FIELD", "field", "Class field of the samples", optional=True, parent="SAMPLES"),
        Param("NODATA", "number", "Nodata value of the image", optional=True, help="Default: the raster's."),
        Param("SEED", "integer", "Random seed", 0),
        *(Param(f"OUTPUT_{name}", "vector_destination", label, optional=name != "TRAIN", layers=("point",),
                file_based=True, style=f"STYLE_{name}") for name, label in _SPLIT_SETS),
    ), tuple(Output(f"COUNT_{name}", "number", f"Number of {label.lower()}") for name, label in _SPLIT_SETS)),
    Operation("extract_patches", (
        Param("INPUT", "vector", "Patch centres (points)", layers=("point",)),
        *(p for index in (1, 2, 3) for p in (
            _sources(index, f"Source {index}: raster(s)", index > 1, STACKED),
            Param(f"PATCH_SIZE{index}", "integer", f"Source {index}: patch size (pixels)",
                  16 if index == 1 else None, optional=index > 1, minimum=1,
                  help=PATCH_SIZE_HELP if index == 1 else "Default: source 1's footprint (the same ground at "
                  "this source's pixel size)."))),
        Param("CLASS_FIELD", "field", "Class field", optional=True, parent="INPUT",
              help="Writes the labels image (one class per patch)."),
        Param("LABEL_RASTER", "raster", "Label raster (segmentation)", optional=True,
              help="Extracted as an extra source: label patches, for models with a class per pixel."),
        Param("LABEL_POLYGONS", "vector", "Label polygons (segmentation)", optional=True, layers=("polygon",),
              help="Burnt on source 1's grid as label patches (segmentation; instead of a label raster)."),
        Param("LABEL_FIELD", "field", "Class field of the polygons", optional=True, parent="LABEL_POLYGONS",
              help="Integer or text."),
        Param("LABEL_PATCH_SIZE", "integer", "Label patch size", optional=True, minimum=1,
              help="Default: the footprint of source 1."),
        Param("SKIP_NODATA", "boolean", "Drop patches touching nodata", True),
        *execution(),
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
        Param("PATCH_SIZE", "integer", "Patch size (0: the image width)", 0, minimum=0,
              help="The side of a patch in the patches-image, in pixels (patches are stacked in rows)."),
        Param("LABELS", "raster", "Labels image", optional=True),
        Param("OUTPUT", "file_destination", "Dataset manifest", file_filter=JSON_FILES),
    ), (Output("COUNT", "number", "Number of patches"),)),
    Operation("create_model", (
        Param("ARCHITECTURE", "enum", "Architecture", "patch_cnn", choices=ARCHITECTURES, help=ARCHITECTURES_HELP),
        Param("DATASET", "file", "Dataset manifest", optional=True, file_filter=JSON_FILES,
              help="Gives the bands, patch size, classes and normalisation."),
        Param("BANDS", "integer", "Number of bands", optional=True, minimum=1,
              why="a model needs 1 band or more", help="Without a dataset."),
        Param("PATCH_SIZE", "integer", "Patch size", optional=True, minimum=1,
              help="Without a dataset. " + PATCH_SIZE_HELP),
        Param("N_CLASSES", "integer", "Number of classes", optional=True, minimum=2,
              why="a classifier needs 2 classes or more", help="Without a dataset."),
        Param("WIDTH", "integer", "Width (filters of the first layer)", optional=True, minimum=1,
              help="Empty: the architecture's default."),
        Param("SEED", "integer", "Random seed of the weights", 0),
        Param("OVERWRITE", "boolean", "Overwrite an existing model folder", False),
        Param("OUTPUT", "folder_destination", "Model folder (SavedModel)"),
    ), (Output("CARD", "file", "Model card"), Output("PARAMETERS", "number", "Number of parameters"))),
    Operation("train_model", (
        Param("TRAIN", "file", "Training dataset (manifest)", file_filter="Dataset manifests (*.json)"),
        Param("VALID", "file", "Validation dataset", optional=True, file_filter="Dataset manifests (*.json)",
              help="A manifest: chooses the best epoch (and seed), so its scores are optimistic."),
        Param("TEST", "file", "Test dataset", optional=True, file_filter="Dataset manifests (*.json)",
              help="A manifest: scored once at the end, never used to choose."),
        Param("MODEL", "model", "Model", optional=True, file_filter=MODEL_FILES,
              help=MODEL_HELP + " Empty: build the architecture below."),
        Param("ARCHITECTURE", "enum", "Architecture (when no model is given)", "patch_cnn", choices=ARCHITECTURES,
              help=ARCHITECTURES_HELP),
        Param("EPOCHS", "integer", "Epochs", 20, minimum=1),
        Param("BATCH_SIZE", "integer", "Batch size", 32, minimum=1),
        Param("LEARNING_RATE", "number", "Learning rate", 0.001, minimum=0.0),
        Param("OPTIMIZER", "enum", "Optimiser", "adam", choices=OPTIMIZERS),
        Param("CLASS_WEIGHTS", "boolean", "Balance classes (weights from counts)", True,
              choices=(("none", "No: every sample weighs 1"), ("auto", "Yes: weights from the class counts"))),
        Param("AUGMENT", "boolean", "Augment: flips and 90° rotations", True),
        Param("PATIENCE", "integer", "Early stopping patience (0: off)", 0, minimum=0,
              help="Epochs without improvement before training stops (0: no early stopping)."),
        Param("RESTORE_BEST", "enum", "Weights saved", "auto", choices=RESTORE_CHOICES, help=RESTORE_HELP),
        Param("SEED", "integer", "Random seed", 0),
        Param("REPEATS", "integer", "Repeats (seeds SEED, SEED+1, ...)", 1, minimum=1, maximum=100,
              why="each repeat is a whole training",
              help="Seeds SEED, SEED+1, ... trained in turn (mean ± sd of every score); the seed with the lowest "
                   "validation loss is kept."),
        Param("DEVICE", "enum", "Device", "auto", choices=DEVICES, help=DEVICES_HELP),
        Param("RESUME", "boolean", "Resume an interrupted training", True,
              help="Continue an interrupted training of this output from its last complete epoch."),
        Param("OVERWRITE", "boolean", "Overwrite the output folder", False),
        trust(),
        Param("WIDTH", "integer", "Architecture width", optional=True, minimum=1, advanced=True,
              help="Filters of the first layer (empty: the architecture's default)."),
        Param("INPUTS", "string", "Sources of the model inputs", optional=True, advanced=True,
              help="Which source feeds which model input, e.g. x1=source1;x2=source2 (empty: the model card's, "
                   "else in order)."),
        Param("TARGET", "string", "Target source", optional=True, advanced=True,
              help="Empty: the labels image, else the label patches."),
        Param("LOSS", "enum", "Loss", "auto", choices=LOSSES, advanced=True),
        Param("LOSS_WEIGHTS", "string", "Combined image losses", optional=True, advanced=True,
              help="Image losses combined, e.g. l1=1;ssim=0.2;adversarial=0.001 (overrides Loss; adversarial: an "
                   "LSGAN discriminator)."),
        Param("PRETRAIN_EPOCHS", "integer", "Pre-training epochs", optional=True, minimum=0, advanced=True,
              help="Epochs of content loss before the adversarial loss (empty: half the epochs)."),
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
        Param("CLASS_FIELD", "field", "Reference class field", optional=True, parent="REFERENCE",
              help="Class ids, or the map's class names."),
        Param("REFERENCE_RASTER", "raster", "Or: reference label raster", optional=True,
              help="In the map's CRS. Of another pixel size, the finer of the two is aggregated onto the "
                   "coarser one's grid (majority class per pixel)."),
        Param("REFERENCE_BAND", "band", "Reference raster band", 1, optional=True, parent="REFERENCE_RASTER"),
        Param("REFERENCE_NODATA", "number", "Reference 'no label' value", optional=True,
              help="The reference label raster's 'no label' value (default: its nodata)."),
        *_table("Accuracy report (HTML)"),
    ), tuple(Output(name, "number", label) for name, label in (
        ("OA", "Overall accuracy"), ("KAPPA", "Kappa"), ("N", "Number of pairs"), ("MACRO_F1", "Macro F1"),
        ("WEIGHTED_F1", "Weighted F1"), ("MIXED_SHARE", "Share of mixed pixels (when aggregated)"))) + (
        Output("PAIRS", "file", "Samples scored (CSV beside the scores: x, y, reference, predicted)"),)),
    Operation("train_classifier", (
        Param("DATASET", "file", "Training dataset manifest", file_filter=JSON_FILES,
              help="A dataset manifest with a class field."),
        Param("VALID", "file", "Validation dataset manifest", optional=True, file_filter=JSON_FILES),
        Param("TEST", "file", "Test dataset manifest", optional=True, file_filter=JSON_FILES,
              help="Scored once, beside validation."),
        Param("MODEL", "model", "Model (deep features)", optional=True, file_filter=MODEL_FILES,
              help=MODEL_HELP + " Empty: classify pixel values."),
        Param("FEATURE_OUTPUT", "string", "Model output used as features", "features", optional=True),
        Param("FEATURES", "enum", "Features without a model", "pixels", choices=PIXEL_FEATURES,
              help="Pixel values, or pixel values with each band's mean and std over the N x N neighbourhood."),
        Param("NEIGHBOURHOOD", "integer", "Neighbourhood (N x N pixels)", 3, minimum=0,
              help="N x N pixels around each pixel (0: the dataset's patch size)."),
        Param("CLASSIFIER", "enum", "Classifier", "rf", choices=CLASSIFIERS,
              help="Random Forest, or SVM (RBF kernel, standardised features, calibrated probabilities)."),
        Param("N_TREES", "integer", "Random Forest: number of trees", 100, minimum=1),
        Param("MAX_DEPTH", "integer", "Random Forest: maximum depth", 0, minimum=0, help="0: unlimited."),
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
        Param("INPUT", "rasters", "Raster(s) to classify", layers=("raster",), help=STACKED),
        *(Param(f"INPUT{index}", "rasters", f"{which} source: raster(s)", optional=True, layers=("raster",),
                help="For a classifier on a multi-source model's features. " + STACKED)
          for index, which in ((2, "Second"), (3, "Third"))),
        Param("CLASSIFIER", "file", "Classifier (.skops)", help="Its .json description beside it.",
              file_filter="Classifier files (*.skops);;Legacy pickle classifiers, need TRUST_MODEL (*.joblib *.pkl)"),
        Param("OUTPUT", "raster_destination", "Class map", style="STYLE"),
        Param("OUTPUT_CONFIDENCE", "raster_destination", "Confidence", optional=True, create_by_default=False,
              help="The highest class probability of each pixel."),
        trust(),
        *execution(),
    ), (Output("STYLE", "file", "Class map style (QML)"), Output("COUNT", "number", "Pixels classified"))),
    Operation("apply_model", (
        Param("MODEL", "model", "Model", file_filter=MODEL_FILES, help=MODEL_HELP),
        _sources(1, "Source 1: raster(s)", False, STACKED),
        *(_sources(index, f"Source {index}: raster(s)", True, f"For models with {index} inputs. " + STACKED)
          for index in (2, 3)),
        Param("OUTPUTS", "string", "Model output(s) to write", "", optional=True,
              help="Separated by ; (stacked as bands); empty: 'class' if the model has it, else its first output, "
                   "e.g. a super-resolved 'image'. <i>name:argmax</i> writes the class of the largest channel."),
        Param("MODE", "enum", "Mode", "auto", choices=MODES, help=MODES_HELP),
        Param("STRIDE", "integer", "Stride (patch-based)", 1, minimum=1,
              help="Input pixels between output pixels (patch-based)."),
        Param("TILE_SIZE", "integer", "Tile size (0: auto)", 0, minimum=0,
              help="Tile size in output pixels (fully convolutional; 0: about 512 pixels a side on the finer of "
                   "the input and output grids)."),
        Param("BATCH_SIZE", "integer", "Batch size (0: auto)", 0, minimum=0,
              help="Patches, or blocks (fully convolutional), per model call (0: auto)."),
        Param("EXTENT", "extent", "Processing extent", optional=True, parent="SOURCE1",
              help="Empty: the whole of source 1."),
        Param("OUTPUT_TYPE", "enum", "Output data type", "auto", choices=OUTPUT_TYPES,
              help="Auto: the smallest integer type for classes, else float32."),
        Param("NODATA", "number", "Output nodata value", optional=True,
              help="Empty: 0 or 255 for classes, -9999 otherwise."),
        Param("CLIP", "boolean", "Clip images to the training range", True,
              help="Clip image outputs to the range of the training target (a super-resolved image to the HR "
                   "training data's; only models whose card records it)."),
        trust(),
        Param("INPUT_NAMES", "string", "Model inputs fed by the sources", optional=True, advanced=True,
              help="In order, e.g. x1;x2 (empty: the model card's)."),
        Param("RECEPTIVE_FIELD", "integer", "Receptive field (0: the card's)", 0, minimum=0, advanced=True,
              help="Input patch size in pixels (0: the model card's)."),
        Param("EXPRESSION_FIELD", "integer", "Expression field (0: measured)", 0, minimum=0, advanced=True,
              help="Output pixels per receptive field (0: measured)."),
        Param("SCALE_FACTOR", "number", "Scale factor (0: the card's)", 0.0, minimum=0.0, advanced=True,
              help="Output pixels per input pixel, e.g. 0.25 for stride 4 (0: the model card's, else 1)."),
        Param("MARGIN", "integer", "Margin (-1: measured)", -1, minimum=-1, advanced=True,
              help="Input pixels cropped around blocks (fully convolutional; -1: measured from the model)."),
        *execution(),
        Param("OUTPUT", "raster_destination", "Model output raster", style="STYLE"),
    ), (
        Output("STYLE", "file", "Output style (QML)"),
        Output("KIND", "string", "Output kind (class, probabilities, features, image)"),
        Output("WIDTH", "number", "Output width (pixels)"),
        Output("HEIGHT", "number", "Output height (pixels)"),
    )),
    Operation("build_sr_dataset", (
        Param("HR", "rasters", "High-resolution image: raster(s)", layers=("raster",), help=STACKED),
        Param("LR", "rasters", "Low-resolution image: raster(s)", optional=True, layers=("raster",),
              help="Empty: degrade the HR image. " + STACKED),
        Param("SCALE", "number", "Scale factor when degrading", optional=True, minimum=1.0,
              help="A whole number (empty: 4); with an LR image it is measured."),
        Param("PATCH_SIZE", "integer", "LR patch size (pixels)", 32, minimum=1),
        Param("STEP", "integer", "Step between patch centres", optional=True, minimum=1,
              help="In LR pixels (default: the patch size)."),
        Param("VALID", "number", "Validation fraction", 0.3, minimum=0.0, maximum=0.95,
              why="a larger fraction leaves little or nothing for training"),
        Param("BLOCK_SIZE", "integer", "Block size (patches per side)", 4, minimum=1,
              help="Patches per side of a block that goes to the same set."),
        Param("SEED", "integer", "Random seed", 0),
        Param("RADIOMETRIC", "boolean", "Match the HR radiometry to the LR", False,
              help="A per-band linear fit."),
        Param("NODATA", "number", "Nodata value of the images", optional=True, help="Default: the rasters'."),
        Param("OUTPUT_TRAIN", "file_destination", "Training dataset manifest", file_filter=JSON_FILES),
        Param("OUTPUT_VALID", "file_destination", "Validation dataset manifest", optional=True,
              file_filter=JSON_FILES),
        Param("OUTPUT_LR", "raster_destination", "Degraded LR image", optional=True, create_by_default=False,
              help="When no LR image is given."),
    ), tuple(Output(name, "number", label) for name, label in (
        ("COUNT_TRAIN", "Training patch pairs"), ("COUNT_VALID", "Validation patch pairs"),
        ("SCALE", "Scale (LR pixel / HR pixel)"),
        ("OFFSET_X", "HR grid offset from the LR grid, across (LR pixels)"),
        ("OFFSET_Y", "HR grid offset from the LR grid, down (LR pixels)")))),
    Operation("assess_image_quality", (
        Param("INPUT", "rasters", "Produced image: raster(s)", layers=("raster",), help=STACKED),
        Param("REFERENCE", "rasters", "Reference image: raster(s)", layers=("raster",), help=STACKED),
        Param("LOW_RESOLUTION", "rasters", "Low-resolution input", optional=True, layers=("raster",),
              help="For a bicubic baseline. " + STACKED),
        Param("DATA_RANGE", "number", "Data range for PSNR and SSIM", optional=True, minimum=0.0,
              help="Empty: the reference band's max - min."),
        Param("SCALE_FOR_ERGAS", "number", "ERGAS ratio h/l", optional=True, minimum=0.0,
              help="High- over low-resolution pixel size (empty: from the pixel sizes, else 1)."),
        Param("EXTENT", "extent", "Compared extent", optional=True, parent="REFERENCE",
              help="Empty: the whole reference."),
        Param("FIT_EXTENT", "extent", "Baseline fitting extent", optional=True, parent="REFERENCE",
              help="The training part the sharpened bicubic baseline is fitted on, outside the compared extent "
                   "(empty: the reference outside EXTENT; without EXTENT, the compared pixels)."),
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
    Operation("compare_sr", (
        Param("HR", "raster", "High-resolution (HR) image",
              help="The image whose super-resolution is tested: the HR version, and the SR model's target."),
        Param("LR", "raster", "Real LR image (another sensor)", optional=True,
              help="In the HR image's CRS, over the same ground. Empty: the HR degraded by SCALE (Wald's protocol: "
                   "Gaussian blur at the Nyquist gain, then decimation)."),
        Param("SCALE", "integer", "Scale factor (HR degraded by it)", 4, minimum=2, maximum=8,
              why="super-resolution is tested from x2 to x8", help="Used when no LR image is given."),
        Param("LABELS", "raster", "Label raster on the HR grid", optional=True,
              help="Class ids on the HR image's grid; its nodata (else 0) is 'no label'."),
        Param("REFERENCE", "vector", "Or: labelled polygons or points", optional=True, layers=("polygon", "point"),
              help="Burnt on the HR grid: a pixel whose centre is in a polygon, or holding a point, gets its class."),
        Param("CLASS_FIELD", "field", "Class field (integer or text)", optional=True, parent="REFERENCE"),
        Param("TRAIN_SHARE", "number", "Training share of the width (left part)", 0.6, minimum=0.1, maximum=0.9,
              why="both parts need labelled pixels",
              help="The left part (this share of the width, whole LR pixels) trains the SR model and the "
                   "classifiers; the right part is held out and scored."),
        Param("TRAIN_AREA", "vector", "Or: training area (polygons)", optional=True, layers=("polygon",),
              help="With TEST_AREA, instead of TRAIN_SHARE."),
        Param("TEST_AREA", "vector", "And: held-out area (polygons)", optional=True, layers=("polygon",),
              help="Disjoint from TRAIN_AREA; its labelled pixels are scored."),
        Param("CLASSIFIER", "enum", "Classifier trained on each version", "fcnn", choices=(
            ("fcnn", "FCNN: a class per pixel"), ("unet", "U-Net: a class per pixel"),
            ("rf", "Random Forest, spatial features")),
              help="The same classifier, with the same settings, is trained on each version. <b>FCNN</b>, "
                   "<b>U-Net</b>: zoo networks trained on label patches. <b>Random Forest</b>: each pixel's band "
                   "values with their mean and std over its N x N neighbourhood (spatial features)."),
        Param("PATCH_SIZE", "integer", "CNN patch size (HR pixels)", 64, minimum=16,
              help="The LR image gets patches of the same ground, rounded up to a multiple of 16 (U-Net: 64 at "
                   "least)."),
        Param("SAMPLES", "integer", "Training pixels per class", 100, minimum=1,
              help="Patch centres (or Random Forest samples) drawn per class from the training part's labels."),
        Param("EPOCHS", "integer", "CNN epochs", 10, minimum=1),
        Param("REPEATS", "integer", "Repeats (seeds 0, 1, ...)", 3, minimum=1, maximum=20,
              why="each repeat trains the classifier on the four versions",
              help="Each version is trained with seeds 0 to REPEATS - 1: scores as mean ± sd, tests across them."),
        Param("SR_EPOCHS", "integer", "SR generator epochs", 5, minimum=1),
        Param("NEIGHBOURHOOD", "integer", "Random Forest neighbourhood (N x N)", 5, minimum=1, advanced=True),
        Param("SR_PATCH_SIZE", "integer", "SR training: LR patch size (pixels)", 16, minimum=4, advanced=True),
        Param("RESAMPLES", "integer", "Bootstrap resamples (95 % intervals)", 2000, minimum=100, advanced=True,
              why="fewer resamples give unstable 95 % intervals"),
        Param("OVERWRITE", "boolean", "Overwrite the comparison folder", False),
        Param("OUTPUT", "folder_destination", "Comparison folder"),
    ), (
        Output("REPORT", "html", "Comparison report"),
        Output("JSON", "file", "Comparison (JSON)"),
        Output("CSV", "file", "Comparison (CSV)"),
        Output("ANSWER", "string", "The answer, with its confidence"),
        Output("PIXELS", "number", "Held-out pixels scored"),
        *(Output(f"KAPPA_{key}", "number", f"Kappa of the {name}, mean over the repeats")
          for key, name in (("LR", "LR image"), ("BICUBIC", "bicubic image"), ("SR", "SR image"), ("HR", "HR image"))),
        Output("SR_GAIN", "number", "Kappa gain of SR over bicubic"),
        Output("MCNEMAR_P", "number", "McNemar p, SR against bicubic (pooled)"),
        Output("PAIRED_P", "number", "Paired t-test p over the repeats, SR-bicubic"),
    )),
    Operation("compare_accuracy", (
        Param("REPORTS", "files", "Accuracy reports (CSV)", layers=("file",),
              help="The CSV files written by Assess accuracy."),
        Param("NAMES", "string", "Names of the maps", "", optional=True,
              help="Separated by ; (empty: the file names)."),
        Param("PAIRS", "files", "Samples scored, per report", optional=True, layers=("file",),
              help="One file per report (empty: the &lt;report&gt;_pairs.csv beside each)."),
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
