"""Assess accuracy with a map and a reference label raster of different pixel sizes: the finer one is
aggregated onto the coarser one's grid (majority class, ties to the smallest id, nodata not voting), the
pairs counted there, and the share of mixed pixels reported (evaluate/majority.py, evaluate/labelraster.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from osgeo import gdal
from sklearn import metrics as sk

from patchflow.plugin.engine.evaluate.majority import majority

ORIGIN = (500000.0, 5800000.0)
NODATA = 255


def test_majority_counts_votes_breaks_ties_to_the_smallest_class_and_flags_mixed_cells():
    cells = np.array([0, 0, 0, 1, 1, 2, 2, 5])
    classes = np.array([3, 3, 1, 5, 2, 4, 4, 7])
    winner, voted, mixed = majority(cells, classes, (2, 3))
    assert winner.ravel()[[0, 1, 2, 5]].tolist() == [3, 2, 4, 7]  # cell 1: 5 and 2 tie -> 2
    assert voted.ravel().tolist() == [True, True, True, False, False, True]
    assert mixed.ravel().tolist() == [True, True, False, False, False, False]


# 6 x 6 fine classes (1 m) in 2 x 2 blocks, one block per coarse (2 m) pixel; 255 is nodata
FINE = np.array([
    [1, 1, 2, 2, 1, 3],
    [1, 1, 2, 1, 3, 1],  # blocks: all 1 | 2 2 2 1 -> 2, mixed | 1 3 3 1 -> tie -> 1, mixed
    [255, 3, 255, 255, 2, 2],
    [3, 255, 255, 255, 2, 2],  # 3 3 and nodata -> 3, unmixed | only nodata -> none | all 2
    [4, 5, 5, 1, 6, 6],
    [5, 4, 1, 5, 6, 6],  # 4 5 5 4 -> tie -> 4, mixed | 5 1 1 5 -> tie -> 1, mixed | all 6
], dtype=np.uint8)
AGGREGATED = np.array([[1, 2, 1], [3, NODATA, 2], [4, 1, 6]])
MIXED = np.array([[0, 1, 1], [0, 0, 0], [1, 1, 0]], dtype=bool)
COARSE = np.array([[1, 1, 3], [3, 2, 1], [5, 1, 6]], dtype=np.uint8)  # the other raster at 2 m


def expected(reference: np.ndarray, mapped: np.ndarray) -> tuple[list, float]:
    keep = (reference != NODATA) & (mapped != NODATA)
    return sk.confusion_matrix(reference[keep], mapped[keep]).tolist(), float(MIXED[keep].mean())


def test_a_finer_reference_is_aggregated_onto_the_maps_grid(run_op, tmp_path, gd):
    mapped = gd.write_raster(tmp_path / "map.tif", COARSE, nodata=NODATA, origin=ORIGIN, pixel=2.0)
    reference = gd.write_raster(tmp_path / "ref.tif", FINE, nodata=NODATA, origin=ORIGIN, pixel=1.0)
    out, reporter = run_op("assess_accuracy", INPUT=mapped, REFERENCE_RASTER=reference,
                           OUTPUT_HTML=str(tmp_path / "out" / "r.html"), OUTPUT_CSV=str(tmp_path / "out" / "s.csv"))
    matrix, share = expected(AGGREGATED, COARSE)
    assert out["N"] == 8 and out["MATRIX"] == matrix
    assert out["MIXED_SHARE"] == pytest.approx(share) == pytest.approx(4 / 8)
    assert out["OA"] == pytest.approx(4 / 8)  # agree at (0,0), (1,0), (2,1), (2,2)
    log = "\n".join(reporter.logs)
    assert "the reference (1 x 1) aggregated onto the map's grid (2 x 2) by a factor of 2:" in log
    assert "4 of the 8 scored pixels (50.0%) are mixed" in log
    page = (tmp_path / "out" / "r.html").read_text(encoding="utf-8")
    assert "aggregated onto the map&#x27;s grid" in page or "aggregated onto the map's grid" in page
    assert "0.5000 (4 of 8)" in page
    pairs = (tmp_path / "out" / "s_pairs.csv").read_text().splitlines()
    assert len(pairs) == 1 + 8  # one pair per coarse pixel scored, at its centre


def test_a_finer_map_is_aggregated_onto_the_references_grid(run_op, tmp_path, gd):
    """The reverse: the same rasters, map and reference swapped, give the transposed matrix."""
    mapped = gd.write_raster(tmp_path / "map.tif", FINE, nodata=NODATA, origin=ORIGIN, pixel=1.0)
    reference = gd.write_raster(tmp_path / "ref.tif", COARSE, nodata=NODATA, origin=ORIGIN, pixel=2.0)
    out, reporter = run_op("assess_accuracy", INPUT=mapped, REFERENCE_RASTER=reference)
    matrix, share = expected(COARSE, AGGREGATED)
    assert out["MATRIX"] == matrix == np.array(expected(AGGREGATED, COARSE)[0]).T.tolist()
    assert out["N"] == 8 and out["MIXED_SHARE"] == pytest.approx(share)
    assert out["SKIPPED_NODATA"] == 1  # the reference pixel over nodata map pixels only
    assert "the map (1 x 1) aggregated onto the reference's grid (2 x 2) by a factor of 2:" in "\n".join(reporter.logs)


def by_centres(fine: np.ndarray, fine_pixel: float, coarse_origin: tuple[float, float], coarse_pixel: float,
               shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The majority and mixed flags by geometry: the fine pixels whose centre lies inside each coarse pixel."""
    winner, mixed = np.full(shape, NODATA), np.zeros(shape, bool)
    for row in range(shape[0]):
        for col in range(shape[1]):
            left, top = coarse_origin[0] + col * coarse_pixel, coarse_origin[1] - row * coarse_pixel
            votes: Counter = Counter()
            for r in range(fine.shape[0]):
                for c in range(fine.shape[1]):
                    x, y = ORIGIN[0] + (c + 0.5) * fine_pixel, ORIGIN[1] - (r + 0.5) * fine_pixel
                    if left <= x < left + coarse_pixel and top - coarse_pixel < y <= top and fine[r, c] != NODATA:
                        votes[int(fine[r, c])] += 1
            if votes:
                most = max(votes.values())
                winner[row, col] = min(k for k, v in votes.items() if v == most)
                mixed[row, col] = len(votes) > 1
    return winner, mixed


