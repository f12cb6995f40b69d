"""The record cache Train model feeds fit from: the same batches as the Python stream (inputs,
targets, weights; nodata, class weights, classes unknown to the model), every patch once per
seeded epoch, resumable epochs, augmentation that keeps inputs and label maps together, reuse,
cancel, and the fallback to the patches-images when the disk has no room."""

from __future__ import annotations

import os

import numpy as np
import pytest
from test_datasets import stream_of, write_dataset

from patchflow.plugin.engine.data import records
from patchflow.plugin.engine.data.datasets import LABELS, BatchStream, Feed, PatchDataset, Target, dihedral
from patchflow.plugin.engine.errors import Cancelled
from patchflow.plugin.engine.models.modelcard import Normalization
from patchflow.plugin.engine.reporting import Reporter


def cached(stream, folder, start_epoch=0):
    layout = records.write_records(stream, str(folder))
    return records.record_dataset(stream, str(folder), layout, start_epoch)


def epochs_of(dataset, stream, epochs):
    """``epochs`` epochs of the endless dataset: per epoch (inputs, targets, weights, batch sizes)."""
    batches = list(dataset.take(stream.steps * epochs))
    stream.dataset.close()
    out = []
    for epoch in range(epochs):
        part = batches[epoch * stream.steps:(epoch + 1) * stream.steps]
        out.append(tuple(np.concatenate([b[i].numpy() for b in part]) for i in range(3)) + ([len(b[1]) for b in part],))
    return out


def python_epoch(stream, epoch=0):
    parts = list(stream.epoch(epoch))
    return (np.concatenate([p[0]["x1"] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]), [len(p[1]) for p in parts])


def segmentation_stream(path, size=6, crop=4, **options):
    dataset = PatchDataset(path, "TRAIN")
    target = Target("labels_raster", "classes", (crop, crop), [1, 2, 5], nodata=5,
                    class_weights=np.array([0.5, 2.0, 1.0], np.float32), model_classes=2)
    norm = Normalization("standard", [10.0, 1000.0], [3.0, 0.0])  # a zero std is left alone, as in numpy
    return BatchStream(dataset, [Feed("x1", "source1", crop, 2, norm)], target, 7, **options)


def test_batches_equal_the_python_streams_in_file_order(tmp_path):
    """Cropping, standardisation, class codes, nodata, class weights and a class unknown to the
    model: every value as Feed.prepare and Target.prepare give it, batch for batch."""
    stream = segmentation_stream(write_dataset(tmp_path / "d", 150, size=6, label_patches=True))
    expected = python_epoch(stream)
    x, y, w, sizes = epochs_of(cached(stream, tmp_path / "cache"), stream, 1)[0]
    assert sizes == expected[3] and x.shape == (150, 4, 4, 2)
    assert np.array_equal(x, expected[0]) and np.array_equal(y, expected[1]) and np.array_equal(w, expected[2])
    assert set(np.unique(w)) == {0.0, 0.5, 2.0}  # class 5 is nodata here: weight 0


def test_labels_image_targets_and_image_targets(tmp_path):
    path = write_dataset(tmp_path / "d", 100)
    stream = stream_of(path, shuffle=False)
    x, y, w, _ = epochs_of(cached(stream, tmp_path / "c1"), stream, 1)[0]
    expected = python_epoch(stream_of(path, shuffle=False))
    assert all(np.array_equal(a, b) for a, b in zip((x, y, w), expected[:3])) and y.shape == (100, 1, 1)
    dataset = PatchDataset(path, "TRAIN")
    image = BatchStream(dataset, [Feed("x1", "source1", 8, 2, Normalization())],
                        Target("source1", "image", (4, 4)), 16)
    x, y, w, _ = epochs_of(cached(image, tmp_path / "c2"), image, 1)[0]
    expected = python_epoch(BatchStream(PatchDataset(path, "TRAIN"), image.feeds, image.target, 16))
    assert np.array_equal(y, expected[1]) and y.shape == (100, 4, 4, 2) and (w == 1).all()


