"""Training data streamed from patches-images on disk, never loaded whole.

Patches are read in chunks of consecutive rows (one GDAL read each), chunks are drawn in a seeded
random order and mixed in a shuffle window bounded in bytes; normalisation and augmentation
(flips, 90° rotations) happen per batch in numpy, seeded per epoch, so the same seed gives the
same batches and an interrupted run resumes on the same order.

Train model feeds fit from the record cache (records.py), which gives these batches with
TensorFlow's own ops; the Python stream here serves evaluation, and training when the disk has no
room for the cache.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import PatchFlowError
from ..geodata.raster import open_raster
from ..models.modelcard import Normalization
from .manifest import load_manifest, refuse_nonfinite
from .patches import PatchesImage

CHUNK = 64  # consecutive patches per read
LABELS = "labels"  # the labels image (one class id per patch), as a pseudo-source
LABEL_PATCHES = "label_patches"  # OTBTF label patches described by Describe patches
DEFAULT_WINDOW_BYTES = 256 << 20  # shuffle window: patches mixed together
BLOCK_BYTES = 16 << 20  # model inputs prepared and handed to TensorFlow at once (whole batches)


class PatchDataset:
    """A dataset manifest and its patches-images, opened for reading."""

    def __init__(self, path: str, parameter: str) -> None:
        if path.lower().endswith((".tif", ".tiff")):
            raise PatchFlowError(
                f"{path} is a patches-image, not a dataset manifest. Run 'Describe patches' on it (with its "
                "labels image) to write the manifest, then give that .json here.", parameter)
        self.path, self.parameter = path, parameter
        self.manifest = load_manifest(path, parameter)
        self.count = int(self.manifest.get("n_patches") or 0)
        if self.count <= 0:
            raise PatchFlowError(f"the dataset {path} holds no patch. Extract patches again with points inside "
                                 "the rasters.", parameter)
        self._label_patches_as_source()
        refuse_nonfinite(self.manifest, path, parameter)
        self.sources = {source["name"]: source for source in self.manifest["sources"]}
        self._images: dict[str, PatchesImage] = {}
        self._labels: np.ndarray | None = None

    def _label_patches_as_source(self) -> None:
        """OTBTF label patches (a 'labels' entry of p x p px, from Describe patches) are a label
        source for segmentation, not one label per patch."""
        labels = self.manifest.get("labels")
        if labels and int(labels.get("patch_size") or 1) > 1:
            self.manifest["sources"].append({
                "name": LABEL_PATCHES, "parameter": "LABELS", "role": "label", "patches": labels["patches"],
                "patch_size": int(labels["patch_size"]), "dtype": labels.get("dtype"), "bands": [{"nodata": None}]})
            self.manifest["labels"] = None

    @property
    def classes(self) -> list[dict]:
        return list(self.manifest.get("classes") or [])

    @property
    def has_labels(self) -> bool:
        return bool(self.manifest.get("labels"))

    def source(self, name: str, parameter: str | None = None) -> dict:
        if name not in self.sources:
            raise PatchFlowError(f"the dataset {self.path} has no source '{name}'; it has: "
                                 f"{', '.join(self.sources)}.", parameter or self.parameter)
        return self.sources[name]

    def image(self, name: str) -> PatchesImage:
        if name not in self._images:
            source = self.source(name)
            image = PatchesImage(source["patches"], int(source["patch_size"]), self.parameter)
            if len(image) != self.count:
                raise PatchFlowError(f"{source['patches']} holds {len(image)} patches but the manifest says "
                                     f"{self.count}. Extract the dataset again.", self.parameter)
            self._images[name] = image
        return self._images[name]

    def labels(self) -> np.ndarray:
        """The labels image's values, one per patch (class ids)."""
        if self._labels is None:
            if not self.has_labels:
                raise PatchFlowError(f"the dataset {self.path} has no labels image (it was extracted without a "
                                     "class field).", self.parameter)
            values = open_raster(self.manifest["labels"]["patches"], self.parameter).ReadAsArray()
            if values.size != self.count:
                raise PatchFlowError(f"the labels image of {self.path} holds {values.size} values for "
                                     f"{self.count} patches. Extract the dataset again.", self.parameter)
            self._labels = values.reshape(-1)
        return self._labels

    def close(self) -> None:
        """Close the patches-images (TensorFlow may keep this object alive as long as the process)."""
        self._images.clear()

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        if name == LABELS:
            return self.labels()[start:stop]
        return self.image(name).read(start, stop)




