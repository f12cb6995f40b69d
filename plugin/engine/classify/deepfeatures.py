"""OTBTF's ImageClassifierFromDeepFeatures and the per-pixel baseline (``classify``): a raster
classified with a classifier ``train_classifier`` wrote, block by block. Every output pixel gets
the features of the patch centred on it (start = pixel - p // 2, as extraction does), the scene
edges padded by reflection; nodata neighbours are filled with the band means (NaN for the
contextual features: left out of their neighbourhood means and deviations). The features
(features.py), the labelled datasets (labelled.py), the classifier file (classifierfile.py) and
the training (trainclassifier.py) have their own modules; their names used from here are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from osgeo import gdal

from ..errors import Cancelled, PatchFlowError
from ..geodata.geotiff import class_map_encoding, create_geotiff, creation_options
from ..geodata.raster import RasterStack, block_windows
from ..params import Params, RunContext
from ..report.rasterstyle import set_class_table, sidecar_path, write_class_qml
from ..scale.execution import execution_of
from .classifierfile import SKOPS_TYPES, is_skops, load_classifier, load_estimator
from .features import DEEP, PIXELS, FeatureExtractor, deep_extractor, reload_extractor
from .labelled import dataset_features, load_dataset
from .multisource import BlockPatches, extra_sources
from .trainclassifier import CLASSIFIERS

__all__ = [  # run_classify, and the names of the other modules used from here
    "CLASSIFIERS", "CONFIDENCE_NODATA", "DEEP", "PIXELS", "SKOPS_TYPES", "FeatureExtractor", "class_map_encoding",
    "dataset_features", "deep_extractor", "is_skops", "load_dataset", "load_estimator", "run_classify",
]

CHUNK_PIXELS = 4096  # output pixels whose patches are built and run through the network at once
PIXEL_CHUNK = 1 << 16  # output pixels classified at once, per-pixel classifier
PIXEL_BLOCK = 1 << 20  # output pixels per block, per-pixel classifier
DEEP_BLOCK = 256 * 256  # output pixels per block, deep features
GTIFF_OPTIONS = creation_options(tiled=True, deflate=True)
CONFIDENCE_NODATA = -1.0
BLOCKS_START = 8.0  # progress when the first block starts (after loading the classifier and its network)


def _create(path: str, stack: RasterStack, dtype: np.dtype, nodata: float, description: str,
            parameter: str) -> gdal.Dataset:
    grid = stack.grid
    ds = create_geotiff(path, grid.width, grid.height, 1, dtype, GTIFF_OPTIONS, parameter, grid.geotransform,
                        grid.crs_wkt)
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(nodata)
    band.SetDescription(description)
    return ds


def padded_block(stack: RasterStack, window: tuple[int, int, int, int], patch_size: int) -> np.ndarray:
    """The window with p // 2 pixels before and p - 1 - p // 2 after on each axis, (rows, cols, bands);
    what lies outside the scene is mirrored from inside (reflection, edge pixel not repeated)."""
    xoff, yoff, width, height = window
    before, after = patch_size // 2, patch_size - 1 - patch_size // 2
    grid = stack.grid
    x0, y0 = max(0, xoff - before), max(0, yoff - before)
    x1, y1 = min(grid.width, xoff + width + after), min(grid.height, yoff + height + after)
    values = stack.read((x0, y0, x1 - x0, y1 - y0))
    pads = ((0, 0), (y0 - (yoff - before), yoff + height + after - y1),
            (x0 - (xoff - before), xoff + width + after - x1))
    if any(p for pair in pads for p in pair):
        values = np.pad(values, pads, mode="reflect")
    return values


def classify_block(values: np.ndarray, invalid: np.ndarray, extractor: FeatureExtractor, classifier,
                   with_confidence: bool, cancelled: Callable[[], bool] = lambda: False,
                   others: Sequence[BlockPatches] = ()) -> tuple[np.ndarray, np.ndarray | None]:
    """Classes (and max probabilities) of the valid pixels of a block: ``values`` is the padded block
    (bands, rows + p - 1, cols + p - 1), ``invalid`` the (rows, cols) pixels to skip, ``others`` the
    other sources' patches of a multi-input model (multisource.py)."""
    from numpy.lib.stride_tricks import sliding_window_view

    p = extractor.patch_size
    # (bands, rows, cols, p, p); numpy 1.26's stub takes one axis only
    windows = sliding_window_view(values, (p, p), axis=(1, 2))  # type: ignore[call-overload]
    cols = invalid.shape[1]
    flat = np.flatnonzero(~invalid)
    classes, confidence = [], []
    step = CHUNK_PIXELS if p > 1 else PIXEL_CHUNK
    for start in range(0, len(flat), step):
        if cancelled():
            raise Cancelled()
        index = flat[start:start + step]
        patches = windows[:, index // cols, index % cols].transpose(1, 2, 3, 0)  # (n, p, p, bands)
        features = extractor.from_patches(patches, [other.patches(index) for other in others])
        if with_confidence:
            probabilities = classifier.predict_proba(features)
            classes.append(np.asarray(classifier.classes_)[probabilities.argmax(axis=1)])
            confidence.append(probabilities.max(axis=1).astype(np.float32))
        else:
            classes.append(classifier.predict(features))
    empty = np.empty(0)
    return (np.concatenate(classes) if classes else empty,
            (np.concatenate(confidence) if confidence else empty) if with_confidence else None)


@dataclass
class ClassifiedWindow:
    classes: np.ndarray  # (rows, cols) class ids, nodata where nothing was classified
    confidence: np.ndarray | None  # (rows, cols) highest probabilities, CONFIDENCE_NODATA there
    labels: np.ndarray  # the classes of the classified pixels
    uncovered: int  # pixels of INPUT that INPUT2 / INPUT3 do not feed


def classify_window(stack: RasterStack, window: tuple[int, int, int, int], extractor: FeatureExtractor, classifier,
                    extras: Sequence, with_confidence: bool, dtype: np.dtype, nodata: float,
                    cancelled: Callable[[], bool] = lambda: False) -> ClassifiedWindow:
    """One block of Classify, read, classified and encoded (this process's loop, and a Dask window's)."""
    xoff, yoff, width, height = window
    p = extractor.patch_size
    values = padded_block(stack, window, p)
    missing = stack.nodata_mask(values)
    invalid = missing[p // 2:p // 2 + height, p // 2:p // 2 + width]
    if missing.any() and p > 1:
        values = np.where(missing[np.newaxis], extractor.fill_value()[:, None, None], values.astype(np.float32))
    others = [extra.block(stack, window) for extra in extras]
    uncovered = 0
    for other in others:
        uncovered += int((other.invalid & ~invalid).sum())
        invalid = invalid | other.invalid
    labels, confidence = classify_block(values, invalid, extractor, classifier, with_confidence, cancelled, others)
    class_block = np.full((height, width), nodata, dtype=dtype)
    class_block[~invalid] = labels
    confidence_block = None
    if with_confidence:
        confidence_block = np.full((height, width), CONFIDENCE_NODATA, dtype=np.float32)
        confidence_block[~invalid] = confidence
    return ClassifiedWindow(class_block, confidence_block, labels, uncovered)


def class_counts(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """How many of ``labels`` are each of the (sorted) class ``ids``."""
    if not len(labels):
        return np.zeros(len(ids), dtype=np.int64)
    return np.bincount(np.searchsorted(ids, labels), minlength=len(ids))[:len(ids)]


def run_classify(params: Params, context: RunContext) -> dict:
    """Classify a raster, block by block, with a classifier trained by run_train_classifier (in this process,
    or its blocks on Dask: scale/classifying.py)."""
    from .. import checks
    from ..scale.classifying import classify_on_dask

    checks.writable(params, "OUTPUT", "OUTPUT_CONFIDENCE")
    checks.rasters(params, "INPUT", "INPUT2", "INPUT3", reporter=context.reporter)
    checks.input_against_classifier(params, checks.classifier_description(params.values.get("CLASSIFIER")))
    execution = execution_of(params)  # checked before loading anything
    classifier_path = params.string("CLASSIFIER")
    trusted = params.boolean("TRUST_MODEL")
    context.reporter.stage(f"loading the classifier {classifier_path}", 1, 3)
    classifier, description = load_classifier(classifier_path, "CLASSIFIER", trusted, context.reporter)
    stack = RasterStack(params.paths("INPUT"), "INPUT")
    output = params.string("OUTPUT")
    confidence_path = params.string("OUTPUT_CONFIDENCE")
    bands = int(description["bands"])
    if stack.band_count != bands:
        names = ", ".join(description.get("band_descriptions") or [])
        raise PatchFlowError(f"the classifier was trained on {bands} bands ({names}) but the input has "
                             f"{stack.band_count}. Give the same bands, stacked in the same order.", "INPUT")
    if description.get("model"):
        context.reporter.stage(f"loading the network {description['model']} (deep features)", 3, BLOCKS_START)
    extractor = reload_extractor(description, "CLASSIFIER", trusted, context.reporter)
    extras = extra_sources(params, description, extractor)  # INPUT2, INPUT3 of a multi-input model
    if min(stack.grid.width, stack.grid.height) < 2 and extractor.patch_size > 1:
        raise PatchFlowError("the input is less than 2 pixels wide or high; patches cannot be mirrored at its "
                             "edges.", "INPUT")
    classes = description["classes"]
    dtype, nodata = class_map_encoding([c["id"] for c in classes])
    staged = context.staging.stage(output, "OUTPUT")
    staged_qml = context.staging.stage(sidecar_path(output), "OUTPUT")
    staged_confidence = context.staging.stage(confidence_path, "OUTPUT_CONFIDENCE") if confidence_path else None
    block = stack.datasets[0].GetRasterBand(1).GetBlockSize()
    windows = list(block_windows(stack.grid.width, stack.grid.height, block,
                                 PIXEL_BLOCK if extractor.kind == PIXELS else DEEP_BLOCK))
    if execution.distributed:  # runs of these blocks on Dask workers, joined into both outputs
        counts, uncovered = classify_on_dask(
            params, context, execution, description, stack, windows, dtype, nodata, staged, staged_confidence,
            lambda ds: describe(ds, nodata, "class", classes), lambda ds: describe(ds, CONFIDENCE_NODATA, "confidence"))
        return finish(context, staged_qml, classes, counts, uncovered, extras, str(output), confidence_path)
    class_ds = _create(staged, stack, dtype, nodata, "class", "OUTPUT")
    confidence_ds = (_create(staged_confidence, stack, np.dtype(np.float32), CONFIDENCE_NODATA, "confidence",
                             "OUTPUT_CONFIDENCE")
                     if staged_confidence else None)
    counts = np.zeros(len(classes), dtype=np.int64)
    ids = np.asarray([c["id"] for c in classes])
    uncovered = 0  # INPUT's pixels that INPUT2 / INPUT3 do not feed (centre outside them, or nodata)
    for done, window in enumerate(windows):
        if context.cancelled():
            raise Cancelled()
        found = classify_window(stack, window, extractor, classifier, extras, confidence_ds is not None, dtype,
                                nodata, context.cancelled)
        class_ds.GetRasterBand(1).WriteArray(found.classes, window[0], window[1])
        counts += class_counts(found.labels, ids)
        uncovered += found.uncovered
        if confidence_ds is not None:
            confidence_ds.GetRasterBand(1).WriteArray(found.confidence, window[0], window[1])
        context.reporter.stage(f"blocks {done + 1}/{len(windows)}",
                               BLOCKS_START + (99.0 - BLOCKS_START) * (done + 1) / len(windows), log=False)
    set_class_table(class_ds.GetRasterBand(1), classes)
    class_ds = None
    confidence_ds = None
    return finish(context, staged_qml, classes, counts, uncovered, extras, str(output), confidence_path)


def describe(ds: gdal.Dataset, nodata: float, name: str, classes: list[dict] | None = None) -> None:
    """An output's band as this process writes it: nodata, name, the classes' colour table."""
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(nodata)
    band.SetDescription(name)
    if classes is not None:
        set_class_table(band, classes)


def finish(context: RunContext, staged_qml: str, classes: list[dict], counts: np.ndarray, uncovered: int,
           extras: Sequence, output: str, confidence_path: str | None) -> dict:
    """The style, the warnings and logs, the result."""
    write_class_qml(staged_qml, classes)
    total = int(counts.sum())
    if uncovered:
        names = ", ".join(extra.parameter for extra in extras)
        context.reporter.warning(f"{uncovered} pixels of INPUT are left nodata: {names} has no data under them "
                                 "(they lie outside it, or on its nodata).")
    for info, count in zip(classes, counts):
        context.reporter.log(f"{info['id']} {info['name']}: {int(count)} px ({100.0 * count / max(1, total):.1f} %)")
    context.reporter.progress(100)
    return {"OUTPUT": output, "OUTPUT_CONFIDENCE": confidence_path, "STYLE": sidecar_path(output),
            "CLASSES": classes, "COUNT": total}