def test_each_epoch_gives_every_patch_once_in_a_seeded_order(tmp_path):
    path = write_dataset(tmp_path / "d", 700)
    stream = stream_of(path, batch=32, window_bytes=5 << 15, seed=4)  # windows of 5 chunks
    first, second = epochs_of(cached(stream, tmp_path / "c"), stream, 2)
    for x, y, _, sizes in (first, second):
        ids = x[:, 0, 0, 0].astype(int)
        assert sorted(ids) == list(range(700)) and sizes[:-1] == [32] * (len(sizes) - 1)
        assert (np.array([1, 2, 5])[y.reshape(-1)] == np.array([1, 2, 5])[ids % 3]).all()
    assert not np.array_equal(first[0], second[0])
    assert len(set(first[0][:32, 0, 0, 0].astype(int) // 64)) > 2  # a batch mixes chunks
    again = epochs_of(cached(stream_of(path, batch=32, window_bytes=5 << 15, seed=4), tmp_path / "c"),
                      stream, 1)[0]
    assert np.array_equal(again[0], first[0])
    other = epochs_of(cached(stream_of(path, batch=32, window_bytes=5 << 15, seed=5), tmp_path / "c"), stream, 1)[0]
    assert not np.array_equal(other[0], first[0])


def test_a_resumed_stream_continues_where_the_uninterrupted_one_is(tmp_path):
    path = write_dataset(tmp_path / "d", 300)
    stream = stream_of(path, batch=16, augment=True, seed=2)
    straight = epochs_of(cached(stream, tmp_path / "c"), stream, 3)
    resumed = epochs_of(cached(stream_of(path, batch=16, augment=True, seed=2), tmp_path / "c", start_epoch=2),
                        stream, 1)
    assert all(np.array_equal(a, b) for a, b in zip(straight[2][:3], resumed[0][:3]))


def test_augmentation_moves_inputs_and_label_maps_together(tmp_path):
    """The label patches feed the model too, so the input must be the label map, flipped or not."""
    path = write_dataset(tmp_path / "d", 128, size=6, label_patches=True)
    target = Target("labels_raster", "classes", (6, 6), [1, 2, 5])
    feeds = [Feed("x1", "labels_raster", 6, 1, Normalization())]
    stream = BatchStream(PatchDataset(path, "TRAIN"), feeds, target, 32, augment=True, seed=1)
    x, y, _, _ = epochs_of(cached(stream, tmp_path / "c"), stream, 1)[0]
    assert (np.array([1, 2, 5])[y] == x[..., 0]).all()
    plain = python_epoch(BatchStream(PatchDataset(path, "TRAIN"), feeds, target, 32))
    changed = [not np.array_equal(y[i], plain[1][i]) for i in range(128)]
    assert any(changed) and not all(changed)


@pytest.mark.parametrize("transform", range(8))
def test_tensorflow_flips_and_rotations_are_numpys(transform):
    import tensorflow as tf

    values = np.random.default_rng(0).integers(0, 100, (3, 5, 5, 2))
    assert np.array_equal(records.dihedral(tf.constant(values), tf.fill([3], transform)).numpy(),
                          dihedral(values, transform))


def test_the_cache_is_reused_only_for_the_same_inputs(tmp_path):
    path = write_dataset(tmp_path / "d", 90)
    folder = str(tmp_path / "c")
    records.write_records(stream_of(path), folder)
    made = os.stat(os.path.join(folder, records.RECORDS)).st_mtime_ns
    records.write_records(stream_of(path), folder)
    assert os.stat(os.path.join(folder, records.RECORDS)).st_mtime_ns == made
    other = stream_of(path, target=Target(LABELS, "classes", (1, 1), [1, 2, 5, 7]))
    layout = records.write_records(other, folder)
    assert layout.key["target"][3] == [1, 2, 5, 7]
    assert os.stat(os.path.join(folder, records.RECORDS)).st_mtime_ns != made


def test_cancel_while_writing_leaves_no_cache(tmp_path):
    stream = stream_of(write_dataset(tmp_path / "d", 300))
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        records.write_records(stream, str(tmp_path / "c"), cancelled=lambda: next(calls) >= 2)
    assert not os.path.exists(tmp_path / "c" / records.RECORDS)
    assert records.open_layout(str(tmp_path / "c"), records.cache_key(stream)) is None


def test_without_room_for_the_cache_training_streams_the_patches_images(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from patchflow.plugin.engine.train import fitting

    monkeypatch.setattr(fitting, "room_for", lambda stream, folder: False)
    stream = stream_of(write_dataset(tmp_path / "d", 40), batch=40)
    context = SimpleNamespace(reporter=Reporter(), cancelled=lambda: False)
    batch = next(iter(fitting.training_data(stream, str(tmp_path / "c"), context).take(1)))
    stream.dataset.close()
    assert sorted(batch[0].numpy()[:, 0, 0, 0]) == list(range(40))
    assert any("straight from its patches-images" in line for line in context.reporter.logs)
    assert not os.path.exists(tmp_path / "c")


def test_an_epochs_last_batch_smaller_than_smallest_batch_is_left_out(tmp_path):
    """Several machines: an epoch's last batch of fewer samples than replicas is dropped from the record
    cache and from the Python stream alike, epoch after epoch (the next epoch starts where it should)."""
    path = write_dataset(tmp_path / "d", 100)  # 14 batches of 7 and one of 2

    def two_epochs(smallest, cache):
        stream = stream_of(path, batch=7)
        stream.smallest_batch = smallest
        dataset = cached(stream, tmp_path / f"c{smallest}") if cache else stream.tf_dataset().repeat()
        return stream.steps, epochs_of(dataset, stream, 2)

    for cache in (True, False):
        steps, whole = two_epochs(1, cache)
        assert steps == 15 and whole[0][3][-1] == 2
        steps, kept = two_epochs(2, cache)  # a last batch of 2 is enough for 2 replicas
        assert steps == 15 and [e[3] for e in kept] == [e[3] for e in whole]
        np.testing.assert_array_equal(kept[1][0], whole[1][0])
        steps, cut = two_epochs(3, cache)
        assert steps == 14
        for epoch in range(2):
            assert cut[epoch][3] == [7] * 14
            np.testing.assert_array_equal(cut[epoch][0], whole[epoch][0][:98])
            np.testing.assert_array_equal(cut[epoch][1], whole[epoch][1][:98])