@dataclass
class Feed:
    """One model input fed from one dataset source, centre-cropped to ``size``."""

    input_name: str
    source: str
    size: int
    bands: int
    normalization: Normalization

    def prepare(self, patches: np.ndarray) -> np.ndarray:
        patches = centre_crop(patches, self.size)
        norm = self.normalization
        if norm.kind != "standard":
            return norm.apply(patches)
        # Normalization.apply's arithmetic, in place in one new array (the stream's hot loop)
        data = patches.astype(np.float32)
        data -= np.asarray(norm.mean, dtype=np.float32)
        std = np.asarray(norm.std, dtype=np.float32)
        data /= np.where(std > 0, std, 1.0)
        return data


@dataclass
class Target:
    """What the model learns: class indices (``labels`` image or label patches) or an image."""

    source: str  # LABELS or a dataset source name
    kind: str  # "classes" or "image"
    shape: tuple[int, ...]  # per sample: () for (n,) targets, (h, w) for maps
    class_ids: list[int] = field(default_factory=list)
    nodata: float | None = None  # label value to ignore (weight 0)
    class_weights: np.ndarray | None = None
    model_classes: int | None = None  # classes from this index on are unknown to the model: weight 0
    normalization: Normalization | None = None  # image targets: standardised as the model outputs them

    def prepare(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw target values -> (targets, sample weights) shaped (n, *shape)."""
        if self.kind == "image":
            data = centre_crop(values, self.shape[0])
            data = self.normalization.apply(data) if self.normalization else data.astype(np.float32)
            return data, np.ones(data.shape[:3], np.float32)
        if values.ndim == 1:  # the labels image: one class id per patch
            raw = values.reshape(len(values), *self.shape)
        else:  # label patches (n, p, p, 1)
            raw = centre_crop(values, self.shape[0])[..., 0]
        valid = np.ones(raw.shape, bool) if self.nodata is None else raw != self.nodata
        indices = class_indices(raw if self.nodata is None else np.where(valid, raw, self.class_ids[0]),
                                self.class_ids)
        weights = valid.astype(np.float32)
        if self.class_weights is not None:
            weights *= self.class_weights[indices]
        if self.model_classes is not None:  # e.g. a validation class absent from training: Keras cannot score it
            unknown = indices >= self.model_classes
            weights[unknown], indices = 0.0, np.where(unknown, 0, indices)
        return indices.astype(np.int32), weights


def centre_crop(patches: np.ndarray, size: int) -> np.ndarray:
    """(n, p, p, ...) -> (n, size, size, ...) around the patch centre (index p // 2 kept central)."""
    p = patches.shape[1]
    if p == size:
        return patches
    start = p // 2 - size // 2
    return patches[:, start:start + size, start:start + size]


def class_indices(values: np.ndarray, class_ids: list[int]) -> np.ndarray:
    """Class ids -> model indices 0..C-1; values must be among ``class_ids``."""
    ids = np.asarray(class_ids)
    order = np.argsort(ids)
    low, high = int(ids.min()), int(ids.max())
    if values.dtype.kind in "iu" and high - low <= 65536 and \
            np.iinfo(values.dtype).min <= low and high <= np.iinfo(values.dtype).max:  # a lookup table
        table = order[np.clip(np.searchsorted(ids[order], np.arange(low, high + 1)), 0, len(ids) - 1)]
        return table[np.clip(values, low, high) - low]
    position = np.clip(np.searchsorted(ids[order], values), 0, len(ids) - 1)
    return order[position]


def unknown_labels(values: np.ndarray, class_ids: list[int], nodata: float | None) -> list[int]:
    found = np.unique(values)
    if nodata is not None:
        found = found[found != nodata]
    return sorted(int(v) for v in np.setdiff1d(found, np.asarray(class_ids)))


def label_values(dataset: PatchDataset, target: Target) -> list[int]:
    """Every label value of the dataset (label nodata excluded), read chunk by chunk."""
    found: set[int] = set()
    step = 4096 if target.source == LABELS else CHUNK
    for start in range(0, dataset.count, step):
        raw = dataset.read(target.source, start, min(dataset.count, start + step))
        values = np.unique(raw if raw.ndim == 1 else centre_crop(raw, target.shape[0]))
        found.update(int(v) for v in values if target.nodata is None or v != target.nodata)
    return sorted(found)


def label_counts(dataset: PatchDataset, target: Target) -> np.ndarray:
    """Samples (pixels for maps) per class index; raises when a value is not a known class."""
    counts = np.zeros(len(target.class_ids), np.int64)
    for start in range(0, dataset.count, 4096 if target.source == LABELS else CHUNK):
        stop = min(dataset.count, start + (4096 if target.source == LABELS else CHUNK))
        raw = dataset.read(target.source, start, stop)
        if raw.ndim > 1:
            raw = centre_crop(raw, target.shape[0])
        unknown = unknown_labels(raw, target.class_ids, target.nodata)
        if unknown:
            raise PatchFlowError(
                f"label values {unknown[:10]} in {dataset.path} are not among the model's classes "
                f"{target.class_ids}. Use a dataset with the model's classes, or create the model from this "
                "dataset.", dataset.parameter)
        valid = raw if target.nodata is None else raw[raw != target.nodata]
        counts += np.bincount(class_indices(valid.reshape(-1), target.class_ids), minlength=len(counts))
    return counts


def balanced_weights(counts: np.ndarray) -> np.ndarray:
    """scikit-learn's 'balanced' class weights: n / (C * count); absent classes get 0."""
    present = counts > 0
    weights = np.zeros(len(counts), np.float32)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


class BatchStream:
    """Batches of (inputs by name, targets, sample weights) read from disk, epoch by epoch."""

    def __init__(self, dataset: PatchDataset, feeds: list[Feed], target: Target, batch_size: int,
                 shuffle: bool = False, augment: bool = False, seed: int = 0,
                 window_bytes: int = DEFAULT_WINDOW_BYTES) -> None:
        self.dataset, self.feeds, self.target = dataset, feeds, target
        self.batch_size, self.shuffle, self.augment, self.seed = batch_size, shuffle, augment, seed
        per_patch = sum(f.size * f.size * f.bands * 4 for f in feeds) or 1
        self.window_chunks = max(1, window_bytes // (per_patch * CHUNK))
        self.block_batches = max(1, BLOCK_BYTES // (per_patch * batch_size))
        self.next_epoch = 0
        # an epoch's last, partial batch is left out when it is smaller (several machines: one sample per
        # replica, which could not train on an empty share)
        self.smallest_batch = 1

    @property
    def steps(self) -> int:
        """Batches in an epoch given to fit."""
        full, rest = divmod(self.dataset.count, self.batch_size)
        return max(1, full + (1 if rest and rest >= self.smallest_batch else 0))

    def chunk_order(self, rng: np.random.Generator) -> np.ndarray:
        chunks = np.arange(math.ceil(self.dataset.count / CHUNK))
        return rng.permutation(chunks) if self.shuffle else chunks

    def read_window(self, chunks: np.ndarray) -> dict[str, np.ndarray]:
        names = [f.source for f in self.feeds] + [self.target.source]
        window: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for chunk in np.sort(chunks):  # in file order, for the disk's sake
            start = int(chunk) * CHUNK
            for name in window:
                window[name].append(self.dataset.read(name, start, min(self.dataset.count, start + CHUNK)))
        return {name: np.concatenate(parts) for name, parts in window.items()}

    def epoch(self, epoch: int) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]]:
        for inputs, targets, weights in self.blocks(epoch):
            for start in range(0, len(targets), self.batch_size):
                stop = start + self.batch_size
                yield {name: values[start:stop] for name, values in inputs.items()}, targets[start:stop], \
                    weights[start:stop]

    def blocks(self, epoch: int) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]]:
        """The epoch's batches, consecutive ones prepared together: (inputs, targets, weights) of
        whole batches (the epoch's last one may be short), about BLOCK_BYTES of inputs each."""
        rng = np.random.default_rng([self.seed, epoch])
        order = self.chunk_order(rng)
        carry: dict[str, np.ndarray] | None = None
        for first in range(0, len(order), self.window_chunks):
            window = self.read_window(order[first:first + self.window_chunks])
            if self.shuffle:
                permutation = rng.permutation(len(next(iter(window.values()))))
                window = {name: values[permutation] for name, values in window.items()}
            if carry is not None:
                window = {name: np.concatenate([carry[name], values]) for name, values in window.items()}
            size = len(next(iter(window.values())))
            last = first + self.window_chunks >= len(order)
            full = size if last else size - size % self.batch_size
            for start in range(0, full, self.block_batches * self.batch_size):
                stop = min(full, start + self.block_batches * self.batch_size)
                yield self.prepare({name: values[start:stop] for name, values in window.items()}, rng)
            carry = {name: values[full:] for name, values in window.items()} if full < size else None

    def prepare(self, raw: dict[str, np.ndarray], rng: np.random.Generator):
        """Consecutive batches at once: normalisation and targets for all, augmentation batch by
        batch (the same random draws as batch())."""
        inputs = {feed.input_name: feed.prepare(raw[feed.source]) for feed in self.feeds}
        targets, weights = self.target.prepare(raw[self.target.source])
        if self.augment:
            for start in range(0, len(targets), self.batch_size):
                part = slice(start, start + self.batch_size)
                batch = augment({name: values[part] for name, values in inputs.items()}, targets[part],
                                weights[part], rng)
                for name in inputs:
                    inputs[name][part] = batch[0][name]
                targets[part], weights[part] = batch[1], batch[2]
        return inputs, targets, weights

    def batch(self, raw: dict[str, np.ndarray], rng: np.random.Generator):
        inputs = {feed.input_name: feed.prepare(raw[feed.source]) for feed in self.feeds}
        targets, weights = self.target.prepare(raw[self.target.source])
        if self.augment:
            inputs, targets, weights = augment(inputs, targets, weights, rng)
        return inputs, targets, weights

    def tf_dataset(self, start_epoch: int = 0):
        """A tf.data.Dataset giving a new epoch (new order) each time it is iterated."""
        import tensorflow as tf

        self.next_epoch = start_epoch

        single = len(self.feeds) == 1  # a one-input model takes the tensor itself, not a dict

        def generate():
            """Blocks of batches, (k, batch size, ...): one hand-over to TensorFlow per block."""
            epoch = self.next_epoch
            self.next_epoch += 1
            for inputs, targets, weights in self.blocks(epoch):
                whole = len(targets) - len(targets) % self.batch_size
                for start, stop, size in ((0, whole, self.batch_size), (whole, len(targets), len(targets) - whole)):
                    if stop > start:
                        def stacked(values, start=start, stop=stop, size=size):
                            return values[start:stop].reshape(-1, size, *values.shape[1:])  # a view, no copy
                        block = {name: stacked(values) for name, values in inputs.items()}
                        yield (next(iter(block.values())) if single else block), stacked(targets), stacked(weights)

        spatial = self.target.shape
        input_specs = {f.input_name: tf.TensorSpec((None, None, f.size, f.size, f.bands), tf.float32)
                       for f in self.feeds}
        signature = (
            next(iter(input_specs.values())) if single else input_specs,
            tf.TensorSpec((None, None, *spatial, *(() if self.target.kind == "classes" else (None,))),
                          tf.int32 if self.target.kind == "classes" else tf.float32),
            tf.TensorSpec((None, None, *spatial), tf.float32),
        )
        # the generator runs a block ahead; TensorFlow splits blocks into batches without Python
        return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(1).unbatch() \
            .take(self.steps).prefetch(2)


