"""Patch extraction: geometry, resolutions, data types, nodata, errors and rollback."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from osgeo import gdal

from patchflow.plugin.engine.data.patches import PatchesImage
from patchflow.plugin.engine.errors import Cancelled, PatchFlowError

ORIGIN = (400000.0, 6000000.0)


def error_of(call) -> PatchFlowError:
    with pytest.raises(PatchFlowError) as caught:
        call()
    return caught.value


def patches_of(path) -> np.ndarray:
    """(n, bands, p, p) patches of a patches-image."""
    return PatchesImage(str(path)).read().transpose(0, 3, 1, 2)


def labels_of(path) -> np.ndarray:
    return np.asarray(gdal.Open(str(path)).ReadAsArray()).reshape(-1)


def window(array: np.ndarray, col: int, row: int, size: int) -> np.ndarray:
    """(bands, size, size) of a (bands, rows, cols) array, starting at (col, row)."""
    return array[:, row:row + size, col:col + size]


def random_points(rng, n, extent, margin=0.0):
    xmin, ymin, xmax, ymax = extent
    return (rng.uniform(xmin - margin, xmax + margin, n), rng.uniform(ymin - margin, ymax + margin, n))


@pytest.fixture
def encoded(gd, tmp_path):
    """A 2-band Int32 raster whose pixels say where they are: band 1 = row * 1000 + col, band 2 its
    negative; 10 m pixels."""
    rows, cols = np.mgrid[0:120, 0:150]
    code = (rows * 1000 + cols).astype(np.int32)
    array = np.stack([code, -code])
    path = gd.write_raster(tmp_path / "encoded.tif", array, origin=ORIGIN, pixel=10.0)
    return path, array


@pytest.mark.parametrize("patch_size", [7, 8, 1])
def test_each_patch_is_the_window_around_its_point(run_op, gd, encoded, tmp_path, patch_size):
    path, array = encoded
    rng = np.random.default_rng(patch_size)
    extent = (ORIGIN[0], ORIGIN[1] - 1200, ORIGIN[0] + 1500, ORIGIN[1])
    xs, ys = random_points(rng, 200, extent, margin=30.0)
    points = gd.write_points(tmp_path / "points.gpkg", xs, ys, {"pid": list(range(200))})
    out, reporter = run_op("extract_patches", INPUT=points, SOURCE1=path, PATCH_SIZE1=patch_size, CLASS_FIELD="pid",
                           OUTPUT=str(tmp_path / "data" / "set.json"))
    cols, rows = gd.to_pixels(path, xs, ys)
    starts_c, starts_r = cols - patch_size // 2, rows - patch_size // 2
    fits = (starts_c >= 0) & (starts_r >= 0) & (starts_c + patch_size <= 150) & (starts_r + patch_size <= 120)
    patches = patches_of(out["PATCHES1"])
    pids = labels_of(out["LABELS"])
    assert sorted(pids.tolist()) == np.flatnonzero(fits).tolist()
    assert out["COUNT"] == len(patches) == int(fits.sum())
    assert out["DROPPED_OUTSIDE"] == int((~fits).sum()) > 0
    assert out["DROPPED_NODATA"] == 0
    for patch, pid in zip(patches, pids):
        assert np.array_equal(patch, window(array, starts_c[pid], starts_r[pid], patch_size)), pid
    assert any("dropped" in w for w in reporter.warnings)
    gtiff = gdal.Open(out["PATCHES1"])
    assert (gtiff.RasterXSize, gtiff.RasterYSize, gtiff.RasterCount) == (patch_size, patch_size * len(pids), 2)


@pytest.mark.parametrize(("small", "large"), [(8, 32), (7, 28), (5, 20)])
def test_two_resolutions_cover_the_same_ground(run_op, gd, tmp_path, small, large):
    coarse = np.random.default_rng(0).integers(0, 30000, (1, 40, 40)).astype(np.int16)
    coarse_path = gd.write_raster(tmp_path / "coarse.tif", coarse, origin=ORIGIN, pixel=10.0)
    # 2.5 m pixels over a part of the 10 m raster: 10 m columns 5..34 and rows 3..32, constant per 10 m pixel
    fine = np.kron(coarse[:, 3:33, 5:35], np.ones((4, 4), dtype=np.int16))
    fine_path = gd.write_raster(tmp_path / "fine.tif", fine, origin=(ORIGIN[0] + 50, ORIGIN[1] - 30), pixel=2.5)
    rng = np.random.default_rng(small)
    xs, ys = random_points(rng, 150, (ORIGIN[0], ORIGIN[1] - 400, ORIGIN[0] + 400, ORIGIN[1]))
    points = gd.write_points(tmp_path / "points.gpkg", xs, ys, {"pid": list(range(150))})
    out, _ = run_op("extract_patches", INPUT=points, SOURCE1=coarse_path, PATCH_SIZE1=small, SOURCE2=fine_path,
                    PATCH_SIZE2=large, CLASS_FIELD="pid", OUTPUT=str(tmp_path / "set.json"))
    coarse_patches = patches_of(out["PATCHES1"])
    fine_patches = patches_of(out["PATCHES2"])
    assert fine_patches.shape == (len(coarse_patches), 1, large, large)
    averaged = fine_patches.reshape(len(fine_patches), 1, small, 4, small, 4).mean(axis=(3, 5))
    assert np.array_equal(averaged, coarse_patches)
    # kept: the 10 m patch lies inside both rasters' footprints (fine covers 10 m cols 5..34, rows 3..32)
    cols, rows = gd.to_pixels(coarse_path, xs, ys)
    c0, r0 = cols - small // 2, rows - small // 2
    fits = (c0 >= 5) & (r0 >= 3) & (c0 + small <= 35) & (r0 + small <= 33)
    assert sorted(labels_of(out["LABELS"]).tolist()) == np.flatnonzero(fits).tolist()
    assert out["DROPPED_OUTSIDE"] == int((~fits).sum())
    for patch, pid in zip(coarse_patches, labels_of(out["LABELS"])):
        assert np.array_equal(patch, window(coarse, c0[pid], r0[pid], small))


@pytest.mark.parametrize("offset", [0.4, 1.0, 1.6, 2.1])
def test_unaligned_second_source_patch_is_centred_to_the_nearest_pixel(run_op, gd, tmp_path, offset):
    """A 2.5 m grid shifted by ``offset`` m: the 2.5 m patch's centre is within half a 2.5 m pixel of
    the 10 m patch's centre."""
    coarse = gd.write_raster(tmp_path / "coarse.tif", np.ones((30, 30), np.uint8), origin=ORIGIN, pixel=10.0)
    rows, cols = np.mgrid[0:140, 0:140]
    fine = gd.write_raster(tmp_path / "fine.tif", (rows * 1000 + cols).astype(np.int32),
                           origin=(ORIGIN[0] - 10 + offset, ORIGIN[1] + 10 - offset), pixel=2.5)
    rng = np.random.default_rng(int(offset * 10))
    xs, ys = random_points(rng, 60, (ORIGIN[0] + 60, ORIGIN[1] - 240, ORIGIN[0] + 240, ORIGIN[1] - 60))
    points = gd.write_points(tmp_path / "p.gpkg", xs, ys, {"pid": list(range(60))})
    out, _ = run_op("extract_patches", INPUT=points, SOURCE1=coarse, PATCH_SIZE1=6, SOURCE2=fine, PATCH_SIZE2=24,
                    CLASS_FIELD="pid", OUTPUT=str(tmp_path / "s.json"))
    assert out["COUNT"] == 60
    cols_c, rows_c = gd.to_pixels(coarse, xs, ys)
    for patch, pid in zip(patches_of(out["PATCHES2"]), labels_of(out["LABELS"])):
        code = int(patch[0, 0, 0])
        assert np.array_equal(patch[0], (rows[:24, :24] + code // 1000) * 1000 + cols[:24, :24] + code % 1000)
        fine_x = ORIGIN[0] - 10 + offset + 2.5 * (code % 1000 + 12)
        fine_y = ORIGIN[1] + 10 - offset - 2.5 * (code // 1000 + 12)
        coarse_x = ORIGIN[0] + 10.0 * (cols_c[pid] - 3 + 3)
        coarse_y = ORIGIN[1] - 10.0 * (rows_c[pid] - 3 + 3)
        assert abs(fine_x - coarse_x) <= 1.25 + 1e-9 and abs(fine_y - coarse_y) <= 1.25 + 1e-9


@pytest.mark.parametrize(("dtypes", "expected"), [
    (["int16"], "int16"), (["uint8"], "uint8"), (["float32"], "float32"), (["uint8", "int16"], "int16"),
    (["uint16"], "uint16"), (["float64"], "float64"),
])
def test_data_type_is_kept(run_op, gd, tmp_path, dtypes, expected):
    rng = np.random.default_rng(1)
    paths = []
    for index, dtype in enumerate(dtypes):
        info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
        low, high = (info.min, info.max) if info else (-1e6, 1e6)
        array = rng.uniform(low, high, (2, 30, 30)).astype(dtype)
        paths.append(gd.write_raster(tmp_path / f"r{index}.tif", array, origin=ORIGIN, pixel=10.0))
    stacked = np.concatenate([gd.read_raster(p)[np.newaxis] if gd.read_raster(p).ndim == 2 else gd.read_raster(p)
                              for p in paths]).astype(expected)
    points = gd.write_points(tmp_path / "p.gpkg", [ORIGIN[0] + 155.0], [ORIGIN[1] - 155.0])
    out, _ = run_op("extract_patches", INPUT=points, SOURCE1=paths, PATCH_SIZE1=6, OUTPUT=str(tmp_path / "s.json"))
    image = PatchesImage(out["PATCHES1"])
    assert image.dtype == np.dtype(expected)
    assert image.bands == 2 * len(dtypes)
    assert np.array_equal(patches_of(out["PATCHES1"])[0], window(stacked, 15 - 3, 15 - 3, 6))
    manifest = json.loads(open(out["OUTPUT"]).read())
    assert manifest["sources"][0]["dtype"] == expected
    assert out["LABELS"] is None and manifest["labels"] is None


@pytest.fixture
def holed(gd, tmp_path):
    """Float32 with scattered nodata (-1) pixels, and 120 points with an id."""
    rng = np.random.default_rng(7)
    array = rng.uniform(0, 100, (1, 80, 80)).astype(np.float32)
    hole = rng.random((80, 80)) < 0.004
    array[0][hole] = -1.0
    path = gd.write_raster(tmp_path / "holed.tif", array, nodata=-1.0, origin=ORIGIN, pixel=10.0)
    xs, ys = random_points(rng, 120, (ORIGIN[0] + 40, ORIGIN[1] - 760, ORIGIN[0] + 760, ORIGIN[1] - 40))
    points = gd.write_points(tmp_path / "points.gpkg", xs, ys, {"pid": list(range(120))})
    cols, rows = gd.to_pixels(path, xs, ys)
    touches = np.array([hole[r - 4:r + 4, c - 4:c + 4].any() for c, r in zip(cols, rows)])
    return path, points, array, touches


def test_patches_touching_nodata_are_dropped_and_counted(run_op, holed, tmp_path):
    path, points, array, touches = holed
    assert 0 < touches.sum() < len(touches)
    out, reporter = run_op("extract_patches", INPUT=points, SOURCE1=path, PATCH_SIZE1=8, CLASS_FIELD="pid",
                           OUTPUT=str(tmp_path / "s.json"))
    assert out["DROPPED_NODATA"] == int(touches.sum())
    assert out["DROPPED_OUTSIDE"] == 0
    assert sorted(labels_of(out["LABELS"]).tolist()) == np.flatnonzero(~touches).tolist()
    assert not (patches_of(out["PATCHES1"]) == -1.0).any()
    assert any("nodata" in w for w in reporter.warnings)


def test_skip_nodata_off_keeps_them_and_stats_ignore_nodata(run_op, holed, tmp_path):
    path, points, _, touches = holed
    out, _ = run_op("extract_patches", INPUT=points, SOURCE1=path, PATCH_SIZE1=8, SKIP_NODATA=False,
                    OUTPUT=str(tmp_path / "s.json"))
    assert out["COUNT"] == len(touches) and out["DROPPED_NODATA"] == 0
    values = patches_of(out["PATCHES1"]).ravel().astype(np.float64)
    assert (values == -1.0).any()
    valid = values[values != -1.0]
    stats = json.loads(open(out["OUTPUT"]).read())["sources"][0]["bands"][0]
    assert stats["mean"] == pytest.approx(valid.mean(), rel=1e-9)
    assert stats["std"] == pytest.approx(valid.std(), rel=1e-6)
    assert stats["min"] == valid.min() and stats["max"] == valid.max()


def test_nodata_in_the_second_source_drops_the_patch_everywhere(run_op, gd, tmp_path):
    first = gd.write_raster(tmp_path / "a.tif", np.ones((40, 40), np.uint8), origin=ORIGIN, pixel=10.0)
    second = np.full((40, 40), 5, np.int16)
    second[10, 10] = -32768
    second_path = gd.write_raster(tmp_path / "b.tif", second, nodata=-32768, origin=ORIGIN, pixel=10.0)
    xs = [ORIGIN[0] + 105.0, ORIGIN[0] + 305.0]  # pixel (10, 10) and (30, 30)
    ys = [ORIGIN[1] - 105.0, ORIGIN[1] - 305.0]
    points = gd.write_points(tmp_path / "p.gpkg", xs, ys, {"pid": [0, 1]})
    out, _ = run_op("extract_patches", INPUT=points, SOURCE1=first, PATCH_SIZE1=4, SOURCE2=second_path, PATCH_SIZE2=4,
                    CLASS_FIELD="pid", OUTPUT=str(tmp_path / "s.json"))
    assert out["COUNT"] == 1 and out["DROPPED_NODATA"] == 1
    assert labels_of(out["LABELS"]).tolist() == [1]
    assert len(PatchesImage(out["PATCHES1"])) == len(PatchesImage(out["PATCHES2"])) == 1


def test_label_raster_as_an_extra_source(run_op, gd, tmp_path):
    rng = np.random.default_rng(3)
    image = gd.write_raster(tmp_path / "img.tif", rng.normal(0, 1, (3, 64, 64)).astype(np.float32), origin=ORIGIN,
                            pixel=10.0)
    classes = rng.choice([1, 2, 4], (64, 64)).astype(np.uint8)
    labels = gd.write_raster(tmp_path / "classes.tif", classes, origin=ORIGIN, pixel=10.0,
                             color_table={1: (255, 0, 0, 255), 2: (0, 255, 0, 255), 4: (0, 0, 255, 255)},
                             category_names=["", "roof", "grass", "", "water"])
    xs = ORIGIN[0] + 10.0 * np.array([10.5, 20.5, 40.2, 52.9])
    ys = ORIGIN[1] - 10.0 * np.array([12.5, 30.1, 50.5, 8.3])
    points = gd.write_points(tmp_path / "p.gpkg", xs, ys)
    out, _ = run_op("extract_patches", INPUT=points, SOURCE1=image, PATCH_SIZE1=16, LABEL_RASTER=labels,
                    OUTPUT=str(tmp_path / "s.json"))
    assert out["COUNT"] == 4 and out["LABELS"] is None
    label_patches = patches_of(out["LABEL_PATCHES"])
    assert label_patches.shape == (4, 1, 16, 16) and label_patches.dtype == np.uint8
    expected = {window(classes[np.newaxis], c - 8, r - 8, 16).tobytes()
                for c, r in zip(*gd.to_pixels(labels, xs, ys))}
    assert {patch.tobytes() for patch in label_patches} == expected
    manifest = json.loads(open(out["OUTPUT"]).read())
    counts = Counter(label_patches.ravel().tolist())
    assert {(c["id"], c["name"], c["color"], c["count"]) for c in manifest["classes"]} == {
        (1, "roof", "#ff0000", counts[1]), (2, "grass", "#00ff00", counts[2]), (4, "water", "#0000ff", counts[4])}
    assert [s["role"] for s in manifest["sources"]] == ["image", "label"]


def test_label_raster_at_another_resolution_gets_a_matching_patch_size(run_op, gd, tmp_path):
    image = gd.write_raster(tmp_path / "img.tif", np.ones((32, 32), np.float32), origin=ORIGIN, pixel=10.0)
    fine = np.kron(np.arange(32 * 32).reshape(32, 32) % 7, np.ones((2, 2))).astype(np.uint8)
    labels = gd.write_raster(tmp_path / "lab.tif", fine, origin=ORIGIN, pixel=5.0)
    points = gd.write_points(tmp_path / "p.gpkg", [ORIGIN[0] + 160.0], [ORIGIN[1] - 160.0])
    out, _ = run_op("extract_patches", INPUT=points, SOURCE1=image, PATCH_SIZE1=8, LABEL_RASTER=labels,
                    OUTPUT=str(tmp_path / "s.json"))
    patch = patches_of(out["LABEL_PATCHES"])[0, 0]
    assert patch.shape == (16, 16)
    assert np.array_equal(patch, fine[32 - 8:32 + 8, 32 - 8:32 + 8])


# ---- errors, cancel and rollback ------------------------------------------------------------------


@pytest.fixture
def scene(gd, tmp_path):
    image = gd.write_raster(tmp_path / "img.tif", np.ones((2, 50, 60), np.uint8), origin=ORIGIN, pixel=10.0)
    points = gd.write_points(tmp_path / "p.gpkg", ORIGIN[0] + np.array([100.0, 300.0]),
                             ORIGIN[1] - np.array([100.0, 300.0]), {"klass": ["a", "b"]})
    out = tmp_path / "out"
    out.mkdir()
    return image, points, out


def test_extraction_errors_name_the_parameter_and_leave_nothing(run_op, gd, scene, tmp_path):
    image, points, out = scene
    far = gd.write_points(tmp_path / "far.gpkg", [0.0, 10.0], [0.0, 10.0])
    other_crs = gd.write_raster(tmp_path / "utm32.tif", np.ones((50, 60), np.uint8), origin=ORIGIN, pixel=10.0,
                                epsg=32632)
    shifted = gd.write_raster(tmp_path / "shifted.tif", np.ones((50, 60), np.uint8), origin=(ORIGIN[0] + 5, ORIGIN[1]),
                              pixel=10.0)
    bigger = gd.write_raster(tmp_path / "bigger.tif", np.ones((51, 60), np.uint8), origin=ORIGIN, pixel=10.0)
    empty = gd.write_raster(tmp_path / "empty.tif", np.zeros((50, 60), np.uint8), nodata=0, origin=ORIGIN, pixel=10.0)
    lines = gdal.VectorTranslate(str(tmp_path / "lines.gpkg"), points, format="GPKG", SQLStatement=(
        "SELECT MakeLine(geom, geom) AS geom FROM p"), SQLDialect="SQLITE")
    del lines  # closes it
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    cases = [
        ({"INPUT": far}, "INPUT"),
        ({"INPUT": str(tmp_path / "missing.gpkg")}, "INPUT"),
        ({"INPUT": str(tmp_path / "lines.gpkg")}, "INPUT"),
        ({"SOURCE2": other_crs, "PATCH_SIZE2": 4}, "SOURCE2"),
        ({"PATCH_SIZE1": 51}, "PATCH_SIZE1"),
        ({"SOURCE2": image, "PATCH_SIZE2": 51}, "PATCH_SIZE2"),
        ({"SOURCE1": [image, shifted]}, "SOURCE1"),
        ({"SOURCE1": [image, bigger]}, "SOURCE1"),
        ({"SOURCE1": None}, "SOURCE1"),
        ({"SOURCE3": str(tmp_path / "nope.tif"), "PATCH_SIZE3": 4}, "SOURCE3"),
        ({"SOURCE2": empty, "PATCH_SIZE2": 8}, "INPUT"),  # every patch touches nodata
        ({"CLASS_FIELD": "klasse"}, "CLASS_FIELD"),
        ({"LABEL_RASTER": other_crs}, "LABEL_RASTER"),
        ({"OUTPUT": str(blocker / "set.json")}, "OUTPUT"),
    ]
    for change, parameter in cases:
        params = {"INPUT": points, "SOURCE1": image, "PATCH_SIZE1": 8, "OUTPUT": str(out / "set.json"), **change}
        error = error_of(lambda params=params: run_op("extract_patches", **params))
        assert error.parameter == parameter, (change, error)
        assert gd.folder_entries(out) == [], change
        if change.get("INPUT", "").endswith("lines.gpkg"):
            assert "points are needed" in error.message
    assert blocker.read_text() == "not a folder"


def test_unwritable_output_folder(run_op, gd, scene, tmp_path):
    import os

    image, points, _ = scene
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root writes anywhere: a path under a regular file it cannot
            (tmp_path / "plain.txt").write_text("x")
            target = tmp_path / "plain.txt" / "set.json"
        else:
            target = locked / "set.json"
        error = error_of(lambda: run_op("extract_patches", INPUT=points, SOURCE1=image, PATCH_SIZE1=8,
                                        OUTPUT=str(target)))
        assert error.parameter == "OUTPUT"
        assert gd.folder_entries(locked) == []
    finally:
        locked.chmod(0o700)


def test_output_name_without_json_gets_it(run_op, scene):
    image, points, out = scene
    result, _ = run_op("extract_patches", INPUT=points, SOURCE1=image, PATCH_SIZE1=8, OUTPUT=str(out / "dataset"))
    assert result["OUTPUT"] == str(out / "dataset.json")
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "dataset_positions.csv", "dataset_source1.tif"]


def test_cancel_leaves_nothing(run_cancelled, gd, tmp_path):
    image = gd.write_raster(tmp_path / "big.tif", np.ones((1100, 1100), np.uint8), origin=ORIGIN, pixel=10.0)
    rng = np.random.default_rng(0)
    xs, ys = random_points(rng, 400, (ORIGIN[0] + 100, ORIGIN[1] - 10900, ORIGIN[0] + 10900, ORIGIN[1] - 100))
    points = gd.write_points(tmp_path / "p.gpkg", xs, ys, {"pid": list(range(400))})
    out = tmp_path / "out"
    out.mkdir()
    error = run_cancelled("extract_patches", after=2, INPUT=points, SOURCE1=image, PATCH_SIZE1=16,
                          CLASS_FIELD="pid", OUTPUT=str(out / "set.json"))
    assert isinstance(error, Cancelled)
    assert gd.folder_entries(out) == []


def test_patches_image_reader(gd, tmp_path):
    stacked = np.arange(3 * 5 * 4 * 4, dtype=np.int16).reshape(3, 5 * 4, 4)
    path = gd.write_raster(tmp_path / "p.tif", stacked, epsg=None)
    image = PatchesImage(path)
    assert (len(image), image.bands, image.patch_size, image.dtype) == (5, 3, 4, np.dtype(np.int16))
    patches = image.read(1, 3)
    assert patches.shape == (2, 4, 4, 3)
    assert np.array_equal(patches[0, :, :, 2], stacked[2, 4:8])
    assert np.array_equal(image.read(), stacked.reshape(3, 5, 4, 4).transpose(1, 2, 3, 0))
    assert image.read(4, 99).shape == (1, 4, 4, 3)
    with pytest.raises(PatchFlowError) as caught:
        PatchesImage(path, patch_size=3, parameter="PATCHES")
    assert caught.value.parameter == "PATCHES"
    odd = gd.write_raster(tmp_path / "odd.tif", np.zeros((10, 4), np.uint8), epsg=None)
    with pytest.raises(PatchFlowError):
        PatchesImage(odd)


# ---- real data ------------------------------------------------------------------------------------


def test_real_landsat_patches_at_the_real_points(run_op, gd, nc, tmp_path):
    multiband = str(nc / "landsat_multiband.tif")
    band7 = str(nc / "lsat7_2000_70.tif")
    points = str(nc / "landsat96_points.shp")
    out, _ = run_op("extract_patches", INPUT=points, SOURCE1=multiband, PATCH_SIZE1=8, SOURCE2=band7, PATCH_SIZE2=8,
                    CLASS_FIELD="id", OUTPUT=str(tmp_path / "nc.json"))
    first, second = gd.read_raster(multiband), gd.read_raster(band7)[np.newaxis]
    xs, ys, fields, _ = gd.read_points(points)
    cols, rows = gd.to_pixels(multiband, xs, ys)
    c0, r0 = cols - 4, rows - 4
    fits = (c0 >= 0) & (r0 >= 0) & (c0 + 8 <= first.shape[2]) & (r0 + 8 <= first.shape[1])
    kept, expected_first, expected_second = [], [], []
    for i in np.flatnonzero(fits):
        a, b = window(first, c0[i], r0[i], 8), window(second, c0[i], r0[i], 8)
        if not (a == -99999).any() and not (b == -32768).any():
            kept.append(fields["id"][i])
            expected_first.append(a.tobytes())
            expected_second.append(b.tobytes())
    assert out["COUNT"] == len(kept) > 100
    assert out["DROPPED_OUTSIDE"] == int((~fits).sum())
    assert out["COUNT"] + out["DROPPED_OUTSIDE"] + out["DROPPED_NODATA"] == 1000
    got_first, got_second = patches_of(out["PATCHES1"]), patches_of(out["PATCHES2"])
    assert got_first.dtype == np.float32 and got_first.shape[1:] == (5, 8, 8)
    assert got_second.dtype == np.int16 and got_second.shape[1:] == (1, 8, 8)
    assert sorted(p.tobytes() for p in got_first) == sorted(expected_first)
    assert sorted(p.tobytes() for p in got_second) == sorted(expected_second)
    labels = labels_of(out["LABELS"])
    assert Counter(labels.tolist()) == Counter(kept)
    # the two sources' patches are paired: same point, same row of each patches-image
    pairs = {(a.tobytes(), b.tobytes()) for a, b in zip(got_first, got_second)}
    assert pairs <= {(a, b) for a, b in zip(expected_first, expected_second)}
    manifest = json.loads(open(out["OUTPUT"]).read())
    names = dict(zip(fields["id"], fields["label"]))
    assert {c["id"]: (c["name"], c["count"]) for c in manifest["classes"]} == {
        k: (names[k], n) for k, n in Counter(kept).items()}


def test_points_in_another_crs_are_reprojected(run_op, nc, tmp_path):
    multiband = str(nc / "landsat_multiband.tif")
    native = str(nc / "landsat96_points.shp")
    geographic = str(tmp_path / "points_4326.gpkg")
    converted = gdal.VectorTranslate(geographic, native, format="GPKG", dstSRS="EPSG:4326")
    del converted  # closes it
    results = []
    for name, points in (("native", native), ("geographic", geographic)):
        out, _ = run_op("extract_patches", INPUT=points, SOURCE1=multiband, PATCH_SIZE1=5, CLASS_FIELD="label",
                        OUTPUT=str(tmp_path / name / "set.json"))
        results.append((out, sorted(p.tobytes() for p in patches_of(out["PATCHES1"]))))
    (native_out, native_patches), (geo_out, geo_patches) = results
    assert geo_out["COUNT"] == native_out["COUNT"] > 0
    assert geo_patches == native_patches
    assert Counter(labels_of(geo_out["LABELS"]).tolist()) == Counter(labels_of(native_out["LABELS"]).tolist())


@pytest.mark.parametrize("coarse_size, expected",
                         [(4, None), (None, None), (5, "PATCH_SIZE2"), (3, "PATCH_SIZE2"), (8, "PATCH_SIZE2")])
def test_sources_must_cover_the_same_ground(run_op, nc, tmp_path, coarse_size, expected):
    """NC Landsat-7 at 28.5 m with its x4 degradation (114 m): 16 px at 28.5 m is 456 m, which 4 px at 114 m
    cover (and are PATCH_SIZE2's default: source 1's footprint); 5 px (570 m: a whole coarse pixel off), 3 px or
    8 px are refused, naming PATCH_SIZE2 and the sizes that would match, before anything is written."""
    image = str(nc / "landsat_multiband.tif")
    coarse = str(tmp_path / "lr.tif")
    gdal.Warp(coarse, image, xRes=114.0, yRes=114.0, resampleAlg="average", creationOptions=["COMPRESS=NONE"])
    out = tmp_path / "out"
    out.mkdir()
    job = {"INPUT": str(nc / "landsat96_points.shp"), "SOURCE1": image, "PATCH_SIZE1": 16, "SOURCE2": coarse,
           "CLASS_FIELD": "label", "OUTPUT": str(out / "d.json")}
    if coarse_size is not None:
        job["PATCH_SIZE2"] = coarse_size
    if expected is None:
        result, _ = run_op("extract_patches", **job)
        assert result["COUNT"] > 0
        assert patches_of(result["PATCHES2"]).shape[2:] == (4, 4)
        return
    error = error_of(lambda: run_op("extract_patches", **job))
    assert error.parameter == expected
    assert "same ground" in error.message and "PATCH_SIZE2 4" in error.message, error.message
    assert list(out.iterdir()) == []
