"""Stratified grid split on the real North Carolina labels: whole blocks exchanged so that every class
is in the training, validation and test sets where the blocks allow it (the random split of the same
seed misses some), proportions kept, and a warning naming the class and the set where they do not."""

from __future__ import annotations

import numpy as np
import pytest
from test_split import OUTPUTS, assert_sets_disjoint, outputs_in, set_footprints

PROPORTIONS = (0.7, 0.15, 0.15)


def classes_per_set(gd, out) -> list[set]:
    return [set(gd.read_points(out[name])[2]["class"]) for name in OUTPUTS]


def shares(out) -> np.ndarray:
    counts = np.array([out[name.replace("OUTPUT", "COUNT")] for name in OUTPUTS], float)
    return counts / counts.sum()


@pytest.fixture
def nc_grid(nc):
    """Patches of 4 px on a 4 px grid centred on the labelled pixels of the 34 NC polygons."""
    return {"INPUT": str(nc / "landsat_multiband.tif"), "LABELS": str(nc / "landsat96_labelled_pixels.tif"),
            "PATCH_SIZE": 4, "STEP": 4}


def labelled_centres(gd, nc) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid cell (row, col) and class of every labelled patch centre (PATCH_SIZE 4, STEP 4)."""
    labels = gd.read_raster(str(nc / "landsat96_labelled_pixels.tif"))
    rows, cols = np.mgrid[0:labels.shape[0] - 3:4, 0:labels.shape[1] - 3:4]
    values = labels[rows + 2, cols + 2]
    keep = values > 0
    return rows[keep] // 4, cols[keep] // 4, values[keep].astype(int)


def test_every_class_in_every_set_where_the_random_split_misses_some(run_op, gd, nc, nc_grid, tmp_path):
    job = dict(nc_grid, BLOCK_SIZE=2, SEED=0)
    random, said_random = run_op("grid_split", STRATIFY=False, **job, **outputs_in(tmp_path / "random"))
    missing = [(name, c) for name, found in zip(OUTPUTS, classes_per_set(gd, random)) for c in range(1, 8)
               if c not in found]
    assert missing, "this seed and block size no longer need stratification: choose another"
    assert len([w for w in said_random.warnings if "has no sample of class(es)" in w]) == len({n for n, _ in missing})
    out, said = run_op("grid_split", **job, **outputs_in(tmp_path / "stratified"))
    assert classes_per_set(gd, out) == [set(range(1, 8))] * 3
    assert not [w for w in said.warnings if "has no sample of class(es)" in w]
    # whole blocks of 2 x 2 grid cells, each in one set; nothing lost; sets never share a pixel
    sets_of_block: dict[tuple[int, int], set[int]] = {}
    for index, (cols, rows, _) in enumerate(set_footprints(gd, out, nc_grid["INPUT"], 4)):
        for c, r in zip(cols.tolist(), rows.tolist()):
            sets_of_block.setdefault((r // 4 // 2, c // 4 // 2), set()).add(index)
    assert all(len(s) == 1 for s in sets_of_block.values())
    total = sum(out[n.replace("OUTPUT", "COUNT")] for n in OUTPUTS)
    assert total == sum(random[n.replace("OUTPUT", "COUNT")] for n in OUTPUTS) > 150
    assert_sets_disjoint(set_footprints(gd, out, nc_grid["INPUT"], 4), 4)
    assert np.abs(shares(out) - PROPORTIONS).max() <= 0.06, shares(out)
    assert np.abs(shares(out) - PROPORTIONS).max() <= np.abs(shares(random) - PROPORTIONS).max() + 0.02


def test_a_class_in_too_few_blocks_is_warned_about_naming_it_and_the_set(run_op, gd, nc, nc_grid, tmp_path):
    rows, cols, classes = labelled_centres(gd, nc)
    blocks_of_2 = {(r // 8, c // 8) for r, c, k in zip(rows, cols, classes) if k == 2}  # BLOCK_SIZE 8
    assert len(blocks_of_2) < 3  # agriculture is one polygon: it cannot be in three sets
    out, said = run_op("grid_split", **nc_grid, BLOCK_SIZE=8, SEED=0, **outputs_in(tmp_path))
    found = classes_per_set(gd, out)
    lacking = [name for name, classes_here in zip(OUTPUTS, found) if 2 not in classes_here]
    assert lacking and all(set(range(1, 8)) - {2} <= classes_here for classes_here in found)
    warned = [w for w in said.warnings if "has no sample of class(es) 2:" in w]
    assert sorted(w.split("(")[1].split(")")[0] for w in warned) == sorted(lacking)  # the set's output named
    assert all(f"Class 2 lies in {len(blocks_of_2)} separate block" in w and "BLOCK_SIZE" in w for w in warned)


def test_samples_with_a_text_class_field_keep_every_class(run_op, gd, nc, tmp_path):
    job = dict(INPUT=str(nc / "landsat_multiband.tif"), SAMPLES=str(nc / "landsat96_points.shp"),
               CLASS_FIELD="label", PATCH_SIZE=4, BLOCK_SIZE=1, SEED=0)
    random, _ = run_op("grid_split", STRATIFY=False, **job, **outputs_in(tmp_path / "random"))
    assert any(len(found) < 7 for found in classes_per_set(gd, random))
    out, said = run_op("grid_split", **job, **outputs_in(tmp_path / "stratified"))
    for name in OUTPUTS:
        assert len(set(gd.read_points(out[name])[2]["class_name"])) == 7, name
    assert not [w for w in said.warnings if "has no sample of class(es)" in w]
    assert np.abs(shares(out) - shares(random)).max() <= 0.03
    assert_sets_disjoint(set_footprints(gd, out, job["INPUT"], 4), 4)
    names = set(gd.read_points(out["OUTPUT_TRAIN"])[2]["class_name"])
    assert sorted(c["name"] for c in out["CLASSES"]) == sorted(names)
