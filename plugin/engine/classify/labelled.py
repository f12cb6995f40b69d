"""The datasets a classifier is fitted and validated on: a manifest's image source with the
class of each patch (its labels image), checked against the feature extractor (bands, patch
size) and against the training set (a validation set's classes), and the features of all its
patches, read in chunks of about ``CHUNK_BYTES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..data.patches import PatchesImage
from ..errors import Cancelled, PatchFlowError
from ..geodata.raster import open_raster
from ..reporting import Reporter
from .features import CONTEXT, DEEP, FeatureExtractor

CHUNK_BYTES = 32 << 20  # raw patches per features pass chunk


@dataclass
class LabelledPatches:
    """One source of a dataset (manifest) and the class of each of its patches: what a classifier
    (``train_classifier``) is fitted on. Not ``datasets.PatchDataset``, which streams batches to Keras."""

    path: str
    parameter: str
    manifest: dict
    source: dict
    labels: np.ndarray
    classes: list[dict]
    extra_sources: list[dict] = field(default_factory=list)  # a multi-input model's other sources (multisource.py)

    @property
    def bands(self) -> int:
        return len(self.source["bands"])

    @property
    def patch_size(self) -> int:
        return int(self.source["patch_size"])

    @property
    def class_ids(self) -> set[int]:
        return {int(c["id"]) for c in self.classes}


def load_dataset(path: str, parameter: str, source_name: str = "source1") -> LabelledPatches:
    """A manifest with a labels image (one class per patch) and the named image source."""
    from ..data.manifest import load_manifest, refuse_nonfinite

    manifest = load_manifest(path, parameter)
    labels = manifest.get("labels")
    if not labels or int(labels.get("patch_size", 1)) != 1:
        raise PatchFlowError(f"{path} has no labels image (one class per patch): the classifier needs a dataset "
                             "with a class field (labels image). Extract patches with CLASS_FIELD set.", parameter)
    sources = {s["name"]: s for s in manifest["sources"] if s.get("role", "image") == "image"}
    if source_name not in sources:
        raise PatchFlowError(f"{path} has no source '{source_name}' (it has: {', '.join(sources)}).", parameter)
    refuse_nonfinite(manifest, path, parameter, [source_name])
    ds = open_raster(labels["patches"], parameter)
    values = ds.ReadAsArray().reshape(-1).astype(np.int64)
    ds = None
    count = int(manifest.get("n_patches", len(values)))
    if len(values) != count:
        raise PatchFlowError(f"{labels['patches']} holds {len(values)} labels for {count} patches.", parameter)
    classes = [{"id": int(c["id"]), "name": c.get("name") or f"class {c['id']}", "color": c.get("color") or ""}
               for c in manifest.get("classes", [])]
    known = {c["id"] for c in classes}
    classes += [{"id": value, "name": f"class {value}", "color": ""} for value in sorted(set(values.tolist()) - known)]
    classes.sort(key=lambda c: c["id"])
    from ..geodata.classcolors import default_colors

    colors = default_colors([str(c["name"]) for c in classes], [str(c["color"]) for c in classes])
    for info, color in zip(classes, colors):
        info["color"] = color
    return LabelledPatches(path, parameter, manifest, sources[source_name], values, classes)


def check_compatible(dataset: LabelledPatches, extractor: FeatureExtractor) -> None:
    parameter = "MODEL" if extractor.kind == DEEP and dataset.parameter == "DATASET" else dataset.parameter
    if dataset.bands != extractor.bands:
        raise PatchFlowError(f"the model takes {extractor.bands} bands but {dataset.path} has {dataset.bands}. "
                             "Use a dataset extracted from the bands the model was trained on.", parameter)
    if extractor.patch_size > dataset.patch_size:
        needs = (f"a {extractor.patch_size} x {extractor.patch_size} neighbourhood (NEIGHBOURHOOD) needs "
                 f"{extractor.patch_size} px patches" if extractor.kind == CONTEXT else
                 f"the model takes {extractor.patch_size} px patches")
        raise PatchFlowError(f"{needs} but {dataset.path} holds "
                             f"{dataset.patch_size} px patches. Extract patches of {extractor.patch_size} px or "
                             "more.", parameter)


def check_validation(train: LabelledPatches, valid: LabelledPatches, parameter: str = "VALID") -> None:
    """``valid`` (the VALID or TEST set) has the training set's bands and classes."""
    if valid.bands != train.bands:
        raise PatchFlowError(f"{valid.path} has {valid.bands} bands but the training dataset has {train.bands}. "
                             "Extract both from the same rasters.", parameter)
    names = {c["id"]: c["name"] for c in train.classes}
    unknown = sorted(valid.class_ids - set(names))
    renamed = sorted(c["id"] for c in valid.classes if c["id"] in names and c["name"] != names[c["id"]]
                     and not _default_name(c) and not _default_name({"id": c["id"], "name": names[c["id"]]}))
    if unknown or renamed:
        detail = (f"classes {unknown} are not in the training dataset" if unknown
                  else f"classes {renamed} have other names than in the training dataset")
        raise PatchFlowError(f"{valid.path}: {detail}. Extract training and validation patches with the same "
                             "class field from one sample set (grid split).", parameter)


def _default_name(info: dict) -> bool:
    """A name made up for an id that came without one (it does not conflict with a real name)."""
    return info["name"] == f"class {info['id']}"


def dataset_features(dataset: LabelledPatches, extractor: FeatureExtractor, reporter: Reporter,
                     cancelled: Callable[[], bool] = lambda: False) -> np.ndarray:
    """Features (n, F) of every patch of the dataset, read in chunks of about CHUNK_BYTES."""
    image = PatchesImage(dataset.source["patches"], dataset.patch_size, dataset.parameter)
    others = [PatchesImage(s["patches"], int(s["patch_size"]), dataset.parameter) for s in dataset.extra_sources]
    for source, other in zip(dataset.extra_sources, others):
        if len(other) != len(image):
            raise PatchFlowError(f"{other.path} (source '{source['name']}') holds {len(other)} patches but "
                                 f"{image.path} {len(image)}. Extract the dataset again.", dataset.parameter)
    per_patch = sum(i.patch_size * i.patch_size * i.bands * i.dtype.itemsize for i in [image, *others])
    step = max(1, CHUNK_BYTES // per_patch)
    parts = []
    for start in range(0, len(image), step):
        if cancelled():
            raise Cancelled()
        parts.append(extractor.from_dataset_patches(image.read(start, start + step),
                                                    [other.read(start, start + step) for other in others]))
        reporter.progress(100.0 * min(len(image), start + step) / max(1, len(image)))
    del image, others
    return np.concatenate(parts) if parts else np.empty((0, 0), np.float32)
