"""Streamed training data: every patch once per epoch, inputs and targets kept together through
shuffling and augmentation, seeded orders, label checks, class weights, dataset errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from osgeo import gdal

from patchflow.plugin.engine.data.datasets import (
    LABEL_PATCHES,
    LABELS,
    BatchStream,
    Feed,
    PatchDataset,
    Target,
    balanced_weights,
    centre_crop,
    class_indices,
    dihedral,
    label_counts,
    load_in_memory,
)
from patchflow.plugin.engine.data.patches import PatchesImageWriter
from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.models.modelcard import Normalization


def write_dataset(folder, count: int, size: int = 8, bands: int = 2, classes=(1, 2, 5), label_patches=False,
                  otbtf_labels=False):
    """A manifest whose patch i holds the value i everywhere (band b: i + 1000 b) and label
    classes[i % len(classes)], so any mix-up between patches and labels shows."""
    folder.mkdir(parents=True, exist_ok=True)
    values = np.arange(count, dtype=np.float32)
    patches = np.broadcast_to(values[:, None, None, None] + 1000 * np.arange(bands)[None, :, None, None],
                              (count, bands, size, size)).astype(np.float32)
    writer = PatchesImageWriter(str(folder / "p.tif"), count, bands, size, np.float32)
    writer.add(patches)
    writer.close([f"b{b}" for b in range(bands)], [None] * bands)
    ids = np.array([classes[i % len(classes)] for i in range(count)], np.uint8)
    sources = [{"name": "source1", "role": "image", "patch_size": size, "patches": "p.tif", "dtype": "float32",
                "bands": [{"mean": float(patches[:, b].mean()), "std": float(patches[:, b].std()), "nodata": None}
                          for b in range(bands)]}]
    labels = None
    if label_patches or otbtf_labels:
        maps = np.zeros((count, 1, size, size), np.uint8)
        maps[:] = ids[:, None, None, None]
        maps[:, :, 0, :] = np.array(classes[::-1])[np.arange(count) % len(classes)][:, None, None]  # top row differs
        writer = PatchesImageWriter(str(folder / "l.tif"), count, 1, size, np.uint8)
        writer.add(maps)
        writer.close(["label"], [None])
        if otbtf_labels:
            labels = {"patches": str(folder / "l.tif"), "field": None, "dtype": "uint8", "patch_size": size}
        else:
            sources.append({"name": "labels_raster", "role": "label", "patch_size": size, "patches": "l.tif",
                            "dtype": "uint8", "bands": [{"nodata": None}]})
    else:
        image = gdal.GetDriverByName("GTiff").Create(str(folder / "labels.tif"), 1, count, 1, gdal.GDT_Byte)
        image.GetRasterBand(1).WriteArray(ids[:, None])
        image = None
        labels = {"patches": "labels.tif", "field": "class", "dtype": "uint8"}
    manifest = {"format": "patchflow-dataset", "version": 1, "n_patches": count, "sources": sources,
                "labels": labels, "classes": [{"id": c, "name": f"c{c}", "color": "#000000"} for c in classes]}
    (folder / "d.json").write_text(json.dumps(manifest))
    return str(folder / "d.json")


def stream_of(path, batch=7, shuffle=True, augment=False, seed=0, window_bytes=256 << 20, target=None):
    dataset = PatchDataset(path, "TRAIN")
    feed = Feed("x1", "source1", dataset.sources["source1"]["patch_size"], 2, Normalization())
    return BatchStream(dataset, [feed], target or Target(LABELS, "classes", (1, 1), [1, 2, 5]), batch, shuffle,
                       augment, seed, window_bytes)


def epoch_arrays(stream, epoch):
    batches = list(stream.epoch(epoch))
    return (np.concatenate([b[0]["x1"] for b in batches]), np.concatenate([b[1] for b in batches]),
            [len(b[1]) for b in batches])


@pytest.mark.parametrize("window_bytes", [256 << 20, 3000])  # one window; windows of a few chunks
def test_an_epoch_gives_every_patch_once_with_its_label(tmp_path, window_bytes):
    stream = stream_of(write_dataset(tmp_path, 500), window_bytes=window_bytes)
    x, y, sizes = epoch_arrays(stream, 0)
    ids = x[:, 0, 0, 0].astype(int)
    assert sorted(ids) == list(range(500))
    assert (x[:, :, :, 1] == x[:, :, :, :1][..., 0] + 1000).all()
    assert (np.array([1, 2, 5])[y.reshape(-1)] == np.array([1, 2, 5])[ids % 3]).all()
    assert sizes[:-1] == [7] * (len(sizes) - 1) and sum(sizes) == 500


def test_orders_are_seeded_per_epoch(tmp_path):
    path = write_dataset(tmp_path, 300)
    first = epoch_arrays(stream_of(path, seed=1), 0)[0][:, 0, 0, 0]
    again = epoch_arrays(stream_of(path, seed=1), 0)[0][:, 0, 0, 0]
    next_epoch = epoch_arrays(stream_of(path, seed=1), 1)[0][:, 0, 0, 0]
    other_seed = epoch_arrays(stream_of(path, seed=2), 0)[0][:, 0, 0, 0]
    assert (first == again).all()
    assert not (first == next_epoch).all() and not (first == other_seed).all()
    assert (epoch_arrays(stream_of(path, shuffle=False), 0)[0][:, 0, 0, 0] == np.arange(300)).all()


def test_shuffling_mixes_beyond_one_read_chunk(tmp_path):
    x = epoch_arrays(stream_of(write_dataset(tmp_path, 640), batch=64), 0)[0][:, 0, 0, 0].astype(int)
    first_batch_chunks = set(x[:64] // 64)
    assert len(first_batch_chunks) > 4


def test_augmentation_moves_inputs_and_label_maps_together(tmp_path):
    path = write_dataset(tmp_path, 64, size=6, label_patches=True)
    dataset = PatchDataset(path, "TRAIN")
    target = Target("labels_raster", "classes", (6, 6), [1, 2, 5])
    feed = Feed("x1", "source1", 6, 2, Normalization())
    # the input's first band carries the label map so both must move the same way
    plain = BatchStream(dataset, [feed], target, 64).epoch(0)
    inputs, maps, _ = next(plain)
    augmented = BatchStream(dataset, [feed], target, 64, augment=True, seed=3)
    raw = {"source1": dataset.read("source1", 0, 64).copy(), "labels_raster": dataset.read("labels_raster", 0, 64)}
    raw["source1"][..., 0] = raw["labels_raster"][..., 0]
    rng = np.random.default_rng(5)
    x, y, w = augmented.batch(raw, rng)
    assert (np.array([1, 2, 5])[y] == x["x1"][..., 0]).all()
    changed = [not np.array_equal(y[i], maps[i]) for i in range(64)]
    assert any(changed) and not all(changed)
    assert inputs["x1"].shape == x["x1"].shape and w.shape == y.shape


def test_dihedral_gives_eight_distinct_transforms():
    square = np.arange(9).reshape(1, 3, 3)
    results = {dihedral(square, t).tobytes() for t in range(8)}
    assert len(results) == 8


def test_centre_crop_keeps_the_centre_pixel():
    patches = np.arange(16 * 16).reshape(1, 16, 16, 1)
    cropped = centre_crop(patches, 4)
    assert cropped.shape == (1, 4, 4, 1) and cropped[0, 2, 2, 0] == patches[0, 8, 8, 0]


def test_class_indices_and_balanced_weights_match_scikit_learn():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array([5, 5, 5, 1, 2, 2, 5, 1, 1, 1, 1])
    assert (class_indices(labels, [1, 2, 5]) == np.array([2, 2, 2, 0, 1, 1, 2, 0, 0, 0, 0])).all()
    counts = np.bincount(class_indices(labels, [1, 2, 5]), minlength=3)
    expected = compute_class_weight("balanced", classes=np.array([1, 2, 5]), y=labels)
    assert np.allclose(balanced_weights(counts), expected)
    assert balanced_weights(np.array([4, 0, 4]))[1] == 0


def test_labels_outside_the_model_classes_are_an_error_naming_the_dataset(tmp_path):
    dataset = PatchDataset(write_dataset(tmp_path, 30, classes=(1, 2, 9)), "TRAIN")
    with pytest.raises(PatchFlowError) as error:
        label_counts(dataset, Target(LABELS, "classes", (1, 1), [1, 2, 5]))
    assert error.value.parameter == "TRAIN" and "[9]" in error.value.message


def test_label_counts_skip_the_label_nodata(tmp_path):
    dataset = PatchDataset(write_dataset(tmp_path, 30, size=4, label_patches=True, classes=(1, 2, 5)), "TRAIN")
    with_nodata = label_counts(dataset, Target("labels_raster", "classes", (4, 4), [1, 2], nodata=5))
    assert with_nodata.sum() == 30 * 16 - (10 * 12 + 10 * 4)  # class 5: 12 px of its 10 patches, top row of 10


def test_otbtf_label_patches_become_a_label_source(tmp_path):
    dataset = PatchDataset(write_dataset(tmp_path, 20, size=4, otbtf_labels=True), "TRAIN")
    assert not dataset.has_labels
    assert dataset.sources[LABEL_PATCHES]["role"] == "label"
    assert dataset.read(LABEL_PATCHES, 0, 20).shape == (20, 4, 4, 1)


def test_in_memory_copy_equals_the_stream_in_file_order(tmp_path):
    stream = stream_of(write_dataset(tmp_path, 50))
    inputs, targets, weights = load_in_memory(stream)
    assert (inputs["x1"][:, 0, 0, 0] == np.arange(50)).all() and targets.shape == (50, 1, 1)
    assert (weights == 1).all()


def test_tf_dataset_gives_a_new_order_each_pass(tmp_path):
    stream = stream_of(write_dataset(tmp_path, 40), batch=40)
    # a finite take(): an iterator left open on an endless generator dataset crashes TensorFlow at exit
    first, second = list(stream.tf_dataset().repeat().take(2))
    stream.dataset.close()  # TensorFlow keeps the generator (and its GDAL datasets) until the process ends
    assert first[0].shape == (40, 8, 8, 2) and first[1].dtype.name == "int32"
    assert sorted(first[0].numpy()[:, 0, 0, 0]) == sorted(second[0].numpy()[:, 0, 0, 0])
    assert not np.array_equal(first[0].numpy(), second[0].numpy())


def test_dataset_errors_name_the_parameter(tmp_path):
    with pytest.raises(PatchFlowError, match="Describe patches") as error:
        PatchDataset(str(tmp_path / "p.tif"), "VALID")
    assert error.value.parameter == "VALID"
    path = write_dataset(tmp_path / "empty", 5)
    manifest = json.loads(open(path).read())
    manifest["n_patches"] = 0
    open(path, "w").write(json.dumps(manifest))
    with pytest.raises(PatchFlowError, match="holds no patch") as error:
        PatchDataset(path, "TRAIN")
    assert error.value.parameter == "TRAIN"
    with pytest.raises(PatchFlowError, match="not found"):
        PatchDataset(str(tmp_path / "missing.json"), "TRAIN")
