"""Sample selection: which pixels become training samples, chosen per class from a label grid.

Both label rasters and rasterized vectors are read window by window, twice: a first pass counts
the pixels of each class, a second pass keeps exactly the randomly drawn ordinals. Memory grows
with the number of samples kept, never with the raster.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from osgeo import gdal, ogr

from ..errors import Cancelled, PatchFlowError
from ..geodata.raster import Grid, RasterStack, Window, block_windows, nodata_mask
from ..params import Params, RunContext
from ..report.pointstyle import write_point_style
from ..reporting import Reporter

STRATEGIES = ("constant", "all", "smallest", "total")
NO_CLASS = np.iinfo(np.int32).min


class LabelSource(Protocol):
    grid: Grid

    def windows(self) -> list[Window]: ...

    def read(self, window: Window) -> np.ndarray:
        """Class ids (int64) of the window; NO_CLASS where there is none."""
        ...


class RasterLabels:
    """Class ids from one band of a label raster; ``nodata`` pixels have no class."""

    def __init__(self, ds: gdal.Dataset, band_index: int, nodata: float | None, parameter: str) -> None:
        if not 1 <= band_index <= ds.RasterCount:
            raise PatchFlowError(f"band {band_index} does not exist; the raster has {ds.RasterCount}.", parameter)
        self.band = ds.GetRasterBand(band_index)
        self.nodata = nodata
        self.grid = Grid.of(ds, parameter)

    def windows(self) -> list[Window]:
        return list(block_windows(self.grid.width, self.grid.height, self.band.GetBlockSize()))

    def read(self, window: Window) -> np.ndarray:
        values = self.band.ReadAsArray(*window)
        missing = nodata_mask(values, self.nodata)  # NaN and infinity included
        labels = (np.where(missing, 0, values) if missing.any() else values).astype(np.int64)
        labels[missing] = NO_CLASS
        return labels


class VectorLabels:
    """Class ids burnt from polygons or points onto a raster grid, one window at a time; with an
    ``image``, pixels where any of its bands is nodata (its value, NaN or infinity) have no class."""

    def __init__(self, layer: ogr.Layer, grid: Grid, owner: ogr.DataSource | None = None,
                 image: RasterStack | None = None) -> None:
        self.owner = owner  # the layer dies with its data source
        self.layer = layer
        self.grid = grid
        self.image = image if image is not None and image.may_hold_nodata else None
        xmin, xmax, ymin, ymax = layer.GetExtent()
        col0, row0 = grid.fractional_pixel(np.array([xmin, xmax]), np.array([ymax, ymin]))
        self.cols = (max(0, int(np.floor(min(col0))) - 1), min(grid.width, int(np.ceil(max(col0))) + 1))
        self.rows = (max(0, int(np.floor(min(row0))) - 1), min(grid.height, int(np.ceil(max(row0))) + 1))

    def windows(self) -> list[Window]:
        (c0, c1), (r0, r1) = self.cols, self.rows
        if c1 <= c0 or r1 <= r0:
            return []
        return [(x + c0, y + r0, w, h) for x, y, w, h in block_windows(c1 - c0, r1 - r0, (512, 512))]

    def read(self, window: Window) -> np.ndarray:
        xoff, yoff, xsize, ysize = window
        target = gdal.GetDriverByName("MEM").Create("", xsize, ysize, 1, gdal.GDT_Int32)
        target.SetGeoTransform(self.grid.window_geotransform(window))
        target.SetProjection(self.grid.crs_wkt)
        target.GetRasterBand(1).Fill(int(NO_CLASS))
        gt = target.GetGeoTransform()
        self.layer.SetSpatialFilterRect(gt[0], gt[3] + ysize * gt[5], gt[0] + xsize * gt[1], gt[3])
        gdal.RasterizeLayer(target, [1], self.layer, options=["ATTRIBUTE=pf_class"])
        self.layer.SetSpatialFilter(None)
        labels = target.ReadAsArray().astype(np.int64)
        if self.image is not None and (labels != NO_CLASS).any():
            labels[self.image.nodata_mask(self.image.read(window))] = NO_CLASS
        return labels


def valid_pixel_range(size: int, patch_size: int) -> tuple[int, int]:
    """First and last pixel index whose patch (start = index - patch_size // 2) fits in ``size``."""
    return patch_size // 2, size - patch_size + patch_size // 2


def _labelled_pixels(source: LabelSource, window: Window, patch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (row-major within the window) and class ids of labelled pixels whose patch fits."""
    labels = source.read(window)
    xoff, yoff, xsize, ysize = window
    lo_c, hi_c = valid_pixel_range(source.grid.width, patch_size)
    lo_r, hi_r = valid_pixel_range(source.grid.height, patch_size)
    cols = np.arange(xoff, xoff + xsize)
    rows = np.arange(yoff, yoff + ysize)
    fits = ((rows >= lo_r) & (rows <= hi_r))[:, None] & ((cols >= lo_c) & (cols <= hi_c))[None, :]
    flat = np.flatnonzero(fits & (labels != NO_CLASS))
    return flat, labels.ravel()[flat]


def _grouped(flat: np.ndarray, labels: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(class id, flat indices in raster order) for each class present."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    classes, starts = np.unique(sorted_labels, return_index=True)
    ends = np.append(starts[1:], len(order))
    for class_id, start, end in zip(classes, starts, ends):
        yield int(class_id), flat[order[start:end]]


def count_classes(source: LabelSource, patch_size: int, reporter: Reporter,
                  cancelled: Callable[[], bool] = lambda: False) -> dict[int, int]:
    counts: dict[int, int] = {}
    windows = source.windows()
    reporter.stage("counting the labelled pixels of each class", 0)
    for index, window in enumerate(windows):
        if cancelled():
            raise Cancelled()
        flat, labels = _labelled_pixels(source, window, patch_size)
        values, n = np.unique(labels, return_counts=True)
        for value, count in zip(values, n):
            counts[int(value)] = counts.get(int(value), 0) + int(count)
        reporter.stage(f"counting: windows {index + 1}/{len(windows)}", 100.0 * (index + 1) / len(windows), log=False)
    return dict(sorted(counts.items()))


def targets_for(strategy: str, counts: dict[int, int], number: int, parameter: str) -> dict[int, int]:
    """How many samples to draw per class."""
    if strategy == "all":
        return dict(counts)
    if strategy == "smallest":
        smallest = min(counts.values())
        return {c: smallest for c in counts}
    if number <= 0:
        raise PatchFlowError(f"the number of samples must be positive for strategy '{strategy}'.", parameter)
    if strategy == "constant":
        return {c: min(number, n) for c, n in counts.items()}
    if strategy == "total":
        total = sum(counts.values())
        exact = {c: min(number, total) * n / total for c, n in counts.items()}
        result = {c: int(np.floor(v)) for c, v in exact.items()}
        short = min(number, total) - sum(result.values())
        for c in sorted(exact, key=lambda c: exact[c] - result[c], reverse=True)[:short]:
            result[c] += 1
        return result
    raise PatchFlowError(f"unknown strategy '{strategy}'; use one of {', '.join(STRATEGIES)}.", "STRATEGY")


@dataclass
class Samples:
    cols: np.ndarray
    rows: np.ndarray
    class_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.cols)


def draw(
    source: LabelSource,
    counts: dict[int, int],
    targets: dict[int, int],
    patch_size: int,
    seed: int,
    reporter: Reporter,
    cancelled: Callable[[], bool] = lambda: False,
) -> Samples:
    """Keep exactly ``targets[c]`` randomly chosen labelled pixels of each class, in raster order."""
    rng = np.random.default_rng(seed)
    chosen = {
        c: (None if targets[c] >= counts[c] else np.sort(rng.choice(counts[c], targets[c], replace=False)))
        for c in counts
        if targets.get(c, 0) > 0
    }
    seen = dict.fromkeys(counts, 0)
    cols, rows, classes = [], [], []
    windows = source.windows()
    reporter.stage("drawing the samples", 0)
    for index, window in enumerate(windows):
        if cancelled():
            raise Cancelled()
        flat, labels = _labelled_pixels(source, window, patch_size)
        xoff, yoff, xsize, _ = window
        for class_id, positions in _grouped(flat, labels):
            start = seen[class_id]
            seen[class_id] += len(positions)
            if class_id not in chosen:
                continue
            picks = chosen[class_id]
            if picks is not None:
                lo, hi = np.searchsorted(picks, [start, start + len(positions)])
                positions = positions[picks[lo:hi] - start]
            cols.append(xoff + positions % xsize)
            rows.append(yoff + positions // xsize)
            classes.append(np.full(len(positions), class_id, dtype=np.int64))
        reporter.stage(f"drawing: windows {index + 1}/{len(windows)}", 100.0 * (index + 1) / len(windows), log=False)
    if not cols:
        return Samples(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64))
    samples = Samples(np.concatenate(cols), np.concatenate(rows), np.concatenate(classes))
    order = np.lexsort((samples.cols, samples.rows))
    return Samples(samples.cols[order], samples.rows[order], samples.class_ids[order])


def thin(samples: Samples, grid: Grid, min_distance: float, targets: dict[int, int], seed: int) -> Samples:
    """Greedy, random-order thinning: no two kept samples closer than ``min_distance`` (map units)."""
    rng = np.random.default_rng(seed + 1)
    xs, ys = grid.pixel_centres(samples.cols, samples.rows)
    cells: dict[tuple[int, int], list[int]] = {}
    kept_per_class = dict.fromkeys(targets, 0)
    keep = np.zeros(len(samples), dtype=bool)
    limit = min_distance * min_distance
    for i in rng.permutation(len(samples)):
        class_id = int(samples.class_ids[i])
        if kept_per_class.get(class_id, 0) >= targets.get(class_id, 0):
            continue
        cx, cy = int(xs[i] // min_distance), int(ys[i] // min_distance)
        near = (
            j
            for gx in (cx - 1, cx, cx + 1)
            for gy in (cy - 1, cy, cy + 1)
            for j in cells.get((gx, gy), ())
        )
        if any((xs[j] - xs[i]) ** 2 + (ys[j] - ys[i]) ** 2 < limit for j in near):
            continue
        cells.setdefault((cx, cy), []).append(int(i))
        kept_per_class[class_id] += 1
        keep[i] = True
    return Samples(samples.cols[keep], samples.rows[keep], samples.class_ids[keep])


def select_samples(
    source: LabelSource,
    strategy: str,
    number: int,
    patch_size: int,
    seed: int,
    min_distance: float,
    reporter: Reporter,
    cancelled: Callable[[], bool] = lambda: False,
) -> tuple[Samples, dict[int, int], dict[int, int]]:
    """Count, decide per-class targets, draw (over-drawing when thinning), thin. Returns the samples,
    the class counts and the targets."""
    counts = count_classes(source, patch_size, reporter.span(0, 45), cancelled)
    if not counts:
        return Samples(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)), {}, {}
    targets = targets_for(strategy, counts, number, "NUMBER")
    drawn = targets
    if min_distance > 0:
        drawn = {c: min(counts[c], max(4 * n, n + 1000)) for c, n in targets.items()}
    samples = draw(source, counts, drawn, patch_size, seed, reporter.span(45, 95), cancelled)
    if min_distance > 0:
        reporter.stage(f"thinning {len(samples)} samples to {min_distance:g} apart", 95, 100)
        samples = thin(samples, source.grid, min_distance, targets, seed)
    return samples, counts, targets


# ---- operations -------------------------------------------------------------------------------


def _class_table(ids, known: dict) -> dict:
    from ..geodata.classes import complete

    return {info.id: info for info in complete(list(ids), known)}


def _write_samples(path: str, grid: Grid, samples: Samples, classes: dict, parameter: str,
                   reporter: Reporter) -> None:
    from ..geodata.vector import PointWriter

    writer = PointWriter(path, grid.crs_wkt, parameter)
    xs, ys = grid.pixel_centres(samples.cols, samples.rows)
    reporter.stage(f"writing the {len(samples)} points", 0)
    for start in range(0, len(samples), 50_000):
        part = slice(start, start + 50_000)
        writer.write(xs[part], ys[part], samples.class_ids[part], classes)
        done = min(len(samples), start + 50_000)
        reporter.stage(f"writing: points {done}/{len(samples)}", 100.0 * done / len(samples), log=False)
    writer.close()


def _report_selection(reporter: Reporter, counts: dict, targets: dict, samples: Samples, classes: dict) -> dict:
    kept = {int(c): int(n) for c, n in zip(*np.unique(samples.class_ids, return_counts=True))}
    reporter.log("class statistics (labelled pixels whose patch fits -> samples kept):")
    for class_id, count in counts.items():
        name = classes[class_id].name
        reporter.log(f"  {class_id} {name}: {count} -> {kept.get(class_id, 0)}")
        if kept.get(class_id, 0) < targets.get(class_id, 0):
            reporter.warning(f"class {class_id} ({name}): {kept.get(class_id, 0)} samples kept of "
                             f"{targets[class_id]} asked (minimum distance too large for its area).")
    return kept


def _select_and_write(source: LabelSource, params: Params, context: RunContext, known: dict, input_name: str) -> dict:
    strategy = params.choice("STRATEGY")
    number = params.integer("NUMBER")
    patch_size = params.integer("PATCH_SIZE")
    seed = params.integer("SEED")
    min_distance = params.number("MIN_DISTANCE")
    output = context.staging.stage(params.string("OUTPUT"), "OUTPUT")
    if patch_size > min(source.grid.width, source.grid.height):
        raise PatchFlowError(
            f"patch size {patch_size} is bigger than the raster ({source.grid.width}x{source.grid.height} px). "
            "Use a smaller patch size.", "PATCH_SIZE")
    samples, counts, targets = select_samples(
        source, strategy, number, patch_size, seed, min_distance, context.reporter.span(0, 90), context.cancelled
    )
    if not counts:
        raise PatchFlowError(
            f"no labelled pixel found (every pixel is nodata or too close to the edge for patch size "
            f"{patch_size}). Check the nodata value and the class field.", input_name)
    classes = _class_table(counts, known)
    for class_id, info in classes.items():
        info.count = counts[class_id]
    if strategy == "constant":
        for class_id, count in counts.items():
            if count < number:
                context.reporter.warning(
                    f"class {class_id} ({classes[class_id].name}) has only {count} pixels: all are taken.")
    kept = _report_selection(context.reporter, counts, targets, samples, classes)
    _write_samples(output, source.grid, samples, classes, "OUTPUT", context.reporter.span(90, 99))
    class_list = [dict(info.as_dict(), count=kept.get(info.id, 0)) for info in classes.values()]
    style = write_point_style(context.staging, params.string("OUTPUT"), class_list, "OUTPUT")
    context.reporter.progress(100)
    return {"OUTPUT": params.string("OUTPUT"), "COUNT": len(samples), "STYLE": style, "CLASSES": class_list}


def run_sample_label_raster(params: Params, context: RunContext) -> dict:
    """OTBTF LabelImageSampleSelection: samples drawn from a label raster."""
    from .. import checks
    from ..geodata.classes import classes_from_raster

    checks.writable(params, "OUTPUT")
    checks.rasters(params, "INPUT", reporter=context.reporter, labels={"INPUT": "BAND"})
    from ..geodata.raster import open_raster

    path = params.string("INPUT")
    ds = open_raster(path, "INPUT")
    band = params.integer("BAND")
    nodata = params.nodata("NODATA")
    if nodata is None:
        nodata = ds.GetRasterBand(band).GetNoDataValue() if band <= ds.RasterCount else None
    source = RasterLabels(ds, band, nodata, "BAND")
    context.reporter.stage(f"reading the label raster {os.path.basename(path)}, band {band}", 0)
    if source.band.DataType in (gdal.GDT_Float32, gdal.GDT_Float64):
        context.reporter.warning("the label raster is floating point: values are truncated to integer class ids.")
    return _select_and_write(source, params, context, classes_from_raster(path, band), "INPUT")


def run_sample_vector(params: Params, context: RunContext) -> dict:
    """OTB PolygonClassStatistics + SampleSelection: samples drawn inside polygons (or at points)."""
    from .. import checks
    from ..geodata.raster import same_crs

    checks.writable(params, "OUTPUT")
    checks.rasters(params, "RASTER", reporter=context.reporter)
    from ..geodata.vector import layer_crs_wkt, open_layer, resolve_class_field, transformer

    image = RasterStack([params.string("RASTER")], "RASTER")
    grid = image.grid
    _, layer = open_layer(params.string("INPUT"), "INPUT")
    class_field = resolve_class_field(layer, params.string("FIELD"), "FIELD", params.string("INPUT"))
    context.reporter.stage(f"reading the {layer.GetFeatureCount()} features of {layer.GetName()}", 0, 2)
    memory, burn_layer = _class_id_layer(
        layer, class_field, grid.crs_wkt, transformer(layer_crs_wkt(layer), grid.crs_wkt))
    if not layer_crs_wkt(layer) or not same_crs(layer_crs_wkt(layer), grid.crs_wkt):
        context.reporter.log("the vector layer is reprojected to the raster's CRS.")
    source = VectorLabels(burn_layer, grid, memory, image)  # no sample where the raster has no data
    if not source.windows():
        raise PatchFlowError("the layer does not overlap RASTER. Check both are over the same area.", "INPUT")
    result = _select_and_write(source, params, context, class_field.classes, "INPUT")
    result["CLASS_MAP"] = {str(k): v for k, v in class_field.ids.items()} if class_field.is_text else {}
    return result


def _class_id_layer(layer: ogr.Layer, class_field, crs_wkt: str, transform) -> tuple[ogr.DataSource, ogr.Layer]:
    """An in-memory copy of ``layer`` in the raster's CRS with the integer class id in ``pf_class``."""
    from osgeo import osr

    memory = ogr.GetDriverByName("Memory").CreateDataSource("")
    srs = None
    if crs_wkt:
        srs = osr.SpatialReference()
        srs.ImportFromWkt(crs_wkt)
    copy = memory.CreateLayer("labels", srs, layer.GetGeomType())
    copy.CreateField(ogr.FieldDefn("pf_class", ogr.OFTInteger))
    definition = copy.GetLayerDefn()
    layer.ResetReading()
    for feature in layer:
        value = feature.GetField(class_field.name)
        geometry = feature.GetGeometryRef()
        if value is None or geometry is None or (isinstance(value, str) and not value.strip()):
            continue
        geometry = geometry.Clone()
        if transform is not None:
            geometry.Transform(transform)
        out = ogr.Feature(definition)
        out.SetField("pf_class", class_field.id_of(value))
        out.SetGeometry(geometry)
        copy.CreateFeature(out)
    return memory, copy
