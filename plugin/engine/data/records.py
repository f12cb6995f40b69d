"""Record cache: a dataset's samples, cropped to the model's inputs, in one fixed-length binary file
that TensorFlow reads with its own ops.

Training from patches-images goes through a Python generator, and on a busy CPU that generator
stalls the training step (about 30 % of an FCNN's throughput on 2 cores). Train model therefore
writes the samples once, chunk by chunk, as records of raw values (inputs in the patches' own
type, targets as class codes) and streams them back with ``FixedLengthRecordDataset``: chunks in a
seeded order per epoch, a shuffle window bounded in bytes, then normalisation, class lookup, sample
weights and augmentation as TensorFlow ops on whole batches. Nothing is held whole in memory; the
file lives in the training work folder and goes with it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from ...protocol import strict_dump
from ..errors import Cancelled
from .datasets import CHUNK, BatchStream, Target, centre_crop, class_indices

RECORDS = "records.bin"
LAYOUT = "records.json"
TARGET = "target"  # the record field holding the target (class codes or image values)
STRIPES = 16  # runs of the record file read side by side: each window mixes 16 parts of the dataset
DISK_MARGIN = 1.1  # free space wanted, as a multiple of the cache's size
MIXING, AUGMENTATION = 1, 2  # separate random draws for the window permutations and the flips


@dataclass
class RecordField:
    name: str  # a model input name, or TARGET
    dtype: str  # numpy dtype string, little-endian
    shape: list[int]

    @property
    def numpy(self) -> tuple:
        return (self.name, np.dtype(self.dtype), tuple(self.shape))


@dataclass
class RecordLayout:
    count: int
    fields: list[RecordField]
    key: dict  # what the records were made from: reused only when it matches

    @property
    def record_dtype(self) -> np.dtype:
        return np.dtype([f.numpy for f in self.fields])  # packed: one record's bytes, field after field

    @property
    def record_bytes(self) -> int:
        return self.record_dtype.itemsize


def cache_key(stream: BatchStream) -> dict:
    manifest = stream.dataset.path
    target = stream.target
    return {"manifest": os.path.abspath(manifest), "modified": os.stat(manifest).st_mtime_ns,
            "count": stream.dataset.count,
            "feeds": [[f.input_name, f.source, f.size, f.bands] for f in stream.feeds],
            "target": [target.source, target.kind, list(target.shape), [int(i) for i in target.class_ids],
                       target.nodata]}


def target_codes(target: Target, raw: np.ndarray) -> np.ndarray:
    """Raw class values -> codes: the class index, or len(class_ids) where the label is nodata."""
    values = raw.reshape(len(raw), *target.shape) if raw.ndim == 1 else centre_crop(raw, target.shape[0])[..., 0]
    valid = np.ones(values.shape, bool) if target.nodata is None else values != target.nodata
    codes = class_indices(np.where(valid, values, target.class_ids[0]), target.class_ids)
    codes[~valid] = len(target.class_ids)
    return codes


def record_fields(stream: BatchStream, first: dict[str, np.ndarray]) -> list[RecordField]:
    """The fields of one record, from the dtypes of a first chunk read."""
    fields = [RecordField(f.input_name, first[f.source].dtype.newbyteorder("<").str, [f.size, f.size, f.bands])
              for f in stream.feeds]
    target = stream.target
    if target.kind == "classes":
        code_type = np.uint8 if len(target.class_ids) < 255 else np.int32
        fields.append(RecordField(TARGET, np.dtype(code_type).newbyteorder("<").str, list(target.shape)))
    else:
        raw = centre_crop(first[target.source], target.shape[0])
        fields.append(RecordField(TARGET, raw.dtype.newbyteorder("<").str, list(raw.shape[1:])))
    return fields


def chunk_records(stream: BatchStream, raw: dict[str, np.ndarray], layout: RecordLayout) -> np.ndarray:
    count = len(raw[stream.target.source])
    records = np.empty(count, layout.record_dtype)
    for feed in stream.feeds:
        records[feed.input_name] = centre_crop(raw[feed.source], feed.size)
    target = stream.target
    if target.kind == "classes":
        records[TARGET] = target_codes(target, raw[target.source])
    else:
        records[TARGET] = centre_crop(raw[target.source], target.shape[0])
    return records


def read_chunk(stream: BatchStream, start: int) -> dict[str, np.ndarray]:
    stop = min(stream.dataset.count, start + CHUNK)
    names = {f.source for f in stream.feeds} | {stream.target.source}
    return {name: stream.dataset.read(name, start, stop) for name in names}


def supported(dtype: np.dtype) -> bool:
    return dtype.kind in "iuf" and dtype.itemsize <= 8


def expected_bytes(stream: BatchStream) -> int:
    """About the cache's size, before reading anything (inputs at up to 4 bytes a value)."""
    per_patch = sum(f.size * f.size * f.bands * 4 for f in stream.feeds) + 4 * math.prod(stream.target.shape or (1,))
    return per_patch * stream.dataset.count


