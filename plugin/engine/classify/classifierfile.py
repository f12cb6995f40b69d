"""The classifier file and its safe loading: ``.skops`` (the scikit-learn estimator saved with
``skops.io``, which loads without running code, only the types of ``SKOPS_TYPES`` beyond skops'
own safe ones) and beside it ``<stem>.json`` (format ``FORMAT``) telling how its features are
made and its classes. A legacy pickle classifier (``.joblib``/``.pkl``, PatchFlow's format
before ``.skops``) could run any code when loaded: it loads only with TRUST_MODEL, with a warning.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import PatchFlowError
from ..reporting import Reporter

FORMAT = "patchflow-classifier"
VERSION = 1
EXTENSION = ".skops"
LEGACY_EXTENSIONS = (".joblib", ".pkl", ".pickle")
# the types of PatchFlow's classifiers that skops does not trust by itself (get_untrusted_types):
# the Random Forest's trees, the SVM pipeline's calibration and its cross-validation folds
SKOPS_TYPES = (
    "sklearn.tree._tree.Tree",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.model_selection._split.StratifiedKFold",
)


def is_skops(path: str) -> bool:
    """Whether the file is a skops archive (a zip with its schema), whatever its name."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return "schema.json" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def load_estimator(path: str, parameter: str = "CLASSIFIER", trusted: bool = False,
                   reporter: Reporter | None = None) -> Any:
    """The scikit-learn estimator of a classifier file, checked before anything is built: a skops
    file with only skops' safe types and ``SKOPS_TYPES``; a pickle only when ``trusted``."""
    from ..models.modelsafety import TRUST_LABEL

    if is_skops(path):
        import skops.io

        untrusted = skops.io.get_untrusted_types(file=path)  # reads the schema, builds nothing
        foreign = sorted(set(untrusted) - set(SKOPS_TYPES))
        if foreign and not trusted:
            raise PatchFlowError(f"{path} holds types PatchFlow's classifiers do not use: {', '.join(foreign)}. "
                                 "Building them could run code on this computer. Train the classifier again with "
                                 f"'Train classifier', or tick TRUST_MODEL (\"{TRUST_LABEL}\") only if the file "
                                 "comes from a source you trust.", parameter)
        if foreign and reporter is not None:
            reporter.warning(f"{path} is trusted (TRUST_MODEL) although it holds types PatchFlow's classifiers do "
                             f"not use: {', '.join(foreign)}.")
        return skops.io.load(path, trusted=[name for name in untrusted if name in SKOPS_TYPES or trusted])
    if not trusted:
        raise PatchFlowError(f"{path} is a pickle (a .joblib or .pkl classifier, as older PatchFlow versions "
                             "wrote): loading it could run any code on this computer. Train the classifier again "
                             f"with 'Train classifier' (it writes {EXTENSION} files, which cannot run code), or tick "
                             f"TRUST_MODEL (\"{TRUST_LABEL}\") only if the file comes from a source you trust.",
                             parameter)
    if reporter is not None:
        reporter.warning(f"{path} is a pickle, loaded because TRUST_MODEL is ticked: it can run any code. Train "
                         f"the classifier again to get a {EXTENSION} file.")
    import joblib

    return joblib.load(path)


def load_classifier(path: str, parameter: str = "CLASSIFIER", trusted: bool = False,
                    reporter: Reporter | None = None) -> tuple[Any, dict]:
    """The estimator (checked before it is built, see ``load_estimator``) and its description
    (``<stem>.json`` beside it)."""
    if not path or not os.path.exists(path):
        raise PatchFlowError(f"classifier not found: {path}. Train one with 'Train classifier'.", parameter)
    description_path = os.path.splitext(path)[0] + ".json"
    if not os.path.exists(description_path):
        raise PatchFlowError(f"{description_path} is missing: it tells how {os.path.basename(path)}'s features are "
                             "made. Keep it beside the classifier.", parameter)
    try:
        with open(description_path, encoding="utf-8") as handle:
            description = json.load(handle)
        if description.get("format") != FORMAT:
            raise ValueError(f"no format '{FORMAT}'")
    except (OSError, ValueError) as exc:
        raise PatchFlowError(f"cannot read the classifier's description {description_path}: {exc}", parameter) from None
    try:
        classifier = load_estimator(path, parameter, trusted, reporter)
    except PatchFlowError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken file raises anything
        raise PatchFlowError(f"cannot read the classifier {path}: {type(exc).__name__}: {exc}. Train it again with "
                             "'Train classifier'.", parameter) from None
    if not hasattr(classifier, "predict"):
        raise PatchFlowError(f"{path} holds a {type(classifier).__name__}, not a classifier. Train one with "
                             "'Train classifier'.", parameter)
    return classifier, description
