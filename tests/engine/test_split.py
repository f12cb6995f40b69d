"""Grid split (OTBTF PatchesSelection) and the split of existing samples: sets never share a pixel."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

import numpy as np
import pytest

from patchflow.plugin.engine.data.split import OUTPUTS
from patchflow.plugin.engine.errors import Cancelled, PatchFlowError

COUNTS = tuple(name.replace("OUTPUT", "COUNT") for name in OUTPUTS)


def error_of(call) -> PatchFlowError:
    with pytest.raises(PatchFlowError) as caught:
        call()
    return caught.value


def outputs_in(tmp_path, names=OUTPUTS) -> dict[str, str]:
    return {name: str(tmp_path / f"{name.lower()}.gpkg") for name in names}


def footprints(gd, path, raster, patch_size) -> tuple[np.ndarray, np.ndarray, list]:
    """Top-left pixel (col, row) of the patch of every point in ``path`` (start = pixel - p//2)."""
    xs, ys, fields, _ = gd.read_points(path)
    cols, rows = gd.to_pixels(raster, xs, ys)
    return cols - patch_size // 2, rows - patch_size // 2, fields.get("class", [None] * len(xs))


def set_footprints(gd, out, raster, patch_size) -> list[tuple[np.ndarray, np.ndarray, list]]:
    return [footprints(gd, out[name], raster, patch_size) for name in OUTPUTS if out.get(name)]


def assert_sets_disjoint(sets, patch_size) -> None:
    """No patch of one set shares a pixel with a patch of another."""
    for (ca, ra, _), (cb, rb, _) in combinations(sets, 2):
        if len(ca) == 0 or len(cb) == 0:
            continue
        overlap = (np.abs(ca[:, None] - cb[None, :]) < patch_size) & (np.abs(ra[:, None] - rb[None, :]) < patch_size)
        assert not overlap.any(), f"{int(overlap.sum())} overlapping patch pairs across sets"


def grid_cells(size: int, patch_size: int, step: int) -> np.ndarray:
    return np.arange(0, size - patch_size + 1, step)


@pytest.fixture
def image(gd, tmp_path):
    array = np.random.default_rng(0).normal(100, 10, (3, 200, 200)).astype(np.float32)
    return gd.write_raster(tmp_path / "image.tif", array, origin=(300000.0, 4000000.0), pixel=10.0)


# ---- grid mode ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("patch_size", "step", "block"), [(16, 6, 4), (16, 8, 3), (15, 4, 6), (10, 10, 1), (12, 5, 1)])
def test_sets_never_overlap(run_op, gd, image, tmp_path, patch_size, step, block):
    out, _ = run_op("grid_split", INPUT=image, PATCH_SIZE=patch_size, STEP=step, BLOCK_SIZE=block,
                    TRAIN=0.5, VALID=0.25, TEST=0.25, SEED=3, **outputs_in(tmp_path))
    sets = set_footprints(gd, out, image, patch_size)
    for (cols, rows, _), count in zip(sets, COUNTS):
        assert len(cols) == out[count]
        # with blocks of one cell and overlapping patches most training patches touch another set
        assert len(cols) > 0 or (block == 1 and step < patch_size and count == "COUNT_TRAIN")
        assert (cols % step == 0).all() and (rows % step == 0).all(), "patch not on the grid"
        assert (cols >= 0).all() and (rows >= 0).all()
        assert (cols + patch_size <= 200).all() and (rows + patch_size <= 200).all()
    assert_sets_disjoint(sets, patch_size)


@pytest.mark.parametrize("shape", [(72, 40), (256, 256)])
@pytest.mark.parametrize("proportions", [(0.7, 0.15, 0.15), (0.5, 0.5, 0.0), (1.0, 0.0, 0.0), (0.2, 0.3, 0.5),
                                         (2.0, 1.0, 1.0), (0.0, 0.5, 0.5), (0.45, 0.0, 0.55)])
def test_proportions_are_respected(run_op, gd, tmp_path, shape, proportions):
    path = gd.write_raster(tmp_path / "r.tif", np.ones(shape, np.uint8))
    out, _ = run_op("grid_split", INPUT=path, PATCH_SIZE=8, TRAIN=proportions[0], VALID=proportions[1],
                    TEST=proportions[2], **outputs_in(tmp_path))
    cells = (shape[0] // 8) * (shape[1] // 8)
    counts = [out[name] for name in COUNTS]
    assert sum(counts) == cells  # step = patch size: no overlap, nothing dropped
    for count, share in zip(counts, proportions):
        expected = cells * share / sum(proportions)
        assert abs(count - expected) <= 1, (counts, proportions)
        if share == 0:
            assert count == 0, f"a set asked with proportion 0 got {count} patches: {counts}"


def test_split_depends_on_seed_only(run_op, gd, image, tmp_path):
    def split(seed, folder):
        (tmp_path / folder).mkdir()
        out, _ = run_op("grid_split", INPUT=image, PATCH_SIZE=20, SEED=seed, **outputs_in(tmp_path / folder))
        return [sorted(zip(c.tolist(), r.tolist())) for c, r, _ in set_footprints(gd, out, image, 20)]

    first = split(1, "a")
    assert split(1, "b") == first
    assert split(2, "c") != first


def test_chessboard_alternates_blocks(run_op, gd, tmp_path):
    path = gd.write_raster(tmp_path / "r.tif", np.ones((64, 80), np.uint8))
    out, _ = run_op("grid_split", INPUT=path, PATCH_SIZE=8, STRATEGY="chessboard", BLOCK_SIZE=2,
                    **outputs_in(tmp_path))
    assert out["COUNT_TEST"] == 0
    assert out["COUNT_TRAIN"] + out["COUNT_VALID"] == 8 * 10
    for set_index, (cols, rows, _) in enumerate(set_footprints(gd, out, path, 8)[:2]):
        blocks = (cols // 8 // 2 + rows // 8 // 2) % 2
        assert (blocks == set_index).all()
        assert len(cols) == 40


def test_chessboard_with_overlapping_patches_keeps_sets_apart(run_op, gd, image, tmp_path):
    out, _ = run_op("grid_split", INPUT=image, PATCH_SIZE=16, STEP=8, STRATEGY="chessboard", BLOCK_SIZE=3,
                    **outputs_in(tmp_path))
    sets = set_footprints(gd, out, image, 16)
    assert len(sets[0][0]) > 0 and len(sets[1][0]) > 0
    assert_sets_disjoint(sets, 16)


def test_all_puts_every_grid_patch_in_training(run_op, gd, image, tmp_path):
    out, _ = run_op("grid_split", INPUT=image, PATCH_SIZE=16, STEP=7, STRATEGY="all", **outputs_in(tmp_path))
    cols, rows, _ = footprints(gd, out["OUTPUT_TRAIN"], image, 16)
    starts = grid_cells(200, 16, 7)
    assert sorted(zip(cols.tolist(), rows.tolist())) == sorted((c, r) for c in starts for r in starts)
    assert out["COUNT_VALID"] == out["COUNT_TEST"] == 0


def test_only_the_training_output_is_required(run_op, gd, image, tmp_path):
    out, _ = run_op("grid_split", INPUT=image, PATCH_SIZE=20, OUTPUT_TRAIN=str(tmp_path / "train.gpkg"))
    assert out["COUNT_VALID"] > 0 and "OUTPUT_VALID" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.tif", "train.gpkg"]


def expected_clean_starts(mask: np.ndarray, patch_size: int, step: int) -> set[tuple[int, int]]:
    """Grid patches (col, row) that hold no True pixel of ``mask``."""
    return {(int(c), int(r)) for r in grid_cells(mask.shape[0], patch_size, step)
            for c in grid_cells(mask.shape[1], patch_size, step)
            if not mask[r:r + patch_size, c:c + patch_size].any()}


def test_patches_touching_nodata_are_excluded(run_op, gd, tmp_path):
    array = np.random.default_rng(1).integers(1, 200, (120, 100)).astype(np.int16)
    hole = np.zeros(array.shape, dtype=bool)
    hole[40:56, 30:48] = True
    hole[0:3, 94] = True  # last column of the patches starting at column 85
    hole[70, 64] = True  # last column of those starting at 55
    array[hole] = -9999
    path = gd.write_raster(tmp_path / "holed.tif", array, nodata=-9999)
    out, _ = run_op("grid_split", INPUT=path, PATCH_SIZE=10, STEP=5, STRATEGY="all", **outputs_in(tmp_path))
    cols, rows, _ = footprints(gd, out["OUTPUT_TRAIN"], path, 10)
    assert set(zip(cols.tolist(), rows.tolist())) == expected_clean_starts(hole, 10, 5)
    assert out["COUNT_TRAIN"] < len(grid_cells(120, 10, 5)) * len(grid_cells(100, 10, 5))


def test_nodata_parameter_and_nodata_in_a_stacked_raster(run_op, gd, tmp_path):
    hole = np.zeros((60, 60), dtype=bool)
    hole[20:25, 33:36] = True
    plain = np.where(hole, 0, 7).astype(np.uint8)  # no nodata set: NODATA=0 says it
    first = gd.write_raster(tmp_path / "a.tif", plain)
    (tmp_path / "one").mkdir()
    out, _ = run_op("grid_split", INPUT=first, NODATA=0, PATCH_SIZE=8, STEP=4, STRATEGY="all",
                    **outputs_in(tmp_path / "one"))
    cols, rows, _ = footprints(gd, out["OUTPUT_TRAIN"], first, 8)
    assert set(zip(cols.tolist(), rows.tolist())) == expected_clean_starts(hole, 8, 4)

    clean = gd.write_raster(tmp_path / "b.tif", np.full((60, 60), 3, np.uint8))
    holed = gd.write_raster(tmp_path / "c.tif", np.where(hole, 255, 1).astype(np.uint8), nodata=255)
    (tmp_path / "two").mkdir()
    out, _ = run_op("grid_split", INPUT=[clean, holed], PATCH_SIZE=8, STEP=4, STRATEGY="all",
                    **outputs_in(tmp_path / "two"))
    cols, rows, _ = footprints(gd, out["OUTPUT_TRAIN"], clean, 8)
    assert set(zip(cols.tolist(), rows.tolist())) == expected_clean_starts(hole, 8, 4)


@pytest.fixture
def class_raster(gd, tmp_path):
    classes = np.random.default_rng(4).choice([1, 2, 3], size=(160, 160), p=[0.6, 0.3, 0.1]).astype(np.uint8)
    classes[:8, :] = 0  # no label: patches centred there are not used
    path = gd.write_raster(tmp_path / "classes.tif", classes, nodata=0, origin=(300000.0, 4000000.0), pixel=10.0)
    return path, classes


def test_balanced_gives_equal_counts_per_class_in_every_set(run_op, gd, tmp_path, class_raster):
    labels, classes = class_raster
    image = gd.write_raster(tmp_path / "img.tif", np.ones((160, 160), np.float32), origin=(300000.0, 4000000.0),
                            pixel=10.0)
    out, _ = run_op("grid_split", INPUT=image, LABELS=labels, PATCH_SIZE=8, STEP=4, STRATEGY="balanced",
                    TRAIN=0.6, VALID=0.2, TEST=0.2, SEED=2, **outputs_in(tmp_path))
    sets = set_footprints(gd, out, image, 8)
    for cols, rows, labels_of in sets:
        counts = Counter(labels_of)
        assert set(counts) == {1, 2, 3}
        assert len(set(counts.values())) == 1, counts
        assert np.array_equal(classes[rows + 4, cols + 4], labels_of), "class is not the label at the centre"
    assert_sets_disjoint(sets, 8)
    assert {c["id"] for c in out["CLASSES"]} == {1, 2, 3}


def test_labels_give_classes_and_unlabelled_centres_are_skipped(run_op, gd, tmp_path, class_raster):
    labels, classes = class_raster
    image = gd.write_raster(tmp_path / "img.tif", np.ones((160, 160), np.float32), origin=(300000.0, 4000000.0),
                            pixel=10.0)
    out, _ = run_op("grid_split", INPUT=image, LABELS=labels, PATCH_SIZE=8, STRATEGY="all", **outputs_in(tmp_path))
    cols, rows, labels_of = footprints(gd, out["OUTPUT_TRAIN"], image, 8)
    assert np.array_equal(classes[rows + 4, cols + 4], labels_of)
    expected = {(c, r) for r in grid_cells(160, 8, 8) for c in grid_cells(160, 8, 8) if classes[r + 4, c + 4] != 0}
    assert set(zip(cols.tolist(), rows.tolist())) == expected
    counts = Counter(labels_of)
    assert {c["id"]: c["name"] for c in out["CLASSES"]} == {k: f"class {k}" for k in counts}


def test_labels_on_another_grid_are_rejected(run_op, gd, image, tmp_path):
    other = gd.write_raster(tmp_path / "other.tif", np.ones((200, 200), np.uint8), origin=(300005.0, 4000000.0),
                            pixel=10.0)
    (tmp_path / "out").mkdir()
    error = error_of(lambda: run_op("grid_split", INPUT=image, LABELS=other, PATCH_SIZE=8,
                                    **outputs_in(tmp_path / "out")))
    assert error.parameter == "LABELS"
    assert gd.folder_entries(tmp_path / "out") == []


def test_real_image_with_nodata(run_op, gd, nc, tmp_path):
    raster = str(nc / "landsat_multiband.tif")
    out, _ = run_op("grid_split", INPUT=raster, PATCH_SIZE=16, STEP=8, SEED=1, **outputs_in(tmp_path))
    nodata = (gd.read_raster(raster) == -99999).any(axis=0)
    assert nodata.any()
    sets = set_footprints(gd, out, raster, 16)
    for cols, rows, _ in sets:
        assert len(cols) > 0
        for c, r in zip(cols, rows):
            assert not nodata[r:r + 16, c:c + 16].any()
    assert_sets_disjoint(sets, 16)


# ---- samples mode ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("step", "block"), [(None, 1), (16, 2), (4, 1), (2, 3)])
def test_samples_are_split_in_spatially_disjoint_sets(run_op, gd, nc, tmp_path, step, block):
    points = str(nc / "landsat96_points.shp")
    raster = str(nc / "landsat_multiband.tif")
    extra = {} if step is None else {"STEP": step}
    out, _ = run_op("grid_split", INPUT=raster, SAMPLES=points, CLASS_FIELD="id", PATCH_SIZE=8, BLOCK_SIZE=block,
                    SEED=5, **extra, **outputs_in(tmp_path))
    px, py, pfields, _ = gd.read_points(points)
    source = {(x, y): set() for x, y in zip(px.tolist(), py.tolist())}
    for x, y, k in zip(px.tolist(), py.tolist(), pfields["id"]):
        source[(x, y)].add(k)
    total = 0
    for name in OUTPUTS:
        xs, ys, fields, _ = gd.read_points(out[name])
        total += len(xs)
        for x, y, k in zip(xs.tolist(), ys.tolist(), fields["class"]):
            assert k in source[(x, y)], "an output sample is not an input point with its class"
    assert total == sum(out[c] for c in COUNTS)
    assert 0 < total < 1000
    assert min(out[c] for c in COUNTS) > 0
    assert_sets_disjoint(set_footprints(gd, out, raster, 8), 8)


@pytest.mark.parametrize(("step", "block"), [(8, 1), (3, 2), (5, 1), (2, 3)])
def test_dense_samples_with_blocks_smaller_than_a_patch_stay_apart(run_op, gd, tmp_path, step, block):
    """A patch may span more than two blocks: every block it covers must be of its set."""
    raster = gd.write_raster(tmp_path / "r.tif", np.ones((100, 100), np.uint8), origin=(0.0, 100.0))
    centres = np.arange(0.5, 100, 3)
    xs, ys = np.meshgrid(centres, 100 - centres)
    points = gd.write_points(tmp_path / "p.gpkg", xs.ravel(), ys.ravel())
    (tmp_path / "out").mkdir()
    out, _ = run_op("grid_split", INPUT=raster, SAMPLES=points, PATCH_SIZE=8, STEP=step, BLOCK_SIZE=block, SEED=1,
                    TRAIN=0.6, VALID=0.2, TEST=0.2, **outputs_in(tmp_path / "out"))
    sets = set_footprints(gd, out, raster, 8)
    assert [len(c) for c, _, _ in sets] == [out[c] for c in COUNTS]
    assert min(out[c] for c in COUNTS) > 0
    assert_sets_disjoint(sets, 8)


def test_samples_balanced_per_set(run_op, gd, nc, tmp_path):
    points = str(nc / "landsat96_points.shp")
    raster = str(nc / "landsat_multiband.tif")
    out, _ = run_op("grid_split", INPUT=raster, SAMPLES=points, CLASS_FIELD="label", PATCH_SIZE=4, BLOCK_SIZE=8,
                    STRATEGY="balanced", TRAIN=0.5, VALID=0.25, TEST=0.25, **outputs_in(tmp_path))
    for name in OUTPUTS:
        _, _, fields, _ = gd.read_points(out[name])
        counts = Counter(fields["class"])
        assert len(set(counts.values())) <= 1, (name, counts)
        assert set(Counter(fields["class_name"]).values()) == set(counts.values())
    assert [c["name"] for c in out["CLASSES"]] == sorted(c["name"] for c in out["CLASSES"])


def test_samples_balanced_needs_the_class_field(run_op, nc, tmp_path):
    error = error_of(lambda: run_op("grid_split", INPUT=str(nc / "landsat_multiband.tif"),
                                    SAMPLES=str(nc / "landsat96_points.shp"), PATCH_SIZE=8, STRATEGY="balanced",
                                    **outputs_in(tmp_path)))
    assert error.parameter == "CLASS_FIELD"
    assert list(tmp_path.iterdir()) == []


# ---- errors and cancel ----------------------------------------------------------------------------


def test_grid_split_errors_name_the_parameter(run_op, gd, image, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    shifted = gd.write_raster(tmp_path / "shifted.tif", np.ones((200, 200), np.uint8), origin=(300010.0, 4000000.0),
                              pixel=10.0)
    nodata_only = gd.write_raster(tmp_path / "empty.tif", np.zeros((50, 50), np.uint8), nodata=0)
    cases = [
        ({"PATCH_SIZE": 201}, "PATCH_SIZE"),
        ({"STRATEGY": "balanced"}, "LABELS"),
        ({"STRATEGY": "random"}, "STRATEGY"),
        ({"OUTPUT_TRAIN": None}, "OUTPUT_TRAIN"),
        ({"TRAIN": 0, "VALID": 0, "TEST": 0}, "TRAIN"),
        ({"TRAIN": -0.1}, "TRAIN"),
        ({"STEP": 0}, "STEP"),
        ({"INPUT": [image, shifted]}, "INPUT"),
        ({"INPUT": nodata_only}, "INPUT"),
        ({"INPUT": str(tmp_path / "missing.tif")}, "INPUT"),
        ({"OUTPUT_VALID": str(tmp_path / "image.tif" / "valid.gpkg")}, "OUTPUT_VALID"),
    ]
    for change, parameter in cases:
        params = {"INPUT": image, "PATCH_SIZE": 16, **outputs_in(out), **change}
        error = error_of(lambda params=params: run_op("grid_split", **params))
        assert error.parameter == parameter, (change, error)
        assert gd.folder_entries(out) == [], change


def test_cancel_leaves_nothing(run_cancelled, gd, image, tmp_path):
    (tmp_path / "out").mkdir()
    error = run_cancelled("grid_split", INPUT=image, PATCH_SIZE=16, **outputs_in(tmp_path / "out"))
    assert isinstance(error, Cancelled)
    assert gd.folder_entries(tmp_path / "out") == []


# ---- styles ---------------------------------------------------------------------------------------


def test_each_labelled_set_gets_its_class_style_from_the_engine(run_op, gd, tmp_path, class_raster):
    import xml.etree.ElementTree as ET

    labels, _ = class_raster
    image = gd.write_raster(tmp_path / "img.tif", np.ones((160, 160), np.float32), origin=(300000.0, 4000000.0),
                            pixel=10.0)
    outputs = outputs_in(tmp_path, ("OUTPUT_TRAIN", "OUTPUT_VALID"))
    out, _ = run_op("grid_split", INPUT=image, LABELS=labels, PATCH_SIZE=8, TRAIN=0.5, VALID=0.5, TEST=0, **outputs)
    for name, path in outputs.items():
        style = out[name.replace("OUTPUT", "STYLE")]
        assert style == path[:-len(".gpkg")] + ".qml"
        categories = ET.parse(style).getroot().findall("renderer-v2/categories/category")
        assert [int(c.get("value")) for c in categories] == [c["id"] for c in out["CLASSES"]] == [1, 2, 3]
    assert out["STYLE_TEST"] is None


def test_a_set_without_classes_gets_no_style(run_op, gd, image, tmp_path):
    out, _ = run_op("grid_split", INPUT=image, PATCH_SIZE=16, **outputs_in(tmp_path, ("OUTPUT_TRAIN",)))
    assert out["STYLE_TRAIN"] is None and not (tmp_path / "output_train.qml").exists()
