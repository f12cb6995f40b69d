"""Extraction reads dense points by strips of whole rows of blocks and sparse ones patch by patch:
both give the same patches-images; what it asks for (strips, GDAL block cache) stays bounded."""

from __future__ import annotations

import os

import numpy as np
import pytest
from osgeo import gdal

from patchflow.plugin.engine.data import patches as patches_module
from patchflow.plugin.engine.data import strips
from patchflow.plugin.engine.data.patches import MAX_CACHE_BYTES, Source, memory_bound, size_cache
from patchflow.plugin.engine.geodata.raster import RasterStack

ORIGIN = (400000.0, 6000000.0)


def read_all(path: str) -> np.ndarray:
    return np.asarray(gdal.Open(path).ReadAsArray())


def extract_both_ways(run_op, monkeypatch, tmp_path, **parameters) -> tuple[dict, dict]:
    """The same extraction by strips (every source dense enough) and patch by patch (none)."""
    outputs = {}
    used: list[str] = []
    original = strips.StripReader.read
    monkeypatch.setattr(strips.StripReader, "read", lambda self, *a: used.append(current[0]) or original(self, *a))
    current = [""]
    for name, share in (("strips", 0.0), ("patches", 2.0)):
        monkeypatch.setattr(strips, "DENSE_ENOUGH", share)
        current[0] = name
        outputs[name], _ = run_op("extract_patches", OUTPUT=str(tmp_path / name / "d.json"), **parameters)
    assert "strips" in used and "patches" not in used
    return outputs["strips"], outputs["patches"]


def test_strips_give_the_patches_patch_by_patch_reading_gives(run_op, gd, tmp_path, monkeypatch):
    rng = np.random.default_rng(7)
    tiled = ["TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64", "COMPRESS=DEFLATE"]
    fine = gd.write_raster(tmp_path / "fine.tif", rng.integers(-500, 500, (3, 1300, 700)).astype(np.int16),
                           origin=ORIGIN, pixel=10.0, options=tiled)
    coarse = gd.write_raster(tmp_path / "coarse.tif", rng.normal(0, 1, (2, 650, 350)).astype(np.float32),
                             origin=ORIGIN, pixel=20.0)  # strips of one row: the other block shape
    xs = ORIGIN[0] + rng.uniform(0, 7000, 600)
    ys = ORIGIN[1] - rng.uniform(0, 13000, 600)  # several rows of chunks (CHUNK 512 px)
    points = gd.write_points(tmp_path / "p.gpkg", xs, ys, {"k": rng.integers(0, 3, 600).tolist()})
    by_strips, by_patches = extract_both_ways(run_op, monkeypatch, tmp_path, INPUT=points, SOURCE1=fine,
                                              PATCH_SIZE1=16, SOURCE2=coarse, PATCH_SIZE2=8, CLASS_FIELD="k")
    assert by_strips["COUNT"] == by_patches["COUNT"] > 500
    for key in ("PATCHES1", "PATCHES2", "LABELS"):
        assert np.array_equal(read_all(by_strips[key]), read_all(by_patches[key])), key


def test_sparse_points_are_read_patch_by_patch(gd, tmp_path):
    path = gd.write_raster(tmp_path / "r.tif", np.zeros((1, 2048, 2048), np.uint8), origin=ORIGIN,
                           options=["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256"])
    stack = RasterStack([path], "SOURCE1")
    few = np.array([10, 900, 1500]), np.array([20, 700, 1900])
    assert not strips.dense_enough(stack, *few, 16)
    cols, rows = np.meshgrid(np.arange(0, 2000, 128), np.arange(0, 2000, 128))
    assert strips.dense_enough(stack, cols.ravel(), rows.ravel(), 16)


