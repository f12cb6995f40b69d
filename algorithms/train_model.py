"""Train model: fits a zoo architecture or the user's model on patches streamed from disk."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputFolder,
    QgsProcessingOutputHtml,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from .base import TRUST_HELP, PatchFlowAlgorithm
from .create_model import ARCHITECTURE_LABELS, ARCHITECTURES

INTEGER = QgsProcessingParameterNumber.Integer
DOUBLE = QgsProcessingParameterNumber.Double
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
LOSSES = ("auto", "crossentropy", "l1", "l2", "ssim")
LOSS_LABELS = ("Auto: cross-entropy for classes, L1 for images", "Cross-entropy", "L1 (mean absolute error, images)",
               "L2 (mean squared error, images)", "SSIM (1 - structural similarity, images)")
IMAGE_SCORES = {"PSNR": "Validation PSNR (dB, image targets)", "SSIM": "Validation SSIM (image targets)",
                "BICUBIC_PSNR": "Bicubic PSNR (dB, the baseline)", "BICUBIC_SSIM": "Bicubic SSIM (the baseline)"}
DEVICES = ("auto", "cpu", "gpu", "multi-gpu")
DEVICE_LABELS = ("Auto: a GPU if TensorFlow sees one, else the CPU", "CPU", "One GPU",
                 "Several GPUs (MirroredStrategy)")
NORMALIZATIONS = ("auto", "dataset", "none")
NORMALIZATION_LABELS = ("Auto: the model card's, else the training set's mean/std",
                        "The training set's per-band mean/std", "None: raw pixel values")


class TrainModel(PatchFlowAlgorithm):
    NAME = "trainmodel"
    DISPLAY_NAME = "Train model"
    GROUP_ID = "models"
    OPERATION = "train_model"
    HELP = (
        "Trains a deep network on patches: a model made by <i>Create model</i>, your own model (a Keras "
        "<i>.keras</i> file, or a SavedModel: pick its <i>saved_model.pb</i>), or, when no model is given, "
        "the chosen architecture built for the training set.<br>Patches are streamed from the patches-images "
        "on disk (datasets larger than memory train too); class weights balance rare classes; augmentation "
        "adds flips and 90° rotations.<br>Every epoch is checkpointed in <i>&lt;output&gt;.training</i>: a "
        "cancelled or interrupted run continues from its last complete epoch when run again with RESUME.<br>"
        "The output folder is a SavedModel with its model card (for serving), the training report "
        "(report.html: curves, confusion matrix, precision/recall/F1, overall accuracy, kappa), history.csv, "
        "validation.csv and TensorBoard logs (logs/). The same seed gives the same weights on the CPU.<br>"
        "<b>Super-resolution:</b> with a dataset from <i>Build super-resolution dataset</i> and the "
        "super-resolution generator, the target is the HR image: L1 by default (Loss, or combined with "
        "<i>l1=1;ssim=0.2</i>; add <i>adversarial=0.001</i> to train against an LSGAN discriminator after "
        "the pre-training epochs), PSNR and SSIM per epoch, and the report compares the model with bicubic "
        "upsampling on the validation patches (with a strip LR | bicubic | SR | HR)." + TRUST_HELP
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        manifests = "Dataset manifests (*.json)"
        self.addParameter(QgsProcessingParameterFile("TRAIN", "Training dataset (manifest)", fileFilter=manifests))
        self.addParameter(QgsProcessingParameterFile("VALID", "Validation dataset (manifest)", optional=True,
                                                     fileFilter=manifests))
        self.addParameter(QgsProcessingParameterFile(
            "MODEL", "Model: a .keras file or a SavedModel's saved_model.pb (empty: build the architecture below)",
            optional=True, fileFilter="Models (*.keras saved_model.pb);;All files (*)"))
        self.addParameter(QgsProcessingParameterEnum(
            "ARCHITECTURE", "Architecture (when no model is given)", options=list(ARCHITECTURE_LABELS),
            defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber("EPOCHS", "Epochs", INTEGER, 20, minValue=1))
        self.addParameter(QgsProcessingParameterNumber("BATCH_SIZE", "Batch size", INTEGER, 32, minValue=1))
        self.addParameter(QgsProcessingParameterNumber("LEARNING_RATE", "Learning rate", DOUBLE, 0.001,
                                                       minValue=0.0))
        self.addParameter(QgsProcessingParameterEnum("OPTIMIZER", "Optimiser", options=list(OPTIMIZERS),
                                                     defaultValue=0))
        self.addParameter(QgsProcessingParameterBoolean("CLASS_WEIGHTS", "Balance classes (weights from counts)",
                                                        True))
        self.addParameter(QgsProcessingParameterBoolean("AUGMENT", "Augment: flips and 90° rotations", True))
        self.addParameter(QgsProcessingParameterNumber(
            "PATIENCE", "Early stopping: epochs without improvement (0: off)", INTEGER, 0, minValue=0))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Random seed", INTEGER, 0))
        self.addParameter(QgsProcessingParameterEnum("DEVICE", "Device", options=list(DEVICE_LABELS),
                                                     defaultValue=0))
        self.addParameter(QgsProcessingParameterBoolean(
            "RESUME", "Resume an interrupted training of this output", True))
        self.addParameter(QgsProcessingParameterBoolean("OVERWRITE", "Overwrite the output folder", False))
        self.add_trust_parameter()
        self.add_advanced_parameters()
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT", "Trained model folder (SavedModel)"))
        self.addOutput(QgsProcessingOutputHtml("REPORT", "Training report"))
        self.addOutput(QgsProcessingOutputFile("CARD", "Model card"))
        self.addOutput(QgsProcessingOutputFile("HISTORY", "History (CSV)"))
        self.addOutput(QgsProcessingOutputFolder("MODEL_FOLDER", "Trained model folder"))
        for name, label in (("EPOCHS_RUN", "Epochs run"), ("BEST_EPOCH", "Best epoch"),
                            ("OA", "Overall accuracy (validation)"), ("KAPPA", "Kappa (validation)"),
                            *IMAGE_SCORES.items()):
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def add_advanced_parameters(self) -> None:
        from qgis.core import QgsProcessingParameterDefinition

        advanced = [
            QgsProcessingParameterNumber("WIDTH", "Architecture width (filters of the first layer; empty: default)",
                                         INTEGER, None, optional=True, minValue=1),
            QgsProcessingParameterString("INPUTS", "Which source feeds which model input, e.g. x1=source1;"
                                         "x2=source2 (empty: the model card's, else in order)", optional=True),
            QgsProcessingParameterString("TARGET", "Target source (empty: the labels image, else the label "
                                         "patches)", optional=True),
            QgsProcessingParameterEnum("LOSS", "Loss", options=list(LOSS_LABELS), defaultValue=0),
            QgsProcessingParameterString("LOSS_WEIGHTS", "Image losses combined, e.g. l1=1;ssim=0.2;adversarial="
                                         "0.001 (overrides Loss; adversarial: an LSGAN discriminator)", optional=True),
            QgsProcessingParameterNumber("PRETRAIN_EPOCHS", "Epochs of content loss before the adversarial loss "
                                         "(empty: half the epochs)", INTEGER, None, optional=True, minValue=0),
            QgsProcessingParameterEnum("NORMALIZATION", "Input normalisation", options=list(NORMALIZATION_LABELS),
                                       defaultValue=0),
        ]
        for parameter in advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(parameter)

    def process(self, parameters, context, feedback) -> dict:
        def enum(name: str, values: tuple[str, ...]) -> str:
            return values[self.parameterAsEnum(parameters, name, context)]

        job = {
            "TRAIN": self.parameterAsFile(parameters, "TRAIN", context),
            "VALID": self.parameterAsFile(parameters, "VALID", context) or None,
            "MODEL": self.model_path(parameters, "MODEL", context),
            "ARCHITECTURE": enum("ARCHITECTURE", ARCHITECTURES),
            "EPOCHS": self.parameterAsInt(parameters, "EPOCHS", context),
            "BATCH_SIZE": self.parameterAsInt(parameters, "BATCH_SIZE", context),
            "LEARNING_RATE": self.parameterAsDouble(parameters, "LEARNING_RATE", context),
            "OPTIMIZER": enum("OPTIMIZER", OPTIMIZERS),
            "CLASS_WEIGHTS": "auto" if self.parameterAsBoolean(parameters, "CLASS_WEIGHTS", context) else "none",
            "AUGMENT": self.parameterAsBoolean(parameters, "AUGMENT", context),
            "PATIENCE": self.parameterAsInt(parameters, "PATIENCE", context),
            "SEED": self.parameterAsInt(parameters, "SEED", context),
            "DEVICE": enum("DEVICE", DEVICES),
            "RESUME": self.parameterAsBoolean(parameters, "RESUME", context),
            "OVERWRITE": self.parameterAsBoolean(parameters, "OVERWRITE", context),
            "TRUST_MODEL": self.trusted(parameters, context),
            "INPUTS": self.parameterAsString(parameters, "INPUTS", context) or None,
            "TARGET": self.parameterAsString(parameters, "TARGET", context) or None,
            "LOSS": enum("LOSS", LOSSES),
            "LOSS_WEIGHTS": self.parameterAsString(parameters, "LOSS_WEIGHTS", context) or None,
            "PRETRAIN_EPOCHS": (self.parameterAsInt(parameters, "PRETRAIN_EPOCHS", context)
                                if parameters.get("PRETRAIN_EPOCHS") not in (None, "") else None),
            "NORMALIZATION": enum("NORMALIZATION", NORMALIZATIONS),
            "OUTPUT": self.parameterAsString(parameters, "OUTPUT", context),
        }
        if parameters.get("WIDTH") not in (None, ""):
            job["WIDTH"] = self.parameterAsInt(parameters, "WIDTH", context)
        result = self.run_engine(job, [job["OUTPUT"]], feedback)
        return {"OUTPUT": result["OUTPUT"], "MODEL_FOLDER": result["OUTPUT"], "REPORT": result["REPORT"],
                "CARD": result["CARD"], "HISTORY": result["HISTORY"], "EPOCHS_RUN": result["EPOCHS"],
                "BEST_EPOCH": result["BEST_EPOCH"], "OA": result["OA"], "KAPPA": result["KAPPA"],
                **{name: result.get(name) for name in IMAGE_SCORES}}
