"""Patch extraction (OTBTF PatchesExtraction) and OTBTF patches-images.

A patches-image stacks patches in rows: width = patch size, height = count x patch size, one
band per raster band, the source's data type. Points are processed in spatial chunks so each
chunk's pixels are read once, for every source, and patches are written in large batches.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from osgeo import gdal

from ..errors import Cancelled, PatchFlowError
from ..geodata.geotiff import create_geotiff, creation_options
from ..geodata.raster import Grid, RasterStack, nodata_mask, numpy_to_gdal_type
from ..reporting import Reporter
from .strips import strip_readers

CHUNK = 512  # pixels of source 1 per chunk side
WRITE_BATCH_BYTES = 32 << 20
MAX_CACHE_BYTES = 512 << 20  # the most GDAL block cache extraction asks for (unless GDAL_CACHEMAX says)


@dataclass
class Source:
    """One input of the dataset: rasters stacked on one grid, and the patch size taken from them."""

    name: str
    parameter: str
    stack: RasterStack
    patch_size: int
    role: str = "image"  # or "label"

    @property
    def grid(self) -> Grid:
        return self.stack.grid


def reference_origins(grid: Grid, patch_size: int, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-left pixel of each patch in the reference grid: the point's pixel is the centre pixel
    (start = pixel - patch_size // 2, as OTBTF does)."""
    u, v = grid.fractional_pixel(xs, ys)
    return np.floor(u).astype(np.int64) - patch_size // 2, np.floor(v).astype(np.int64) - patch_size // 2


def matching_origins(
    reference: Source, ref_cols: np.ndarray, ref_rows: np.ndarray, other: Source
) -> tuple[np.ndarray, np.ndarray]:
    """Top-left pixel in ``other`` of the patch centred where the reference patch is centred, so
    sources of different resolutions cover the same ground."""
    half = reference.patch_size / 2
    centre_x = reference.grid.x0 + (ref_cols + half) * reference.grid.dx
    centre_y = reference.grid.y0 + (ref_rows + half) * reference.grid.dy
    u, v = other.grid.fractional_pixel(centre_x, centre_y)
    half_other = other.patch_size / 2
    return np.floor(u - half_other + 0.5).astype(np.int64), np.floor(v - half_other + 0.5).astype(np.int64)


def inside(grid: Grid, cols: np.ndarray, rows: np.ndarray, patch_size: int) -> np.ndarray:
    return (cols >= 0) & (rows >= 0) & (cols + patch_size <= grid.width) & (rows + patch_size <= grid.height)


def read_patches(stack: RasterStack, cols: np.ndarray, rows: np.ndarray, patch_size: int) -> np.ndarray:
    """Patches (n, bands, p, p) at the given top-left pixels: one read of their union window when
    they are dense enough, else one read each."""
    n = len(cols)
    c0, r0 = int(cols.min()), int(rows.min())
    width, height = int(cols.max()) + patch_size - c0, int(rows.max()) + patch_size - r0
    if width * height <= 4 * n * patch_size * patch_size + (256 * 256):
        window = stack.read((c0, r0, width, height))
        offsets = np.arange(patch_size)
        r = (rows - r0)[:, None] + offsets
        c = (cols - c0)[:, None] + offsets
        return np.ascontiguousarray(window[:, r[:, :, None], c[:, None, :]].transpose(1, 0, 2, 3))
    return np.stack([stack.read((int(c), int(r), patch_size, patch_size)) for c, r in zip(cols, rows)])


def fill_nonfinite(patches: np.ndarray, nodata: list[float | None]) -> np.ndarray:
    """(n, bands, p, p) patches whose NaN/infinity values are replaced by their band's nodata value,
    where that is a finite number (a copy when anything changes)."""
    if patches.dtype.kind not in "fc":
        return patches
    bad = ~np.isfinite(patches)
    if not bad.any():
        return patches
    patches = patches.copy()
    for band, value in enumerate(nodata):
        if value is not None and math.isfinite(value):
            patches[:, band][bad[:, band]] = value
    return patches


def holds_nonfinite(patches: np.ndarray) -> np.ndarray:
    """(n,) whether each of (n, bands, p, p) patches holds a NaN or infinite value."""
    if patches.dtype.kind not in "fc":
        return np.zeros(len(patches), dtype=bool)
    return ~np.isfinite(patches).reshape(len(patches), -1).all(axis=1)


