"""Patches read from whole rows of blocks kept in memory: when the points are dense enough that a
row of chunks needs most of the blocks it crosses, its rows are read in a few large requests on whole
blocks (GeoTIFFs reopened with NUM_THREADS=ALL_CPUS, so GDAL decodes a request's blocks on every CPU),
the rows the next row of chunks shares are kept, and the patches are cut with numpy. Every block is
then decoded once whatever the GDAL block cache, and the memory is the strip's, bounded: strip_readers
checks ``strip_bytes`` against its budget before any read, and sparse points or a raster too wide for
it are read patch by patch (patches.read_patches)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from osgeo import gdal

from ..geodata.raster import RasterStack, gdal_array_dtype

DENSE_ENOUGH = 0.5  # strips when the patches touch at least this share of the blocks of their rows


def block_size(stack: RasterStack) -> tuple[int, int]:
    width, height = stack.datasets[0].GetRasterBand(1).GetBlockSize()
    return max(1, int(width)), max(1, int(height))


def strip_bytes(stack: RasterStack, chunk_rows: int, patch_size: int) -> int:
    """The most a strip holds: the rows of ``chunk_rows`` patch origins, their patch, and a block
    above and below (rows are read aligned on blocks), across the whole raster."""
    rows = chunk_rows + patch_size + 2 * block_size(stack)[1]
    return stack.grid.width * min(rows, stack.grid.height) * stack.band_count * stack.dtype.itemsize


def dense_enough(stack: RasterStack, cols: np.ndarray, rows: np.ndarray, patch_size: int) -> bool:
    """Whether the patches at these top-left pixels touch at least DENSE_ENOUGH of the blocks in
    the rows of blocks they cross (their corners' blocks, so a lower bound when patches span more)."""
    if len(cols) == 0:
        return False
    bw, bh = block_size(stack)
    across = -(-stack.grid.width // bw)
    touched = set()
    for dc in (0, patch_size - 1):
        for dr in (0, patch_size - 1):
            touched.update(np.unique((rows + dr) // bh * across + (cols + dc) // bw).tolist())
    block_rows = np.unique(np.concatenate([rows // bh, (rows + patch_size - 1) // bh]))
    return len(touched) >= DENSE_ENOUGH * len(block_rows) * across


def _threaded(stack: RasterStack) -> list[gdal.Dataset]:
    """The stack's datasets, GeoTIFFs opened again to decode the blocks of a request on every CPU
    (unless GDAL_NUM_THREADS says how many)."""
    if gdal.GetConfigOption("GDAL_NUM_THREADS"):
        return list(stack.datasets)
    opened = []
    for path, ds in zip(stack.paths, stack.datasets):
        if ds.GetDriver().ShortName == "GTiff":
            ds = gdal.OpenEx(path, gdal.OF_RASTER, allowed_drivers=["GTiff"], open_options=["NUM_THREADS=ALL_CPUS"])
        opened.append(ds)
    return opened


class HasStack(Protocol):
    stack: RasterStack
    patch_size: int


def strip_readers(sources: Sequence[HasStack], origins: list[tuple[np.ndarray, np.ndarray]], row_keys: np.ndarray,
                  chunk_rows: list[int], budget: int) -> list[StripReader | None]:
    """A StripReader for each source whose points (``origins`` of the candidates, in chunk order,
    ``row_keys`` their row of chunks) are dense enough, while their strips fit in ``budget`` bytes
    together; None for the others (burnt polygons, sparse points: read patch by patch)."""
    readers: list[StripReader | None] = []
    left = budget
    for source, (cols, rows), chunk in zip(sources, origins, chunk_rows):
        stack = source.stack
        readable = bool(stack.datasets)  # burnt polygons open nothing
        need = strip_bytes(stack, chunk, source.patch_size) if readable else left + 1
        if readable and 2 * need <= left and dense_enough(stack, cols, rows, source.patch_size):
            readers.append(StripReader(stack, source.patch_size, row_keys, rows))
            left -= 2 * need  # the strip and, while it moves on, the rows read next
        else:
            readers.append(None)
    return readers


class StripReader:
    """``read(key, cols, rows)``: (n, bands, p, p) patches of ``stack`` for origins in the row of chunks
    ``key`` (rows of chunks in increasing order), from a strip of whole rows of blocks kept between calls.
    While the patches of one row of chunks are cut, a thread already decodes the rows the next one adds
    (GDAL releases the GIL while it decodes), so decoding overlaps the numpy work instead of waiting for it."""

    def __init__(self, stack: RasterStack, patch_size: int, row_keys: np.ndarray, rows: np.ndarray) -> None:
        self.stack, self.patch_size = stack, patch_size
        starts = np.flatnonzero(np.r_[True, np.diff(row_keys) != 0])  # row_keys: not empty (dense_enough)
        lows, highs = np.minimum.reduceat(rows, starts), np.maximum.reduceat(rows, starts)
        self.block_rows = block_size(stack)[1]
        spans = [self._aligned(int(lo), int(hi) + patch_size) for lo, hi in zip(lows, highs)]
        self.spans = {int(row_keys[i]): span for i, span in zip(starts, spans)}
        self.following = dict(zip(spans, spans[1:]))  # the span read after each
        self.datasets = _threaded(stack)
        self.top = 0
        self.strip: np.ndarray | None = None  # (bands, rows, width): rows [top, top + rows)
        self.ahead: Prefetch | None = None

    def _pieces(self, ds: gdal.Dataset, rows: int, width: int) -> list[tuple[int, int, int, int]]:
        """(col, row, width, height) windows tiling rows x width, on whole blocks, each small enough that
        its blocks (every band) fit in a quarter of GDAL's cache: a request larger than the cache would
        decode the blocks of a pixel-interleaved file once per band."""
        bw, bh = block_size(self.stack)
        pixel = ds.RasterCount * gdal_array_dtype(ds.GetRasterBand(1).DataType).itemsize
        room = max(1, gdal.GetCacheMax() // 4 // pixel)  # pixels
        across = width if bh * width <= room else max(bw, room // bh // bw * bw)
        down = max(bh, room // across // bh * bh) if across == width else bh
        return [(c, r, min(across, width - c), min(down, rows - r))
                for r in range(0, rows, down) for c in range(0, width, across)]

    def _read_into(self, out: np.ndarray, start: int) -> None:
        """Rows [start, start + out rows) of every band, decoded straight into ``out`` (bands, rows, width)."""
        first = 0
        for ds in self.datasets:
            bands = ds.RasterCount
            same_type = out.dtype == gdal_array_dtype(ds.GetRasterBand(1).DataType)
            for col, row, width, height in self._pieces(ds, out.shape[1], out.shape[2]):
                view = out[first:first + bands, row:row + height, col:col + width]
                if same_type:
                    ds.ReadAsArray(col, start + row, width, height, buf_obj=view[0] if bands == 1 else view)
                else:  # a stack of several types: read in the file's type, converted
                    part = ds.ReadAsArray(col, start + row, width, height)
                    view[...] = part if part.ndim == 3 else part[np.newaxis]
            first += bands

    def _aligned(self, low: int, high: int) -> tuple[int, int]:
        bh = self.block_rows
        return low // bh * bh, min(self.stack.grid.height, -(-high // bh) * bh)

    def _kept(self, low: int) -> int:
        """How many of the strip's rows a strip starting at ``low`` keeps."""
        strip, top = self.strip, self.top
        return strip.shape[1] - (low - top) if strip is not None and top <= low < top + strip.shape[1] else 0

    def _cover(self, low: int, high: int) -> None:
        """The strip holds rows [low, high) (block-aligned), keeping the rows it shares; the rows of the
        span after it are then read ahead in a thread."""
        strip, top = self.strip, self.top
        if strip is not None and top <= low and high <= top + strip.shape[1]:
            return
        kept = self._kept(low)
        ahead, self.ahead = self.ahead, None
        if ahead is not None and ahead.span == (low, high) and ahead.kept == kept:
            grown = ahead.result()
        else:
            if ahead is not None:
                ahead.result()  # finished (its errors raised) before the datasets are used again
            grown = np.empty((self.stack.band_count, high - low, self.stack.grid.width), self.stack.dtype)
            self._read_into(grown[:, kept:], low + kept)
        if kept:
            assert strip is not None
            grown[:, :kept] = strip[:, low - top:]
        self.strip = strip = None  # the old strip freed
        self.strip, self.top = grown, low
        following = self.following.get((low, high))
        if following is not None:
            self.ahead = Prefetch(self, following, self._kept(following[0]))

    def read(self, key: int, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
        p = self.patch_size
        self._cover(*self.spans[key])  # the whole row of chunks at once: later chunks of it read nothing
        assert self.strip is not None
        offsets = np.arange(p)
        r = (rows - self.top)[:, None] + offsets
        c = cols[:, None] + offsets
        # (n, bands, p, p) in C order: a transposed view would make every later copy, mask and statistic
        # stride across bands (several times slower)
        return np.ascontiguousarray(self.strip[:, r[:, :, None], c[:, None, :]].transpose(1, 0, 2, 3))

    def close(self) -> None:
        """Waits for a read ahead still running (a cancelled or failed extraction), its result dropped."""
        ahead, self.ahead = self.ahead, None
        if ahead is not None:
            ahead.thread.join()


class Prefetch:
    """The rows of ``span`` past the ``kept`` rows the current strip shares, decoded in a thread into the
    next strip's array (the strip and it: the two strips strip_readers budgets for)."""

    def __init__(self, reader: StripReader, span: tuple[int, int], kept: int) -> None:
        self.span, self.kept = span, kept
        low, high = span
        self.grown = np.empty((reader.stack.band_count, high - low, reader.stack.grid.width), reader.stack.dtype)
        self.error: BaseException | None = None

        def run() -> None:
            try:
                reader._read_into(self.grown[:, kept:], low + kept)
            except BaseException as exc:  # noqa: BLE001 - re-raised by result()
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True, name="patchflow-strip-read-ahead")
        self.thread.start()

    def result(self) -> np.ndarray:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.grown
