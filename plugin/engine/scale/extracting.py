"""Extract patches on Dask: the client finds the candidates and their chunk order as a one-process run does
(data.patches.candidates_of, split_chunks) and cuts them into windows of whole rows of chunks (a few per worker);
each task extracts its window's points, in the same order and with the same per-chunk code
(data.patches.extract_chunks), into part patches-images (one per source) in the staging folder, and returns its
mergeable band statistics, label pixel counts, kept class ids and centres, and nodata drops. The client stacks
the parts in window order into each patches-image (a VRT of the parts at their row offsets, translated with the
one-process creation options) and merges the rest: the labels image and manifest are then a one-process run's."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from osgeo import gdal

from ..data import patches
from ..data.patches import BandStats, Extraction, Source
from ..errors import PatchFlowError
from ..geodata.geotiff import creation_options
from ..geodata.raster import numpy_to_gdal_type
from ..params import Params, RunContext
from .dispatch import describe_run, run_windows
from .execution import Execution, dask_client
from .parts import PART_PREFIX, join_rasters, remove_parts, writing_path

WINDOWS_PER_WORKER = 3  # WINDOW_TILES 0: about this many windows for each worker
Origins = list[tuple[np.ndarray, np.ndarray]]
StatArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ExtractJob:
    values: dict
    labels: dict
    index: int
    origins: Origins  # each source's patch origins of the window's candidates, in chunk order
    starts: list[int]  # where each chunk but the first starts in them
    class_ids: np.ndarray | None
    parts: list[str]  # each source's part patches-image


@dataclass
class ExtractResult:
    index: int
    kept: int = 0
    dropped_nodata: int = 0
    stats: list[StatArrays] = field(default_factory=list)  # each source's count, total, squares, low, high, nonfinite
    label_counts: dict[int, int] = field(default_factory=dict)
    class_ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    centres: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    error: tuple[str, str | None] | None = None


def row_windows(origins: Origins, candidates: np.ndarray, rows_per_window: int) -> list[np.ndarray]:
    """The candidates (in chunk order) cut into windows of ``rows_per_window`` whole rows of chunks."""
    keys = origins[0][1][candidates] // patches.CHUNK
    starts = np.flatnonzero(np.r_[True, np.diff(keys) != 0])  # where each row of chunks starts
    cuts = starts[rows_per_window::rows_per_window]
    return np.split(candidates, cuts) if len(candidates) else []


def rows_per_window(origins: Origins, candidates: np.ndarray, tiles: int, workers: int) -> int:
    """``tiles`` rows of chunks a window, or (0) enough for about WINDOWS_PER_WORKER windows a worker."""
    if tiles:
        return tiles
    rows = len(np.unique(origins[0][1][candidates] // patches.CHUNK))
    return max(1, -(-rows // (max(1, workers) * WINDOWS_PER_WORKER)))


def part_name(staged: str, index: int) -> str:
    stem = os.path.splitext(os.path.basename(staged))[0]
    return os.path.join(os.path.dirname(staged), f"{PART_PREFIX}{stem}-{index:06d}.tif")


def extract_task(job: ExtractJob) -> ExtractResult:
    """One window of Extract patches, on a Dask worker: its part patches-images, renamed when complete."""
    from ...declarations import OPERATIONS
    from ..data.extraction import _sources_from
    from ..data.patches import PatchesImageWriter, extract_chunks
    from ..reporting import Reporter
    from .tasks import prepare_worker, remove_file

    prepare_worker()
    params = Params(job.values, job.labels, OPERATIONS["extract_patches"])
    writing = [writing_path(part) for part in job.parts]
    try:
        if not os.path.isdir(os.path.dirname(job.parts[0])):
            raise PatchFlowError(f"the run's staging folder {os.path.dirname(job.parts[0])} is gone (the run was "
                                 "cancelled or failed); this window is not written.", "OUTPUT")
        sources = _sources_from(params)
        count = len(job.origins[0][0])
        writers = [PatchesImageWriter(path, count, s.stack.band_count, s.patch_size, s.stack.dtype)
                   for path, s in zip(writing, sources)]
        stats = [BandStats(s.stack.band_count, s.stack.nodata) for s in sources]
        chunks = np.split(np.arange(count), job.starts) if count else []
        done = extract_chunks(sources, job.origins, chunks, job.class_ids, writers, stats,
                              params.boolean("SKIP_NODATA"), Reporter(), lambda: False)
        for writer, source in zip(writers, sources):
            writer.close([b.description for b in source.stack.bands], source.stack.nodata)
        for attempt, part in zip(writing, job.parts):
            os.replace(attempt, part)
    except PatchFlowError as exc:
        for attempt in writing:
            remove_file(attempt)
        return ExtractResult(job.index, error=(exc.message, exc.parameter))
    except BaseException:
        for attempt in writing:
            remove_file(attempt)
        raise
    return ExtractResult(job.index, writers[0].written, done.dropped_nodata,
                         [(s.count, s.total, s.squares, s.low, s.high, s.nonfinite) for s in stats],
                         done.label_counts, done.class_ids, done.centres)


def merge_stats(stats: BandStats, arrays: StatArrays) -> None:
    """A window's band statistics added to the run's."""
    count, total, squares, low, high, nonfinite = arrays
    stats.count, stats.total, stats.squares = stats.count + count, stats.total + total, stats.squares + squares
    stats.low, stats.high = np.minimum(stats.low, low), np.maximum(stats.high, high)
    stats.nonfinite = stats.nonfinite + nonfinite


def join_patches(source: Source, staged: str, results: list[ExtractResult], jobs: list[ExtractJob],
                 which: int) -> None:
    """The patches-image of ``source`` at ``staged``: the windows' parts stacked in window order, with the
    one-process run's creation options, band names and nodata; the parts removed."""
    p, stack = source.patch_size, source.stack
    parts: list[tuple[str, tuple[int, int, int, int]]] = []
    offset = 0
    for result, job in zip(results, jobs):
        if result.kept:
            parts.append((job.parts[which], (0, offset * p, p, result.kept * p)))
            offset += result.kept
    if not parts:  # nothing kept: the run fails (extraction._check_result)
        remove_parts(staged)
        return
    nodata = stack.nodata
    common = nodata[0] if len(set(map(str, nodata))) == 1 else None

    def describe(ds: gdal.Dataset) -> None:  # as PatchesImageWriter.close
        for index, band in enumerate(stack.bands, start=1):
            ds.GetRasterBand(index).SetDescription(band.description)
            if common is not None:
                ds.GetRasterBand(index).SetNoDataValue(common)

    joined = join_rasters(parts, staged, (p, offset * p), stack.band_count, numpy_to_gdal_type(stack.dtype), None,
                          "", creation_options(strip_rows=p), describe)
    joined = None  # noqa: F841 - closed: complete on disk