def open_layout(folder: str, key: dict) -> RecordLayout | None:
    try:
        with open(os.path.join(folder, LAYOUT), encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError):
        return None
    layout = RecordLayout(int(data["count"]), [RecordField(**f) for f in data["fields"]], data["key"])
    size = os.path.getsize(os.path.join(folder, RECORDS)) if os.path.exists(os.path.join(folder, RECORDS)) else -1
    return layout if layout.key == key and size == layout.count * layout.record_bytes else None


def write_records(stream: BatchStream, folder: str, cancelled: Callable[[], bool] = lambda: False
                  ) -> RecordLayout | None:
    """The cache in ``folder`` (reused when it was made from the same inputs); None when the
    patches' type cannot be stored as raw values (complex numbers)."""
    key = cache_key(stream)
    layout = open_layout(folder, key)
    if layout is not None:
        return layout
    os.makedirs(folder, exist_ok=True)
    partial = os.path.join(folder, RECORDS + ".partial")
    with open(partial, "wb") as file:
        for start in range(0, stream.dataset.count, CHUNK):
            if cancelled():
                raise Cancelled()
            raw = read_chunk(stream, start)
            if layout is None:
                if not all(supported(values.dtype) for values in raw.values()):
                    file.close()
                    os.remove(partial)
                    return None
                layout = RecordLayout(stream.dataset.count, record_fields(stream, raw), key)
            file.write(chunk_records(stream, raw, layout).tobytes())
    os.replace(partial, os.path.join(folder, RECORDS))
    assert layout is not None  # the dataset has patches
    with open(os.path.join(folder, LAYOUT), "w", encoding="utf-8") as file:
        strict_dump({"count": layout.count, "fields": [asdict(f) for f in layout.fields], "key": layout.key}, file)
    return layout


def room_for(stream: BatchStream, folder: str) -> bool:
    parent = folder
    while not os.path.isdir(parent):
        parent = os.path.dirname(parent) or "."
    return shutil.disk_usage(parent).free >= DISK_MARGIN * expected_bytes(stream)


# ---- reading, all in TensorFlow ---------------------------------------------------------------------


def record_dataset(stream: BatchStream, folder: str, layout: RecordLayout, start_epoch: int = 0):
    """Endless batches (inputs, targets, weights), epoch after epoch from ``start_epoch``: the same
    epoch always gives the same batches, so a resumed run continues as an uninterrupted one would.

    The file is read as STRIPES runs of consecutive chunks, all open at once and taken a chunk
    from each in turn, in a seeded order; chunks are gathered into shuffle windows (the stream's
    window_chunks), mixed by a seeded permutation and cut into batches: tensor operations on whole
    chunks, nothing per record, no Python."""
    import tensorflow as tf

    path = os.path.join(folder, RECORDS)
    record_bytes = layout.record_bytes
    seed = tf.constant(stream.seed, tf.int64)
    decode = batch_decoder(stream, layout)

    stripe_rows = stripe_table(layout)
    stripes = tf.constant(stripe_rows, tf.int64)

    def read_stripe(stripe):
        return tf.data.FixedLengthRecordDataset(path, stripe[1], header_bytes=stripe[0], footer_bytes=stripe[2],
                                                buffer_size=CHUNK * record_bytes)

    def epoch_batches(epoch):
        order = stripes
        if stream.shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([seed, epoch]))
        # shuffled: one chunk from each stripe in turn (all open at once); else the file in order
        cycle = len(stripe_rows) if stream.shuffle else 1
        chunks = tf.data.Dataset.from_tensor_slices(order).interleave(
            read_stripe, cycle_length=cycle, block_length=1, num_parallel_calls=min(2, cycle), deterministic=True)
        samples = chunks.enumerate().map(lambda index, chunk: decode(chunk, epoch, index), num_parallel_calls=2,
                                         deterministic=True)
        if stream.shuffle:
            def mix(index, window):
                window_seed = draw_seed(stream.seed, epoch, MIXING, index)
                size = tf.shape(tf.nest.flatten(window)[0])[0]
                permutation = tf.random.experimental.stateless_shuffle(tf.range(size), seed=window_seed)
                return tf.nest.map_structure(lambda values: tf.gather(values, permutation), window)

            samples = samples.rebatch(stream.window_chunks * CHUNK).enumerate().map(mix).prefetch(1)
        return samples.rebatch(stream.batch_size).take(stream.steps)  # without a too small last batch

    return tf.data.Dataset.range(start_epoch, 2**62).flat_map(epoch_batches).prefetch(2)


def draw_seed(seed: int, epoch, purpose: int, index):
    """A stateless seed per (stream seed, epoch, purpose, chunk or window index)."""
    import tensorflow as tf

    base = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.experimental.stateless_fold_in(tf.random.experimental.stateless_fold_in(base, purpose), index)


