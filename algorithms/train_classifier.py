"""Train a Random Forest / SVM on a network's deep features, or on pixel values (OTBTF
TrainClassifierFromDeepFeatures; without a model, the classic per-pixel classifier)."""

from __future__ import annotations

from .base import TRUST_HELP, PatchFlowAlgorithm


class TrainClassifier(PatchFlowAlgorithm):
    NAME = "trainclassifier"
    DISPLAY_NAME = "Train classifier on deep features (or pixels)"
    GROUP_ID = "classification"
    OPERATION = "train_classifier"
    SHORT = "Train a Random Forest or SVM on a network's deep features, or on pixel values."
    TAGS = ("random forest", "rf", "svm", "scikit-learn", "classifier", "deep features", "tensorflow", "kappa",
            "machine learning", "otbtf")
    HELP = (
        "Trains a scikit-learn Random Forest or SVM, as OTBTF's TrainClassifierFromDeepFeatures does.<br><br>"
        "<b>With a model</b>: each training patch goes through the network and its <b>feature output</b> "
        "(<i>features</i> for PatchFlow's models: the last layer before the classifier) is the sample's "
        "feature vector; the model's card gives its bands, patch size and normalisation. For a SavedModel, "
        "pick its <i>saved_model.pb</i> (the folder is the model); a <i>.keras</i> file is picked as is.<br>"
        "<b>Without a model</b>: the features are the band values of each patch's centre pixel: the "
        "per-pixel classifier every study compares against. With <b>Features</b> 'pixel values + neighbourhood "
        "mean and std', each band's mean and standard deviation over the <b>N x N</b> pixels around it are added "
        "(N: <i>Neighbourhood</i>, at most the dataset's patch size; 0: the patch size; nodata pixels left out): a "
        "Random Forest with spatial context, the fair competitor of a CNN. Classify computes the same features "
        "from the raster, block by block with a margin (seamless).<br><br>"
        "The dataset is a manifest from Extract patches with a class field (labels image). With a "
        "<b>validation</b> manifest (e.g. the other set of a grid split), the overall accuracy, kappa and "
        "per-class scores are logged, returned and written to <i>&lt;classifier&gt;_validation.csv</i>; a <b>test</b> "
        "manifest is scored the same way (TEST_OA, TEST_KAPPA, <i>&lt;classifier&gt;_test.csv</i>).<br>"
        "Outputs: the classifier (<i>.skops</i>: the scikit-learn estimator, saved in a format that loads "
        "without running code) and beside it <i>&lt;classifier&gt;.json</i> (how its features are made, classes, "
        "scores), which Classify reads. The same seed gives the same classifier." + TRUST_HELP
    )