def test_a_non_integer_ratio_and_offset_grids_aggregate_by_area(run_op, tmp_path, gd):
    """1 m reference, 2.5 m map shifted by (0.3, -0.7) m: each fine pixel votes where its centre falls."""
    rng = np.random.default_rng(3)
    rows, cols = np.mgrid[0:12, 0:12]
    fine = ((cols // 3 + rows // 4) % 3 + 1).astype(np.uint8)  # 3 x 4 m patches across the 2.5 m pixels
    fine[rng.random((12, 12)) < 0.1] = NODATA
    coarse_origin = (ORIGIN[0] + 0.3, ORIGIN[1] - 0.7)
    coarse = rng.integers(1, 4, size=(6, 6)).astype(np.uint8)  # past the reference: 15.3 m against 12 m
    mapped = gd.write_raster(tmp_path / "map.tif", coarse, nodata=NODATA, origin=coarse_origin, pixel=2.5)
    reference = gd.write_raster(tmp_path / "ref.tif", fine, nodata=NODATA, origin=ORIGIN, pixel=1.0)
    out, reporter = run_op("assess_accuracy", INPUT=mapped, REFERENCE_RASTER=reference)
    winner, mixed = by_centres(fine, 1.0, coarse_origin, 2.5, coarse.shape)
    keep = winner != NODATA
    assert out["N"] == int(keep.sum()) == 25  # the last row and column hold no reference pixel centre
    assert out["MATRIX"] == sk.confusion_matrix(winner[keep], coarse[keep], labels=[1, 2, 3]).tolist()
    assert out["MIXED_SHARE"] == pytest.approx(mixed[keep].mean()) and 0 < out["MIXED_SHARE"] < 1
    assert "by a factor of 2.5 (not an integer: by area" in "\n".join(reporter.logs)


def test_same_pixel_size_has_no_mixed_share(run_op, tmp_path, gd):
    mapped = gd.write_raster(tmp_path / "map.tif", COARSE, nodata=NODATA, origin=ORIGIN, pixel=2.0)
    out, reporter = run_op("assess_accuracy", INPUT=mapped, REFERENCE_RASTER=mapped)
    assert out["OA"] == 1.0 and out["MIXED_SHARE"] is None
    assert not any("aggregated" in line for line in reporter.logs)


# ---- real data: the NC scene's 28.5 m map and label raster against 4x coarser copies ---------------


def block_majority(fine: np.ndarray, valid: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Majority (ties: smallest), valid and mixed of k x k blocks over the part of ``fine`` they tile."""
    rows, cols = fine.shape[0] // k, fine.shape[1] // k

    def blocks(a: np.ndarray) -> np.ndarray:
        return a[:rows * k, :cols * k].reshape(rows, k, cols, k).transpose(0, 2, 1, 3).reshape(rows, cols, k * k)

    values, ok = blocks(fine), blocks(valid)
    classes = np.unique(fine[valid])
    counts = np.stack([((values == c) & ok).sum(axis=-1) for c in classes])
    return classes[counts.argmax(axis=0)], counts.sum(axis=0) > 0, (counts > 0).sum(axis=0) > 1


def write_like(path, array: np.ndarray, source: gdal.Dataset, pixel_factor: int, nodata=None) -> str:
    gt = source.GetGeoTransform()
    ds = gdal.GetDriverByName("GTiff").Create(str(path), array.shape[1], array.shape[0], 1, gdal.GDT_Byte)
    ds.SetGeoTransform((gt[0], gt[1] * pixel_factor, 0.0, gt[3], 0.0, gt[5] * pixel_factor))
    ds.SetProjection(source.GetProjection())
    ds.GetRasterBand(1).WriteArray(array)
    if nodata is not None:
        ds.GetRasterBand(1).SetNoDataValue(nodata)
    ds = None
    return str(path)


def test_nc_map_against_its_4x_coarser_copy_both_ways(run_op, nc, nc_nearest_mean_map, tmp_path):
    """The 28.5 m nearest-mean map of the NC scene and a 4x coarser copy of it (114 m, every 4th pixel):
    agreement of the map's 4 x 4 majority with the copy, computed here with numpy, both ways round."""
    source = gdal.Open(str(nc_nearest_mean_map))
    fine = source.ReadAsArray()
    coarse = np.ascontiguousarray(fine[1::4, 1::4][:fine.shape[0] // 4, :fine.shape[1] // 4])
    copy = write_like(tmp_path / "coarse.tif", coarse, source, 4)
    winner, valid, mixed = block_majority(fine, np.ones(fine.shape, bool), 4)
    assert valid.all() and winner.shape == coarse.shape == (110, 122)
    oa, kappa = float((winner == coarse).mean()), sk.cohen_kappa_score(coarse.ravel(), winner.ravel())
    finer_map, _ = run_op("assess_accuracy", INPUT=str(nc_nearest_mean_map), REFERENCE_RASTER=copy)
    coarser_map, _ = run_op("assess_accuracy", INPUT=copy, REFERENCE_RASTER=str(nc_nearest_mean_map))
    assert finer_map["N"] == coarser_map["N"] == coarse.size
    assert finer_map["OA"] == pytest.approx(oa) == pytest.approx(coarser_map["OA"])
    assert finer_map["KAPPA"] == pytest.approx(kappa) == pytest.approx(coarser_map["KAPPA"])
    assert finer_map["MATRIX"] == sk.confusion_matrix(coarse.ravel(), winner.ravel()).tolist()
    assert coarser_map["MATRIX"] == np.array(finer_map["MATRIX"]).T.tolist()
    assert finer_map["MIXED_SHARE"] == pytest.approx(mixed.mean()) == pytest.approx(coarser_map["MIXED_SHARE"])
    assert 0.5 < oa < 0.95 and 0.2 < mixed.mean() < 0.9  # a real map: neither identical nor unrelated


def test_nc_label_raster_against_a_4x_coarser_map(run_op, nc, nc_nearest_mean_map, tmp_path):
    """The sparse 28.5 m label raster (nodata -99999 almost everywhere) as the finer reference of a 114 m
    map: only the coarse pixels holding a labelled pixel are scored."""
    source = gdal.Open(str(nc_nearest_mean_map))
    fine_map = source.ReadAsArray()
    coarse = np.ascontiguousarray(fine_map[1::4, 1::4][:fine_map.shape[0] // 4, :fine_map.shape[1] // 4])
    coarse_map = write_like(tmp_path / "coarse_map.tif", coarse, source, 4)
    labels = gdal.Open(str(nc / "landsat96_labelled_pixels.tif")).ReadAsArray()
    winner, valid, mixed = block_majority(labels.astype(np.int64), labels > 0, 4)
    out, _ = run_op("assess_accuracy", INPUT=coarse_map, REFERENCE_RASTER=str(nc / "landsat96_labelled_pixels.tif"))
    assert out["N"] == int(valid.sum()) and 0 < out["N"] < 2872
    assert out["MATRIX"] == sk.confusion_matrix(winner[valid], coarse[valid]).tolist()
    assert out["OA"] == pytest.approx(float((winner[valid] == coarse[valid]).mean()))
    assert out["KAPPA"] == pytest.approx(sk.cohen_kappa_score(winner[valid], coarse[valid]))
    assert out["MIXED_SHARE"] == pytest.approx(mixed[valid].mean())


def test_cancel_while_aggregating_leaves_no_files(run_cancelled, tmp_path, gd):
    """A 2000 x 1200 reference at 1 m against a 4 m map: several coarse windows; cancelled at the second."""
    values = np.tile(np.arange(1, 4, dtype=np.uint8), (2000, 400))
    reference = gd.write_raster(tmp_path / "fine.tif", values, origin=ORIGIN, options=["TILED=YES"])
    mapped = gd.write_raster(tmp_path / "coarse.tif", values[::4, ::4].copy(), origin=ORIGIN, pixel=4.0)
    before = gd.folder_entries(tmp_path)
    error = run_cancelled("assess_accuracy", after=2, INPUT=mapped, REFERENCE_RASTER=reference,
                          OUTPUT_CSV=str(tmp_path / "out" / "s.csv"), OUTPUT_HTML=str(tmp_path / "out" / "r.html"))
    assert type(error).__name__ == "Cancelled"
    assert gd.folder_entries(tmp_path) == before


def test_coarse_windows_cover_the_fine_raster_once_and_read_a_bounded_number_of_pixels():
    from patchflow.plugin.engine.evaluate import majority as module
    from patchflow.plugin.engine.geodata.raster import Grid

    fine = Grid(10000, 7000, 0.0, 0.5, 0.0, -0.5, "")
    coarse = Grid(400, 300, -3.0, 12.5, 2.0, -12.5, "")  # 25x, offset: covers the fine raster's 5000 x 3500 m
    aggregated = module.Aggregated(None, fine, coarse, lambda raw: (raw, raw > 0))  # type: ignore[arg-type]
    windows = list(aggregated.windows())
    covered = np.zeros((coarse.height, coarse.width), int)
    for x0, y0, width, height in windows:
        covered[y0:y0 + height, x0:x0 + width] += 1
        c0, c1 = aggregated.x.fine_range(x0, x0 + width)
        r0, r1 = aggregated.y.fine_range(y0, y0 + height)
        assert (c1 - c0) * (r1 - r0) <= 1.2 * module.FINE_PIXELS_PER_READ
    # coarse columns 0..400 (x from -3 m) and rows 0..281 (y from 2 m down to -3500 m) hold fine centres
    assert covered[:281].min() == covered[:281].max() == 1 and covered[281:].sum() == 0
