"""Classify on Dask: the one-process run's blocks grouped into windows (runs of whole blocks along a row of
blocks, so every block is classified exactly as in one process), one task per window that verifies the
classifier's files (and its network's) hash as they did on the client, loads them through their gates, classifies
its blocks (classify.deepfeatures.classify_window) into part files of the class map and the confidence, and
returns its per-class counts; the client joins the parts into both outputs once all windows are done."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import PatchFlowError
from ..geodata.geotiff import create_geotiff
from ..geodata.raster import RasterStack, numpy_to_gdal_type
from ..params import Params, RunContext
from .dispatch import describe_run, run_windows
from .execution import Execution, dask_client
from .parts import PART_OPTIONS, PART_PREFIX, join_rasters, writing_path

BLOCKS_PER_WINDOW = 4  # WINDOW_TILES 0: blocks a window, along a row of blocks
Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class ClassifyJob:
    values: dict
    labels: dict
    digests: dict[str, str]  # each file the classifier needs (it, its description, its network) and its SHA-256
    index: int
    rect: Rect  # the window, in INPUT's pixels
    blocks: list[Rect]  # the one-process run's blocks in it
    dtype: str
    nodata: float
    parts: tuple[str, str | None]  # the class map's part, the confidence's (or None)


@dataclass
class ClassifyResult:
    index: int
    counts: list[int] = field(default_factory=list)
    uncovered: int = 0
    error: tuple[str, str | None] | None = None


def group_blocks(blocks: list[Rect], per_window: int) -> list[tuple[Rect, list[Rect]]]:
    """Runs of ``per_window`` blocks along each row of blocks, as (the run's rectangle, its blocks)."""
    rows: dict[int, list[Rect]] = {}
    for block in blocks:
        rows.setdefault(block[1], []).append(block)
    found = []
    for row in rows.values():
        for start in range(0, len(row), per_window):
            run = row[start:start + per_window]
            x0, y0 = run[0][0], run[0][1]
            found.append(((x0, y0, run[-1][0] + run[-1][2] - x0, run[0][3]), run))
    return found


def files_of(params: Params, description: dict) -> list[str]:
    """The classifier, its description and (deep features) its network's files: what each worker must find unchanged."""
    classifier = params.string("CLASSIFIER") or ""
    files = [classifier, os.path.splitext(classifier)[0] + ".json"]
    if description.get("model"):
        files.append(description["model"])
    return files


def classify_task(job: ClassifyJob) -> ClassifyResult:
    """One window of Classify, on a Dask worker."""
    from ...declarations import OPERATIONS
    from ..classify.classifierfile import load_classifier
    from ..classify.deepfeatures import class_counts, classify_window
    from ..classify.features import reload_extractor
    from ..classify.multisource import extra_sources
    from ..models.modeldigest import verify_digest
    from ..reporting import Reporter
    from .tasks import prepare_worker, remove_file

    prepare_worker()
    params = Params(job.values, job.labels, OPERATIONS["classify"])
    writing = [writing_path(part) if part else None for part in job.parts]
    try:
        for path, digest in job.digests.items():
            verify_digest(path, digest, "CLASSIFIER")
        trusted, reporter = params.boolean("TRUST_MODEL"), Reporter()
        classifier, description = load_classifier(params.string("CLASSIFIER"), "CLASSIFIER", trusted, reporter)
        extractor = reload_extractor(description, "CLASSIFIER", trusted, reporter)
        extras = extra_sources(params, description, extractor)
        stack = RasterStack(params.paths("INPUT"), "INPUT")
        x0, y0, width, height = job.rect
        grid = stack.grid
        transform = (grid.x0 + x0 * grid.dx, grid.dx, 0.0, grid.y0 + y0 * grid.dy, 0.0, grid.dy)
        classes_part = create_geotiff(writing[0] or "", width, height, 1, np.dtype(job.dtype), PART_OPTIONS, "OUTPUT",
                                      transform, grid.crs_wkt)
        confidence_part = (create_geotiff(writing[1], width, height, 1, np.dtype(np.float32), PART_OPTIONS,
                                          "OUTPUT_CONFIDENCE", transform, grid.crs_wkt) if writing[1] else None)
        ids = np.asarray([c["id"] for c in description["classes"]])
        counts = np.zeros(len(ids), dtype=np.int64)
        uncovered = 0
        for block in job.blocks:
            found = classify_window(stack, block, extractor, classifier, extras, confidence_part is not None,
                                    np.dtype(job.dtype), job.nodata)
            classes_part.GetRasterBand(1).WriteArray(found.classes, block[0] - x0, block[1] - y0)
            if confidence_part is not None:
                confidence_part.GetRasterBand(1).WriteArray(found.confidence, block[0] - x0, block[1] - y0)
            counts += class_counts(found.labels, ids)
            uncovered += found.uncovered
        classes_part = confidence_part = None  # closed: complete on disk
        for attempt, part in zip(writing, job.parts):
            if attempt and part:
                os.replace(attempt, part)
    except PatchFlowError as exc:
        for attempt in writing:
            if attempt:
                remove_file(attempt)
        return ClassifyResult(job.index, error=(exc.message, exc.parameter))
    return ClassifyResult(job.index, [int(c) for c in counts], uncovered)


def classify_on_dask(params: Params, context: RunContext, execution: Execution, description: dict,
                     stack: RasterStack, blocks: list[Rect], dtype: np.dtype, nodata: float, staged: str,
                     staged_confidence: str | None, describe_class, describe_confidence) -> tuple[np.ndarray, int]:
    """Classify's outputs (staged at ``staged``, ``staged_confidence``) window by window on Dask; (counts per
    class, pixels INPUT2 / INPUT3 do not feed). ``describe_*``: each output's band name, nodata, classes."""
    from ..classify.deepfeatures import GTIFF_OPTIONS
    from ..models.modeldigest import model_digest

    digests = {path: model_digest(path, "CLASSIFIER") for path in files_of(params, description)}
    found = group_blocks(blocks, params.integer("WINDOW_TILES") or BLOCKS_PER_WINDOW)

    def part(path: str | None, index: int) -> str | None:
        if not path:
            return None
        return os.path.join(os.path.dirname(path), f"{PART_PREFIX}{os.path.splitext(os.path.basename(path))[0]}-"
                                                   f"{index:06d}.tif")

    jobs = [ClassifyJob(dict(params.values), dict(params.labels), digests, i, rect, run, np.dtype(dtype).name,
                        float(nodata), (part(staged, i), part(staged_confidence, i)))  # type: ignore[arg-type]
            for i, (rect, run) in enumerate(found)]
    counts = np.zeros(len(description["classes"]), dtype=np.int64)
    uncovered = 0
    with dask_client(execution, context.reporter) as client:
        address = describe_run(client, execution, len(jobs), context.reporter)
        for result in run_windows(client, classify_task, jobs, context, address):
            counts += np.asarray(result.counts, dtype=np.int64)
            uncovered += result.uncovered
    grid = stack.grid
    size = (grid.width, grid.height)
    for path, which, gdal_dtype, describe in ((staged, 0, numpy_to_gdal_type(np.dtype(dtype)), describe_class),
                                              (staged_confidence, 1, numpy_to_gdal_type(np.dtype(np.float32)),
                                               describe_confidence)):
        if path:
            parts = [(job.parts[which], job.rect) for job in jobs]
            join_rasters(parts, path, size, 1, gdal_dtype, grid.geotransform, grid.crs_wkt,  # type: ignore[arg-type]
                         GTIFF_OPTIONS, describe)
    return counts, uncovered
