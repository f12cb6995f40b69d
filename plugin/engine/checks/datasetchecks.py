"""The checks of datasets (patch manifests) and of the classes in them: a manifest and its
images can be read, a training set holds 2 classes or more, whether it trains an image target
rather than classes; and the warnings for a class a validation, test or reference set has no
sample of (train_model, grid_split, assess_accuracy).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import PatchFlowError
from ..params import Params
from ..reporting import Reporter
from .rasterchecks import readable_raster

IMAGE_LOSSES = ("l1", "l2", "ssim")


def dataset(path: str | None, parameter: str) -> dict | None:
    """The manifest at ``path`` (None when not given, or a .tif that the operation explains), after
    checking its patches-images and labels image can be read."""
    from ..data.manifest import load_manifest, refuse_nonfinite

    if not path or str(path).lower().endswith((".tif", ".tiff")):
        return None
    manifest = load_manifest(str(path), parameter)
    refuse_nonfinite(manifest, str(path), parameter)  # data that cannot be trained on, before any other advice
    images = [source.get("patches") for source in manifest.get("sources") or []]
    if manifest.get("labels"):
        images.append(manifest["labels"].get("patches"))
    for image in images:
        if image:
            readable_raster(image, parameter)
    return manifest


def class_counts(manifest: dict, parameter: str = "TRAIN") -> dict[int, int] | None:
    """Samples per class: read from the labels image (one class per patch), else the manifest's
    counts (label patches); None when neither tells."""
    from ..geodata.raster import open_raster

    labels = manifest.get("labels")
    if labels and int(labels.get("patch_size") or 1) == 1:
        values = open_raster(labels["patches"], parameter).ReadAsArray()
        ids, counts = np.unique(values, return_counts=True)
        return {int(i): int(n) for i, n in zip(ids, counts)}
    classes = manifest.get("classes") or []
    if classes and all(c.get("count") is not None for c in classes):
        return {int(c["id"]): int(c["count"]) for c in classes}
    return None


def class_names(manifest: dict) -> dict[int, str]:
    return {int(c["id"]): str(c.get("name") or f"class {c['id']}") for c in manifest.get("classes") or []}


def two_classes(manifest: dict, path: str | None, parameter: str) -> dict[int, int] | None:
    """The class counts, after checking there are 2 classes or more to learn."""
    counts = class_counts(manifest, parameter)
    if counts is None:
        return None
    present = sorted(c for c, n in counts.items() if n > 0)
    if len(present) < 2:
        names = class_names(manifest)
        found = ", ".join(f"{c} ({names.get(c, f'class {c}')})" for c in present) or "none"
        raise PatchFlowError(f"the dataset {path} holds {len(present)} class ({found}); a classifier learns to tell 2 "
                             "classes or more apart. Sample more classes (e.g. strategy 'constant'), or check the "
                             "class field.", parameter)
    return counts


def missing_classes(reporter: Reporter, counts: dict[int, int], other: dict[int, int] | None, names: dict[int, str],
                    what: str) -> None:
    """Warn about classes of ``counts`` that ``other`` (a validation or test set) has no sample of."""
    if other is None:
        return
    absent = sorted(c for c, n in counts.items() if n > 0 and other.get(c, 0) == 0)
    if absent:
        listed = ", ".join(f"{c} ({names.get(c, f'class {c}')})" for c in absent)
        reporter.warning(f"{what} has no sample of class(es) {listed}: their recall and F1 cannot be measured "
                         "there, and its overall scores say nothing about them.")


def image_target(params: Params, manifest: dict) -> bool:
    """Whether training learns an image (super-resolution, image losses) rather than classes."""
    if params.values.get("TARGET") or str(params.values.get("LOSS") or "").lower() in IMAGE_LOSSES:
        return True
    if params.values.get("LOSS_WEIGHTS"):
        return True
    return any(s.get("role") == "target" for s in manifest.get("sources") or [])


def classes_missing_from_sets(reporter: Reporter, sets: np.ndarray, class_ids: np.ndarray | None, names: dict,
                              written: Iterable[str]) -> None:
    """grid_split: warn when the validation or test set written lacks a class the training set has."""
    if class_ids is None:
        return
    sets, class_ids = np.asarray(sets).ravel(), np.asarray(class_ids).ravel()
    per_set = []
    for index in range(3):
        ids, counts = np.unique(class_ids[sets == index], return_counts=True)
        per_set.append({int(i): int(n) for i, n in zip(ids, counts) if int(i) != -1})
    labels = {int(k): (v.name if hasattr(v, "name") else str(v)) for k, v in names.items()}
    for index, (output, what) in enumerate((("OUTPUT_VALID", "the validation set (OUTPUT_VALID)"),
                                            ("OUTPUT_TEST", "the test set (OUTPUT_TEST)")), start=1):
        if output in written and per_set[index]:
            missing_classes(reporter, per_set[0], per_set[index], labels, what)


def classes_missing_from_reference(reporter: Reporter, rows: list[dict], known_map: dict, parameter: str) -> None:
    """assess_accuracy: warn about classes of the map (given at reference samples, or named in the
    map's legend) that the reference (the test set) has no sample of."""
    mapped = {int(row["id"]): int(row["predicted"]) for row in rows}
    names = {int(k): getattr(v, "name", "") for k, v in known_map.items()}
    for class_id, name in names.items():
        if name:
            mapped[class_id] = max(1, mapped.get(class_id, 0))
    names.update({int(row["id"]): row["name"] for row in rows})
    reference = {int(row["id"]): int(row["reference"]) for row in rows}
    missing_classes(reporter, mapped, reference, names, f"the reference ({parameter})")