@dataclass
class BandStats:
    """Streaming per-band count, sum, sum of squares, min and max (nodata and non-finite values
    excluded), and the count of non-finite values (NaN, +-infinity) the patches hold."""

    bands: int
    nodata: list[float | None] | None = None
    count: np.ndarray = field(init=False)
    total: np.ndarray = field(init=False)
    squares: np.ndarray = field(init=False)
    low: np.ndarray = field(init=False)
    high: np.ndarray = field(init=False)
    nonfinite: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.count = np.zeros(self.bands)
        self.total = np.zeros(self.bands)
        self.squares = np.zeros(self.bands)
        self.low = np.full(self.bands, np.inf)
        self.high = np.full(self.bands, -np.inf)
        self.nonfinite = np.zeros(self.bands, np.int64)

    def add(self, patches: np.ndarray) -> None:
        if len(patches) == 0:
            return
        # band-major and contiguous, whatever the layout given: reductions along a strided axis are slow
        raw = np.ascontiguousarray(patches.transpose(1, 0, 2, 3)).reshape(self.bands, -1)
        invalid = np.zeros(raw.shape, dtype=bool)
        nodata = list(self.nodata or [])
        if raw.dtype.kind in "fc" or any(v is not None for v in nodata):
            for band in range(self.bands):
                invalid[band] = nodata_mask(raw[band], nodata[band] if band < len(nodata) else None)
        if raw.dtype.kind in "fc":
            self.nonfinite += (~np.isfinite(raw)).sum(axis=1)
        values = raw.astype(np.float64)
        if not invalid.any():  # one pass each, min and max in the data's own type
            self.count += values.shape[1]
            self.total += values.sum(axis=1)
            self.squares += np.einsum("ij,ij->i", values, values)
            self.low = np.minimum(self.low, raw.min(axis=1))
            self.high = np.maximum(self.high, raw.max(axis=1))
            return
        valid = ~invalid  # patches kept with nodata (SKIP_NODATA off): their nodata pixels do not count
        self.count += valid.sum(axis=1)
        self.total += np.where(valid, values, 0.0).sum(axis=1)
        self.squares += np.where(valid, np.square(values), 0.0).sum(axis=1)
        self.low = np.minimum(self.low, np.where(valid, values, np.inf).min(axis=1))
        self.high = np.maximum(self.high, np.where(valid, values, -np.inf).max(axis=1))

    def as_list(self) -> list[dict]:
        mean = np.divide(self.total, self.count, out=np.zeros(self.bands), where=self.count > 0)
        var = np.divide(self.squares, self.count, out=np.zeros(self.bands), where=self.count > 0) - mean**2
        std = np.sqrt(np.maximum(var, 0))
        return [
            {"mean": float(mean[b]), "std": float(std[b]),
             "min": float(self.low[b]) if self.count[b] else None,
             "max": float(self.high[b]) if self.count[b] else None,
             "nonfinite": int(self.nonfinite[b])}
            for b in range(self.bands)
        ]