def augment(inputs: dict[str, np.ndarray], targets: np.ndarray, weights: np.ndarray, rng: np.random.Generator):
    """Each sample gets one of the 8 flips/rotations of the square, the same for its inputs and maps."""
    transforms = rng.integers(0, 8, len(targets))
    spatial_target = targets.ndim >= 3 and targets.shape[1] > 1
    out_inputs = {name: values.copy() for name, values in inputs.items()}
    out_targets, out_weights = targets.copy(), weights.copy()
    for transform in range(1, 8):
        chosen = np.flatnonzero(transforms == transform)
        if len(chosen) == 0:
            continue
        for name, values in inputs.items():
            out_inputs[name][chosen] = dihedral(values[chosen], transform)
        if spatial_target:
            out_targets[chosen] = dihedral(targets[chosen], transform)
            out_weights[chosen] = dihedral(weights[chosen], transform)
    return out_inputs, out_targets, out_weights


def dihedral(values: np.ndarray, transform: int) -> np.ndarray:
    """Transform 0-7 of (n, h, w, ...) arrays: rotations by 90° x (t % 4), mirrored first when t >= 4."""
    if transform >= 4:
        values = values[:, :, ::-1]
    return np.rot90(values, transform % 4, axes=(1, 2))


def load_in_memory(stream: BatchStream) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The whole dataset as arrays, in file order (for benchmarks and small evaluations)."""
    parts = list(BatchStream(stream.dataset, stream.feeds, stream.target, stream.batch_size).epoch(0))
    inputs = {name: np.concatenate([p[0][name] for p in parts]) for name in parts[0][0]}
    return inputs, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
