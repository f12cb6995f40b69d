"""Classify a raster with a classifier on deep features or pixel values (OTBTF
ImageClassifierFromDeepFeatures)."""

from __future__ import annotations

from .base import TRUST_HELP, PatchFlowAlgorithm, layer_name, tr


class Classify(PatchFlowAlgorithm):
    NAME = "classify"
    DISPLAY_NAME = "Classify with deep features (or pixels)"
    GROUP_ID = "classification"
    OPERATION = "classify"
    SHORT = "Classify a raster with a trained Random Forest or SVM (deep features or pixels)."
    TAGS = ("random forest", "rf", "svm", "scikit-learn", "classification", "class map", "deep features",
            "tensorflow", "land cover")
    HELP = (
        "Classifies a raster, block by block, with a classifier from <i>Train classifier on deep features "
        "(or pixels)</i>, as OTBTF's ImageClassifierFromDeepFeatures does.<br><br>"
        "The <b>input</b> is one raster, or several stacked (same grid), with the bands the classifier was "
        "trained on, in the same order. For a deep-features classifier every pixel is classified from the "
        "patch centred on it (the network of the classifier's description, which must still be where it "
        "was), the scene's edges mirrored; for a per-pixel classifier from its band values. Pixels that "
        "are nodata in any band stay nodata.<br><br>"
        "A classifier on a <b>multi-source model</b> (one network input per dataset source, e.g. 10 m and 20 m "
        "bands) reads its other sources from <b>INPUT2</b> and <b>INPUT3</b>, in the dataset's order: same CRS, "
        "overlapping the input, at the pixel-size ratio the training data had. The map is on the input's grid; "
        "each source's patch is centred where the input's is, at the nearest pixel, as <i>Extract patches</i> "
        "placed them. Pixels where another source has no data stay nodata.<br><br>"
        "Outputs: the class map (class ids, colour table and class names, styled in QGIS by "
        "<i>&lt;map&gt;.qml</i>) and optionally the confidence (the classifier's highest class "
        "probability, -1 where nodata).<br><br>"
        "The classifier is a <i>.skops</i> file, which loads without running code; a <i>.joblib</i> one (older "
        "PatchFlow versions) is a pickle, which can run any code: it is refused unless TRUST_MODEL is ticked "
        "(train it again to get a .skops file)." + TRUST_HELP
    )

    def output_layer_name(self, param, job: dict, result: dict) -> str:
        """"Class map (classifier)", "Confidence (classifier)"."""
        return f"{tr(param.label)} ({layer_name(job['CLASSIFIER'])})" if job.get("CLASSIFIER") else tr(param.label)