class PatchesImageWriter:
    """Writes patches in rows to a GeoTIFF sized for ``capacity`` patches, in large batches."""

    def __init__(self, path: str, capacity: int, bands: int, patch_size: int, dtype: np.dtype) -> None:
        self.path, self.bands, self.patch_size, self.dtype = path, bands, patch_size, np.dtype(dtype)
        self.ds = create_geotiff(path, patch_size, max(1, capacity) * patch_size, bands, self.dtype,
                                 creation_options(strip_rows=patch_size))
        self.written = 0
        self.pending: list[np.ndarray] = []
        self.pending_bytes = 0

    def add(self, patches: np.ndarray) -> None:
        if len(patches):
            self.pending.append(patches.astype(self.dtype, copy=False))
            self.pending_bytes += patches.nbytes
            if self.pending_bytes >= WRITE_BATCH_BYTES:
                self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        batch = np.concatenate(self.pending)
        n, p = len(batch), self.patch_size
        rows = np.ascontiguousarray(batch.transpose(1, 0, 2, 3).reshape(self.bands, n * p, p))
        self.ds.WriteRaster(0, self.written * p, p, n * p, rows.tobytes(),
                            buf_type=numpy_to_gdal_type(self.dtype), band_list=list(range(1, self.bands + 1)))
        # written out now, every band of a block together: left in GDAL's block cache, the blocks would be
        # flushed one by one as the source's reads need room (for a pixel-interleaved file, a block rewritten
        # for each band)
        self.ds.FlushCache()
        self.written += n
        self.pending, self.pending_bytes = [], 0

    def close(self, descriptions: list[str], nodata: list[float | None]) -> None:
        """Flush, then shrink the file to the patches written (a copy, only when some were dropped)."""
        self.flush()
        # a GeoTIFF holds one nodata value for all bands: set it only when the bands agree (the
        # manifest keeps each band's own)
        common = nodata[0] if len(set(map(str, nodata))) == 1 else None
        for index, description in enumerate(descriptions, start=1):
            band = self.ds.GetRasterBand(index)
            band.SetDescription(description)
            if common is not None:
                band.SetNoDataValue(common)
        full_height = self.ds.RasterYSize
        self.ds = None
        if 0 < self.written * self.patch_size < full_height:
            full = self.path + ".full.tif"
            os.replace(self.path, full)
            gdal.Translate(self.path, full, format="GTiff",  # the path's extension may not say (a Dask part)
                           srcWin=[0, 0, self.patch_size, self.written * self.patch_size],
                           creationOptions=creation_options(strip_rows=self.patch_size))
            os.remove(full)


class PatchesImage:
    """Reads an OTBTF patches-image (PatchFlow's or anyone's): ``read(start, stop)`` gives
    (n, p, p, bands) arrays, channels last, as TensorFlow wants them."""

    def __init__(self, path: str, patch_size: int | None = None, parameter: str = "INPUT") -> None:
        from ..geodata.raster import gdal_array_dtype, open_raster

        self.path = path
        self.ds = open_raster(path, parameter)
        self.patch_size = patch_size or self.ds.RasterXSize
        if self.ds.RasterXSize != self.patch_size or self.ds.RasterYSize % self.patch_size:
            raise PatchFlowError(
                f"{path} is {self.ds.RasterXSize}x{self.ds.RasterYSize} px: not patches of {self.patch_size} px "
                "stacked in rows (width must be the patch size, height a multiple of it).", parameter)
        self.count = self.ds.RasterYSize // self.patch_size
        self.bands = self.ds.RasterCount
        self.dtype = gdal_array_dtype(self.ds.GetRasterBand(1).DataType)

    def __len__(self) -> int:
        return self.count

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        stop = self.count if stop is None else min(stop, self.count)
        p = self.patch_size
        rows = self.ds.ReadAsArray(0, start * p, p, (stop - start) * p)
        rows = rows[np.newaxis] if rows.ndim == 2 else rows
        return rows.reshape(self.bands, stop - start, p, p).transpose(1, 2, 3, 0)


def chunk_order(cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Indices sorting points by CHUNK x CHUNK tiles of the reference grid, row-major."""
    return np.lexsort((cols, rows, cols // CHUNK, rows // CHUNK))


@dataclass
class Extraction:
    """What ``extract`` produced: counts, per-source stats, and the kept points' class ids."""

    candidates: int
    kept: int
    dropped_outside: int
    dropped_nodata: int
    stats: list[BandStats]
    class_ids: np.ndarray
    label_pixel_counts: dict[int, int]
    centres: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))  # (kept, 2) map x, y, in file order


def chunk_row_cache_bytes(sources: list[Source]) -> int:
    """GDAL cache that holds the blocks of one row of chunks with its margins, for every source, so
    the blocks a row of chunks shares with the next are decoded once."""
    total = 0
    for source in sources:
        if not source.stack.datasets:  # labels burnt from polygons: nothing to cache
            continue
        scale = abs(sources[0].grid.dx / source.grid.dx)
        block_rows = source.stack.datasets[0].GetRasterBand(1).GetBlockSize()[1]
        rows = int(CHUNK * scale) + 2 * max(block_rows, source.patch_size)
        total += source.grid.width * rows * source.stack.band_count * source.stack.dtype.itemsize
    return total