def extract_on_dask(params: Params, context: RunContext, execution: Execution, sources: list[Source],
                    xs: np.ndarray, ys: np.ndarray, class_ids: np.ndarray | None, staged: list[str],
                    staged_labels: str | None) -> Extraction:
    """``patches.extract`` window by window on Dask: the same patches-images, labels image and statistics."""
    from ..data.patches import write_labels_image

    origins, fits, candidates = patches.candidates_of(sources, xs, ys)
    reporter = context.reporter
    results: list[ExtractResult] = []
    jobs: list[ExtractJob] = []
    with dask_client(execution, reporter) as client:
        workers = max(execution.workers, len(client.scheduler_info(n_workers=-1).get("workers", {})))
        per_window = rows_per_window(origins, candidates, params.integer("WINDOW_TILES"), workers)
        for index, window in enumerate(row_windows(origins, candidates, per_window)):
            chunks = patches.split_chunks(origins, window)
            starts = np.cumsum([len(chunk) for chunk in chunks])[:-1].tolist()
            jobs.append(ExtractJob(dict(params.values), dict(params.labels), index,
                                   [(cols[window], rows[window]) for cols, rows in origins], starts,
                                   None if class_ids is None else class_ids[window],
                                   [part_name(path, index) for path in staged]))
        address = describe_run(client, execution, len(jobs), reporter)
        by_index = {result.index: result for result in run_windows(client, extract_task, jobs, context, address)}
    results = [by_index[job.index] for job in jobs]
    reporter.stage(f"joining the parts of {len(jobs)} window(s)", log=True)
    stats = [BandStats(s.stack.band_count, s.stack.nodata) for s in sources]
    label_counts: dict[int, int] = {}
    for result in results:
        for stat, arrays in zip(stats, result.stats):
            merge_stats(stat, arrays)
        for value, number in result.label_counts.items():
            label_counts[value] = label_counts.get(value, 0) + number
    for which, (source, path) in enumerate(zip(sources, staged)):
        join_patches(source, path, results, jobs, which)
    kept_ids = np.concatenate([r.class_ids for r in results]) if results else np.empty(0, np.int64)
    if staged_labels is not None and class_ids is not None:
        write_labels_image(staged_labels, kept_ids)
    centres = np.concatenate([r.centres for r in results]) if results else np.empty((0, 2))
    return Extraction(len(xs), sum(r.kept for r in results), int((~fits).sum()),
                      sum(r.dropped_nodata for r in results), stats, kept_ids, label_counts, centres)