def test_memory_asked_for_is_bounded(gd, tmp_path, monkeypatch):
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert memory_bound() <= MAX_CACHE_BYTES and memory_bound() <= max(ram // 8, 16 << 20)
    # a wide, many-band float64 raster (sparse file): a row of chunks far over the bound
    from patchflow.tests.helpers import create_raster

    wide = create_raster(tmp_path / "wide.tif", 120_000, 2000, 8, gdal.GDT_Float64, ["SPARSE_OK=TRUE", "TILED=YES"])
    wide.FlushCache()
    del wide
    source = Source("s", "SOURCE1", RasterStack([str(tmp_path / "wide.tif")], "SOURCE1"), 32)
    assert patches_module.chunk_row_cache_bytes([source]) > 2 * memory_bound()
    previous = gdal.GetCacheMax()
    try:
        gdal.SetCacheMax(16 << 20)
        size_cache([source])
        assert gdal.GetCacheMax() == memory_bound()
    finally:
        gdal.SetCacheMax(previous)
    cols, rows = np.meshgrid(np.arange(0, 119_000, 200), np.arange(0, 1900, 100))
    readers = strips.strip_readers([source], [(cols.ravel(), rows.ravel())], rows.ravel() // 512, [512],
                                   memory_bound())
    assert readers == [None]  # its strip would not fit: patch by patch, in the bounded cache


@pytest.mark.parametrize("cachemax", ["32"])
def test_gdal_cachemax_set_is_left_alone(monkeypatch, gd, tmp_path, cachemax):
    monkeypatch.setenv("GDAL_CACHEMAX", cachemax)
    path = gd.write_raster(tmp_path / "r.tif", np.zeros((1, 64, 64), np.uint8), origin=ORIGIN)
    previous = gdal.GetCacheMax()
    size_cache([Source("s", "SOURCE1", RasterStack([path], "SOURCE1"), 8)])
    assert gdal.GetCacheMax() == previous


def dense_reader(gd, tmp_path, rows_of_chunks: int = 3):
    """A StripReader over a tiled raster with dense points in ``rows_of_chunks`` rows of chunks, and the
    raster's values (bands, rows, cols)."""
    rng = np.random.default_rng(3)
    values = rng.integers(-500, 500, (2, 512 * rows_of_chunks, 300)).astype(np.int16)
    path = gd.write_raster(tmp_path / "dense.tif", values, origin=ORIGIN,
                           options=["TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64", "COMPRESS=DEFLATE"])
    stack = RasterStack([path], "SOURCE1")
    cols, rows = np.meshgrid(np.arange(0, 280, 20), np.arange(0, 512 * rows_of_chunks - 16, 40))
    cols, rows = cols.ravel(), rows.ravel()
    order = np.argsort(rows // 512, kind="stable")
    cols, rows = cols[order], rows[order]
    return strips.StripReader(stack, 16, rows // 512, rows), cols, rows, values


def test_the_next_rows_are_read_ahead_and_give_the_same_patches(gd, tmp_path, monkeypatch):
    reader, cols, rows, values = dense_reader(gd, tmp_path)
    used: list[tuple[int, int]] = []
    original = strips.Prefetch.result
    monkeypatch.setattr(strips.Prefetch, "result", lambda self: used.append(self.span) or original(self))
    for key in np.unique(rows // 512):
        here = rows // 512 == key
        got = reader.read(int(key), cols[here], rows[here])
        assert got.flags["C_CONTIGUOUS"] and got.shape == (int(here.sum()), 2, 16, 16)
        for patch, col, row in zip(got, cols[here], rows[here]):
            assert np.array_equal(patch, values[:, row:row + 16, col:col + 16])
    reader.close()
    assert len(used) == 2  # the second and third rows of chunks came from the reads ahead


def test_a_failed_read_ahead_raises_in_the_extraction(gd, tmp_path, monkeypatch):
    reader, cols, rows, _ = dense_reader(gd, tmp_path)
    calls = []
    original = strips.StripReader._read_into

    def failing(self, out, start):
        calls.append(start)
        if len(calls) > 1:  # the first read ahead
            raise RuntimeError("disk gone")
        return original(self, out, start)

    monkeypatch.setattr(strips.StripReader, "_read_into", failing)
    first = rows // 512 == 0
    reader.read(0, cols[first], rows[first])
    second = rows // 512 == 1
    with pytest.raises(RuntimeError, match="disk gone"):
        reader.read(1, cols[second], rows[second])
    reader.close()
    assert reader.ahead is None
