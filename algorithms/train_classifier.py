"""Train a Random Forest / SVM on a network's deep features, or on pixel values (OTBTF
TrainClassifierFromDeepFeatures; without a model, the classic per-pixel classifier)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from .base import TRUST_HELP, PatchFlowAlgorithm

INTEGER = QgsProcessingParameterNumber.Integer
DOUBLE = QgsProcessingParameterNumber.Double
# the engine's names (plugin/engine/classify/deepfeatures.py CLASSIFIERS), in the order the enum shows them
CLASSIFIERS = ("rf", "svm")
CLASSIFIER_LABELS = ("Random Forest", "SVM (RBF kernel, standardised features, calibrated probabilities)")


class TrainClassifier(PatchFlowAlgorithm):
    NAME = "trainclassifier"
    DISPLAY_NAME = "Train classifier on deep features (or pixels)"
    GROUP_ID = "classification"
    OPERATION = "train_classifier"
    HELP = (
        "Trains a scikit-learn Random Forest or SVM, as OTBTF's TrainClassifierFromDeepFeatures does.<br><br>"
        "<b>With a model</b>: each training patch goes through the network and its <b>feature output</b> "
        "(<i>features</i> for PatchFlow's models: the last layer before the classifier) is the sample's "
        "feature vector; the model's card gives its bands, patch size and normalisation. For a SavedModel, "
        "pick its <i>saved_model.pb</i> (the folder is the model); a <i>.keras</i> file is picked as is.<br>"
        "<b>Without a model</b>: the features are the band values of each patch's centre pixel: the "
        "per-pixel classifier every study compares against.<br><br>"
        "The dataset is a manifest from Extract patches with a class field (labels image). With a "
        "<b>validation</b> manifest (e.g. the other set of a grid split), the overall accuracy, kappa and "
        "per-class scores are logged, returned and written to <i>&lt;classifier&gt;_validation.csv</i>.<br>"
        "Outputs: the classifier (<i>.skops</i>: the scikit-learn estimator, saved in a format that loads "
        "without running code) and beside it <i>&lt;classifier&gt;.json</i> (how its features are made, classes, "
        "scores), which Classify reads. The same seed gives the same classifier." + TRUST_HELP
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterFile(
            "DATASET", "Training dataset manifest (with a class field)", fileFilter="JSON files (*.json)"))
        self.addParameter(QgsProcessingParameterFile(
            "VALID", "Validation dataset manifest", optional=True, fileFilter="JSON files (*.json)"))
        self.addParameter(QgsProcessingParameterFile(
            "MODEL", "Model: a .keras file, or a SavedModel's saved_model.pb (empty: classify pixel values)",
            optional=True, fileFilter="Models (*.keras saved_model.pb);;All files (*)"))
        self.addParameter(QgsProcessingParameterString(
            "FEATURE_OUTPUT", "Model output used as features", "features", optional=True))
        self.addParameter(QgsProcessingParameterEnum(
            "CLASSIFIER", "Classifier", options=list(CLASSIFIER_LABELS), defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            "N_TREES", "Random Forest: number of trees", INTEGER, 100, minValue=1))
        self.addParameter(QgsProcessingParameterNumber(
            "MAX_DEPTH", "Random Forest: maximum depth (0: unlimited)", INTEGER, 0, minValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            "SVM_C", "SVM: regularisation C", DOUBLE, 1.0, minValue=1e-9))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Random seed", INTEGER, 0))
        self.add_trust_parameter()
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT", "Classifier (.skops)", "Classifier files (*.skops)"))
        self.addOutput(QgsProcessingOutputFile("DESCRIPTION", "Classifier description (JSON)"))
        self.addOutput(QgsProcessingOutputFile("VALIDATION_CSV", "Validation scores (CSV)"))
        for name, label in (("COUNT", "Training samples"), ("N_FEATURES", "Features per sample"),
                            ("VALID_OA", "Validation overall accuracy"), ("VALID_KAPPA", "Validation kappa")):
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def process(self, parameters, context, feedback) -> dict:
        job = {
            "DATASET": self.parameterAsFile(parameters, "DATASET", context),
            "VALID": self.parameterAsFile(parameters, "VALID", context) or None,
            "MODEL": self.model_path(parameters, "MODEL", context),
            "FEATURE_OUTPUT": self.parameterAsString(parameters, "FEATURE_OUTPUT", context) or "features",
            "CLASSIFIER": CLASSIFIERS[self.parameterAsEnum(parameters, "CLASSIFIER", context)],
            "N_TREES": self.parameterAsInt(parameters, "N_TREES", context),
            "MAX_DEPTH": self.parameterAsInt(parameters, "MAX_DEPTH", context),
            "SVM_C": self.parameterAsDouble(parameters, "SVM_C", context),
            "SEED": self.parameterAsInt(parameters, "SEED", context),
            "TRUST_MODEL": self.trusted(parameters, context),
            "OUTPUT": self.parameterAsFileOutput(parameters, "OUTPUT", context),
        }
        result = self.run_engine(job, [job["OUTPUT"]], feedback)
        return {name: result.get(name) for name in ("OUTPUT", "DESCRIPTION", "VALIDATION_CSV", "COUNT", "N_FEATURES",
                                                    "VALID_OA", "VALID_KAPPA")}