def stripe_table(layout: RecordLayout) -> list[list[int]]:
    """(header bytes, record bytes, footer bytes) of each stripe; a record is a chunk. The last,
    partial chunk is a stripe of its own (a reader's records all have one size)."""
    record_bytes, total = layout.record_bytes, layout.count * layout.record_bytes
    full = layout.count // CHUNK
    bounds = np.linspace(0, full, min(STRIPES, full) + 1).round().astype(np.int64)
    rows = [[int(a) * CHUNK * record_bytes, CHUNK * record_bytes, total - int(b) * CHUNK * record_bytes]
            for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    if layout.count % CHUNK:
        rows.append([full * CHUNK * record_bytes, (layout.count % CHUNK) * record_bytes, 0])
    return rows


def batch_decoder(stream: BatchStream, layout: RecordLayout):
    """(a chunk of records, epoch, chunk index) -> (inputs, targets, weights) as Target.prepare and
    Feed.prepare give them, augmented when the stream augments."""
    import tensorflow as tf

    record_bytes = layout.record_bytes
    offsets, position = {}, 0
    for field in layout.fields:
        offsets[field.name] = position
        position += int(np.dtype(field.dtype).itemsize * math.prod(field.shape))
    by_name = {field.name: field for field in layout.fields}

    def field_values(raw, name):
        field = by_name[name]
        dtype = np.dtype(field.dtype)
        start = offsets[name]
        values = raw[:, start:start + dtype.itemsize * math.prod(field.shape)]
        if dtype.itemsize > 1:
            values = tf.bitcast(tf.reshape(values, (tf.shape(raw)[0], -1, dtype.itemsize)), tf.as_dtype(dtype.type))
        else:
            values = tf.bitcast(values, tf.as_dtype(dtype.type)) if dtype != np.uint8 else values
        return tf.reshape(values, (-1, *field.shape))

    target = stream.target
    tables = target_tables(target) if target.kind == "classes" else None

    def decode(chunk, epoch, index):
        raw = tf.reshape(tf.io.decode_raw(chunk, tf.uint8), (-1, record_bytes))
        inputs = {f.input_name: normalise(field_values(raw, f.input_name), f.normalization) for f in stream.feeds}
        values = field_values(raw, TARGET)
        if tables is not None:
            codes = tf.cast(values, tf.int32)
            targets, weights = tf.gather(tables[0], codes), tf.gather(tables[1], codes)
        else:
            targets = normalise(values, target.normalization) if target.normalization else tf.cast(values, tf.float32)
            weights = tf.ones(tf.shape(targets)[:3], tf.float32)
        if stream.augment:
            seed = draw_seed(stream.seed, epoch, AUGMENTATION, index)
            transforms = tf.random.stateless_uniform((tf.shape(raw)[0],), seed, 0, 8, tf.int32)
            inputs = {name: dihedral(values, transforms) for name, values in inputs.items()}
            if len(target.shape) >= 2 and target.shape[0] > 1:
                targets, weights = dihedral(targets, transforms), dihedral(weights, transforms)
        single = len(stream.feeds) == 1
        return (next(iter(inputs.values())) if single else inputs), targets, weights

    return decode


def target_tables(target: Target) -> tuple:
    """Per class code: (model index, sample weight); the last code is nodata (weight 0)."""
    import tensorflow as tf

    classes = len(target.class_ids)
    known = classes if target.model_classes is None else target.model_classes
    indices = [i if i < known else 0 for i in range(classes)] + [0]
    weights = [0.0 if i >= known else (1.0 if target.class_weights is None else float(target.class_weights[i]))
               for i in range(classes)] + [0.0]
    return tf.constant(indices, tf.int32), tf.constant(weights, tf.float32)


def normalise(values, normalization):
    import tensorflow as tf

    data = tf.cast(values, tf.float32)
    if normalization.kind == "standard":
        std = np.asarray(normalization.std, dtype=np.float32)
        return (data - np.asarray(normalization.mean, dtype=np.float32)) / np.where(std > 0, std, 1.0)
    if normalization.kind == "scale":
        return data * np.float32(normalization.scale)
    return data


def dihedral(values, transforms):
    """Per sample, transform 0-7 of (n, h, w, ...): as datasets.dihedral (mirror first when >= 4,
    then rotate by 90° x (t % 4), counter-clockwise)."""
    import tensorflow as tf

    mirrored = tf.reverse(values, [2])
    flip = tf.reshape(transforms >= 4, (-1,) + (1,) * (len(values.shape) - 1))
    rotated = tf.where(flip, mirrored, values)
    turns = transforms % 4
    result = rotated
    for turn in range(1, 4):
        rotated = tf.reverse(transpose_hw(rotated), [1])  # one more counter-clockwise quarter turn
        chosen = tf.reshape(turns == turn, (-1,) + (1,) * (len(values.shape) - 1))
        result = tf.where(chosen, rotated, result)
    return result


def transpose_hw(values):
    import tensorflow as tf

    rank = len(values.shape)
    return tf.transpose(values, [0, 2, 1, *range(3, rank)])