def memory_bound() -> int:
    """The most memory extraction asks for, strips and GDAL block cache each: MAX_CACHE_BYTES, and no
    more than an eighth of the machine's RAM."""
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): MAX_CACHE_BYTES
        return MAX_CACHE_BYTES
    return min(MAX_CACHE_BYTES, max(ram // 8, 16 << 20))


def size_cache(sources: list[Source]) -> None:
    """GDAL's block cache grown (never shrunk, and not when GDAL_CACHEMAX is set) to hold a row of chunks
    of the sources read patch by patch, with room for the patches-images' write batches, within memory_bound."""
    if "GDAL_CACHEMAX" in os.environ or not sources:
        return
    wanted = min(memory_bound(), chunk_row_cache_bytes(sources) + WRITE_BATCH_BYTES * len(sources))
    gdal.SetCacheMax(max(gdal.GetCacheMax(), wanted))


def candidates_of(sources: list[Source], xs: np.ndarray,
                  ys: np.ndarray) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """Each source's patch origins (cols, rows) for every point, whether each patch is inside every source,
    and those points (the candidates) in chunk order."""
    reference = sources[0]
    ref_cols, ref_rows = reference_origins(reference.grid, reference.patch_size, xs, ys)
    origins = [(ref_cols, ref_rows)] + [matching_origins(reference, ref_cols, ref_rows, s) for s in sources[1:]]
    fits = np.ones(len(xs), dtype=bool)
    for source, (cols, rows) in zip(sources, origins):
        fits &= inside(source.grid, cols, rows, source.patch_size)
    candidates = np.flatnonzero(fits)
    return origins, fits, candidates[chunk_order(ref_cols[candidates], ref_rows[candidates])]


def split_chunks(origins: list[tuple[np.ndarray, np.ndarray]], candidates: np.ndarray) -> list[np.ndarray]:
    """The candidates (in chunk order) cut where their CHUNK x CHUNK tile changes: the point indices of each chunk."""
    ref_cols, ref_rows = origins[0]
    chunks_per_row = int(ref_cols[candidates].max(initial=0)) // CHUNK + 1
    keys = (ref_rows[candidates] // CHUNK) * chunks_per_row + ref_cols[candidates] // CHUNK
    return np.split(candidates, np.flatnonzero(np.diff(keys)) + 1) if len(candidates) else []


@dataclass
class ChunksDone:
    """What extract_chunks keeps besides patches and stats: nodata drops, class ids, label pixels, centres."""

    dropped_nodata: int
    class_ids: np.ndarray
    label_counts: dict[int, int]
    centres: np.ndarray


def extract(
    sources: list[Source],
    xs: np.ndarray,
    ys: np.ndarray,
    class_ids: np.ndarray | None,
    outputs: list[str],
    labels_output: str | None,
    skip_nodata: bool,
    reporter: Reporter,
    cancelled: Callable[[], bool] = lambda: False,
) -> Extraction:
    """Extract the patch of every point from every source; drop those partly outside a source or
    touching nodata in any source; write one patches-image per source (and the labels image)."""
    origins, fits, candidates = candidates_of(sources, xs, ys)
    writers = [PatchesImageWriter(path, len(candidates), s.stack.band_count, s.patch_size, s.stack.dtype)
               for path, s in zip(outputs, sources)]
    stats = [BandStats(s.stack.band_count, s.stack.nodata) for s in sources]
    done = extract_chunks(sources, origins, split_chunks(origins, candidates), class_ids, writers, stats,
                          skip_nodata, reporter, cancelled)
    for writer, source in zip(writers, sources):
        writer.close([b.description for b in source.stack.bands], source.stack.nodata)
    if labels_output is not None and class_ids is not None:
        write_labels_image(labels_output, done.class_ids)
    return Extraction(len(xs), writers[0].written, int((~fits).sum()), done.dropped_nodata, stats, done.class_ids,
                      done.label_counts, done.centres)


def extract_chunks(sources: list[Source], origins: list[tuple[np.ndarray, np.ndarray]], chunks: list[np.ndarray],
                   class_ids: np.ndarray | None, writers: list[PatchesImageWriter], stats: list[BandStats],
                   skip_nodata: bool, reporter: Reporter, cancelled: Callable[[], bool]) -> ChunksDone:
    """Each chunk's patches (indices into ``origins``, in chunk order) read from every source, those touching
    nodata dropped, the others written to ``writers`` and added to ``stats`` (a one-process run, a Dask window)."""
    reference = sources[0]
    ref_cols, ref_rows = origins[0]
    candidates = np.concatenate(chunks) if chunks else np.empty(0, np.int64)
    kept_classes: list[np.ndarray] = []
    label_counts: dict[int, int] = {}
    readers = strip_readers(sources, [(c[candidates], r[candidates]) for c, r in origins],
                            ref_rows[candidates] // CHUNK,
                            [int(CHUNK * abs(reference.grid.dy / s.grid.dy)) + 1 for s in sources], memory_bound())
    size_cache([s for s, reader in zip(sources, readers) if reader is None])
    dropped_nodata = 0
    kept_centres: list[np.ndarray] = []
    try:
        for done, chunk in enumerate(chunks):
            if cancelled():
                raise Cancelled()
            key = int(ref_rows[chunk[0]]) // CHUNK
            patches = [reader.read(key, cols[chunk], rows[chunk]) if reader else
                       read_patches(source.stack, cols[chunk], rows[chunk], source.patch_size)
                       for source, reader, (cols, rows) in zip(sources, readers, origins)]
            good = np.ones(len(chunk), dtype=bool)
            for index, (source, batch) in enumerate(zip(sources, patches)):
                if source.role == "label":
                    # nodata in a label raster means 'unlabelled', which training masks: NaN/infinity become
                    # its nodata value, and a patch is dropped when there is no nodata value to write instead
                    patches[index] = batch = fill_nonfinite(batch, source.stack.nodata)
                    good &= ~holds_nonfinite(batch)
                elif skip_nodata:
                    good &= ~source.stack.nodata_mask(batch.transpose(1, 0, 2, 3)).any(axis=(1, 2))
                else:  # patches kept with nodata hold the nodata value, not NaN/infinity, where there is one
                    patches[index] = fill_nonfinite(batch, source.stack.nodata)
            dropped_nodata += int((~good).sum())
            for writer, stat, source, batch in zip(writers, stats, sources, patches):
                writer.add(batch[good])
                stat.add(batch[good])
                if source.role == "label":
                    values, counts = np.unique(batch[good], return_counts=True)
                    for value, count in zip(values, counts):
                        label_counts[int(value)] = label_counts.get(int(value), 0) + int(count)
            if class_ids is not None:
                kept_classes.append(class_ids[chunk][good])
            kept_centres.append(patch_centres(reference, ref_cols[chunk][good], ref_rows[chunk][good]))
            reporter.progress(100.0 * (done + 1) / len(chunks))
    finally:  # a read ahead still running (cancelled, failed) finishes before the sources close
        for reader in readers:
            if reader is not None:
                reader.close()
    kept_ids = np.concatenate(kept_classes) if kept_classes else np.empty(0, np.int64)
    centres = np.concatenate(kept_centres) if kept_centres else np.empty((0, 2))
    return ChunksDone(dropped_nodata, kept_ids, label_counts, centres)


def patch_centres(reference: Source, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(n, 2) map x, y of the centres of reference patches at these top-left pixels (where
    ``matching_origins`` centres the other sources' patches)."""
    half = reference.patch_size / 2
    return np.stack([reference.grid.x0 + (cols + half) * reference.grid.dx,
                     reference.grid.y0 + (rows + half) * reference.grid.dy], axis=1)


def labels_dtype(class_ids: np.ndarray) -> np.dtype:
    low, high = (int(class_ids.min()), int(class_ids.max())) if len(class_ids) else (0, 0)
    for dtype in (np.uint8, np.int16, np.int32):
        if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def write_labels_image(path: str, class_ids: np.ndarray) -> None:
    """OTBTF's labels image: one 1x1 patch per sample, stacked in rows (width 1, height n)."""
    dtype = labels_dtype(class_ids)
    ds = create_geotiff(path, 1, max(1, len(class_ids)), 1, dtype, creation_options())
    if len(class_ids):
        ds.GetRasterBand(1).WriteArray(class_ids.astype(dtype).reshape(-1, 1))
    ds.GetRasterBand(1).SetDescription("class")
    ds = None
