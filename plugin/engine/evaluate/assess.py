"""Assess accuracy: a class raster (a classification map) against reference points, polygons or a
label raster (of the map's pixel size, or finer or coarser: the finer one is then aggregated onto
the other's grid, evaluate/labelraster.py). Pairs (reference class, map class) are counted block by
block, so neither raster is ever held whole; the counts become a confusion matrix with OA, kappa
and per-class P/R/F1, written as CSV, a table (GeoPackage/CSV/GeoJSON without geometry) and a
self-contained HTML report."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from osgeo import gdal, ogr

from ..errors import Cancelled, PatchFlowError
from ..geodata.classes import ClassInfo, classes_from_raster, complete
from ..geodata.raster import Grid, Window, block_windows, crs_label, nodata_mask, open_raster
from ..geodata.vector import ClassField
from ..params import Params, RunContext
from ..report.tables import check_table_format, write_table
from ..reporting import Reporter
from .metrics import PairCounter, Scores, plot_confusion
from .pairs import PairLog, pairs_path


class MapBand:
    """The map's class values, window by window, with the mask of pixels that hold a class."""

    def __init__(self, ds: gdal.Dataset, band_index: int, parameter: str, band_parameter: str) -> None:
        if not 1 <= band_index <= ds.RasterCount:
            raise PatchFlowError(f"band {band_index} does not exist; the raster has {ds.RasterCount}.",
                                 band_parameter)
        self.ds = ds
        self.band = ds.GetRasterBand(band_index)
        self.nodata = self.band.GetNoDataValue()
        self.grid = Grid.of(ds, parameter)

    def windows(self) -> list[Window]:
        return list(block_windows(self.grid.width, self.grid.height, self.band.GetBlockSize()))

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        return classes_and_mask(self.band.ReadAsArray(*window), self.nodata)


def classes_and_mask(values: np.ndarray, nodata: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Integer class ids and where they are valid (not nodata, finite)."""
    valid = ~nodata_mask(values, nodata)
    if values.dtype.kind == "f":
        valid &= np.isfinite(values)
        values = np.where(valid, values, 0)
    return values.astype(np.int64), valid


@dataclass
class Tally:
    """The pairs counted, and the reference samples that gave none."""

    counter: PairCounter = field(default_factory=PairCounter)
    map_nodata: int = 0  # reference samples on a map pixel without a class
    outside: int = 0  # reference points outside the map
    pairs: PairLog | None = None  # every sample, where the pairs are written

    def add(self, reference: np.ndarray, predicted: np.ndarray, map_valid: np.ndarray,
            xy: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.counter.add(reference[map_valid], predicted[map_valid])
        self.map_nodata += int((~map_valid).sum())
        if self.pairs is not None and xy is not None:
            self.pairs.add(xy[0], xy[1], reference, predicted, map_valid)


def _centres(grid: Grid, window: Window, labelled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates of the centres of a window's labelled pixels (in boolean-index order)."""
    rows, cols = np.nonzero(labelled)
    return grid.pixel_centres(cols + window[0], rows + window[1])


def _check_cancel(cancelled: Callable[[], bool]) -> None:
    if cancelled():
        raise Cancelled()


# ---- points ---------------------------------------------------------------------------------


def tally_points(map_band: MapBand, cols: np.ndarray, rows: np.ndarray, classes: np.ndarray, reporter: Reporter,
                 cancelled: Callable[[], bool], tally: Tally | None = None,
                 xy: tuple[np.ndarray, np.ndarray] | None = None) -> Tally:
    """Map values at pixel (cols, rows), reading only the windows that hold points (at ``xy``)."""
    tally = tally or Tally()
    grid = map_band.grid
    inside = (cols >= 0) & (cols < grid.width) & (rows >= 0) & (rows < grid.height)
    tally.outside = int((~inside).sum())
    xs, ys = xy if xy is not None else (cols.astype(np.float64), rows.astype(np.float64))
    if tally.pairs is not None and xy is not None:
        none = np.zeros(tally.outside, dtype=bool)
        tally.pairs.add(xs[~inside], ys[~inside], classes[~inside], none.astype(np.int64), none)
    cols, rows, classes, xs, ys = cols[inside], rows[inside], classes[inside], xs[inside], ys[inside]
    windows = map_band.windows()
    if not len(cols) or not windows:
        return tally
    bx, by = windows[0][2], windows[0][3]
    keys = (rows // by) * (grid.width // bx + 1) + cols // bx
    order = np.argsort(keys, kind="stable")
    unique_keys, starts = np.unique(keys[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    for index, (start, end) in enumerate(zip(starts, ends)):
        _check_cancel(cancelled)
        chosen = order[start:end]
        x0, y0 = int(cols[chosen[0]] // bx * bx), int(rows[chosen[0]] // by * by)
        window = (x0, y0, min(bx, grid.width - x0), min(by, grid.height - y0))
        values, valid = map_band.read(window)
        r, c = rows[chosen] - y0, cols[chosen] - x0
        tally.add(classes[chosen], values[r, c], valid[r, c], (xs[chosen], ys[chosen]) if xy is not None else None)
        reporter.stage(f"reading the map at the points: windows {index + 1}/{len(unique_keys)}",
                       100.0 * (index + 1) / len(unique_keys), log=False)
    return tally


# ---- polygons -------------------------------------------------------------------------------


def tally_polygons(map_band: MapBand, labels, reporter: Reporter, cancelled: Callable[[], bool],
                   tally: Tally | None = None) -> Tally:
    """Every map pixel whose centre is inside a reference polygon (burnt window by window)."""
    from ..data.sampling import NO_CLASS

    tally = tally or Tally()
    windows = labels.windows()
    for index, window in enumerate(windows):
        _check_cancel(cancelled)
        reference = labels.read(window)
        labelled = reference != NO_CLASS
        _tally_window(tally, map_band, window, reference, labelled)
        reporter.stage(f"reading the map in the polygons: windows {index + 1}/{len(windows)}",
                       100.0 * (index + 1) / len(windows), log=False)
    return tally


def _tally_window(tally: Tally, map_band, window, reference: np.ndarray, labelled: np.ndarray) -> None:
    """Count the labelled pixels of one window against the map (with their centres, for the pairs)."""
    if labelled.any():
        values, valid = map_band.read(window)
        tally.add(reference[labelled], values[labelled], valid[labelled], _centres(map_band.grid, window, labelled))


# ---- vector references ----------------------------------------------------------------------


def map_text_classes(class_field: ClassField, known: dict[int, ClassInfo], map_path: str) -> ClassField:
    """A text class field's values as the map's class ids, matched on the map's class names."""
    by_name = {info.name.strip().lower(): class_id for class_id, info in known.items() if info.name.strip()}
    if not by_name:
        raise PatchFlowError(
            f"field '{class_field.name}' holds text, but the map {os.path.basename(map_path)} carries no class "
            "names (colour table, category names or a .qml style) to match it with. Choose an integer field "
            "holding the map's class ids.", "CLASS_FIELD")
    unknown = sorted(str(v) for v in class_field.ids if str(v).strip().lower() not in by_name)
    if unknown:
        raise PatchFlowError(
            f"the class names {', '.join(unknown)} of field '{class_field.name}' are not classes of the map "
            f"(its classes: {', '.join(sorted(by_name))}). Choose an integer field holding the map's class ids.",
            "CLASS_FIELD")
    ids = {value: by_name[str(value).strip().lower()] for value in class_field.ids}
    return ClassField(class_field.name, ids, {i: known[i] for i in set(ids.values())}, is_text=True)


def _geometry_kind(layer: ogr.Layer) -> str:
    flat = ogr.GT_Flatten(layer.GetGeomType())
    if flat == ogr.wkbUnknown:
        layer.ResetReading()
        for feature in layer:
            geometry = feature.GetGeometryRef()
            if geometry is not None and not geometry.IsEmpty():
                flat = ogr.GT_Flatten(geometry.GetGeometryType())
                break
        layer.ResetReading()
    if flat in (ogr.wkbPoint, ogr.wkbMultiPoint):
        return "points"
    if flat in (ogr.wkbPolygon, ogr.wkbMultiPolygon, ogr.wkbCurvePolygon, ogr.wkbMultiSurface):
        return "polygons"
    raise PatchFlowError(
        f"the layer holds {ogr.GeometryTypeToName(layer.GetGeomType())} geometries; use points or polygons.",
        "REFERENCE")


def vector_tally(map_band: MapBand, uri: str, field_name: str | None, known_map: dict[int, ClassInfo],
                 map_path: str, reporter: Reporter, cancelled: Callable[[], bool],
                 tally: Tally | None = None) -> tuple[Tally, dict[int, ClassInfo], tuple, str]:
    """Pairs from reference points or polygons; also their class names and extent (map CRS)."""
    from ..data.sampling import VectorLabels, _class_id_layer
    from ..geodata.vector import layer_crs_wkt, open_layer, read_points, resolve_class_field, transformer

    if not field_name:
        raise PatchFlowError("a class field is needed with reference points or polygons: choose the field "
                             "holding each feature's class.", "CLASS_FIELD")
    owner, layer = open_layer(uri, "REFERENCE")
    kind = _geometry_kind(layer)
    class_field = resolve_class_field(layer, field_name, "CLASS_FIELD", uri)
    if class_field.is_text:
        class_field = map_text_classes(class_field, known_map, map_path)
    grid = map_band.grid
    reporter.stage(f"reading the reference {kind} of {layer.GetName()}", 0, 5)
    if kind == "points":
        points = read_points(uri, "REFERENCE", grid.crs_wkt, class_field)
        if not len(points.xs):
            raise PatchFlowError("the layer has no point with a class value.", "REFERENCE")
        fcols, frows = grid.fractional_pixel(points.xs, points.ys)
        cols, rows = np.floor(fcols).astype(np.int64), np.floor(frows).astype(np.int64)
        assert points.class_ids is not None  # read with a class field
        tally = tally_points(map_band, cols, rows, points.class_ids, reporter, cancelled, tally,
                             (np.asarray(points.xs, np.float64), np.asarray(points.ys, np.float64)))
        extent = (points.xs.min(), points.ys.min(), points.xs.max(), points.ys.max())
        return tally, class_field.classes, extent, f"{len(points.xs)} points"
    memory, burn_layer = _class_id_layer(layer, class_field, grid.crs_wkt,
                                         transformer(layer_crs_wkt(layer), grid.crs_wkt))
    xmin, xmax, ymin, ymax = burn_layer.GetExtent() if burn_layer.GetFeatureCount() else (0, 0, 0, 0)
    labels = VectorLabels(burn_layer, grid, memory)
    tally = tally_polygons(map_band, labels, reporter, cancelled, tally)
    return tally, class_field.classes, (xmin, ymin, xmax, ymax), f"{burn_layer.GetFeatureCount()} polygons"


# ---- outputs --------------------------------------------------------------------------------


def table_columns(rows: list[dict]) -> dict[str, int]:
    """The score table's field types: names and colours as text, scores as reals, counts as integers."""
    return {column: ogr.OFTString if column in ("name", "color") else (
        ogr.OFTReal if column in ("precision", "recall", "f1", "value") else ogr.OFTInteger64) for column in rows[0]}


def html_report(scores: Scores, facts: dict, png_path: str) -> str:
    from ..report import htmlreport

    sections = [
        ("Summary", htmlreport.table([{"": key, "value": value} for key, value in facts.items()])),
        ("Scores", scores.html_table()),
        ("Confusion matrix", htmlreport.image_tag(png_path, "confusion matrix") + scores.html_matrix()),
        ("Reading the numbers", htmlreport.paragraph(
            "Rows are reference classes, columns map classes. Precision (user's accuracy) is the share of "
            "the pixels mapped as a class that the reference confirms; recall (producer's accuracy) the "
            "share of a class's reference samples that the map got right; F1 their harmonic mean. Kappa "
            "is Cohen's. Macro F1 averages classes equally, weighted F1 by their reference counts. A ratio "
            "with nothing to divide by is 0.")),
    ]
    return htmlreport.page(f"Accuracy assessment: {facts['map']}", sections)


def _format_extent(extent) -> str:
    xmin, ymin, xmax, ymax = extent
    return f"x {xmin:.1f} to {xmax:.1f}, y {ymin:.1f} to {ymax:.1f}"


def _staged(params: Params, context: RunContext, name: str) -> tuple[str | None, str | None]:
    final = params.string(name, None)
    return final, (context.staging.stage(final, name) if final else None)


def run_assess_accuracy(params: Params, context: RunContext) -> dict:
    """Confusion matrix, OA, kappa and per-class scores of a class raster against references."""
    from .. import checks

    checks.writable(params, "OUTPUT_CSV", "OUTPUT_HTML", "OUTPUT_TABLE")
    checks.rasters(params, "INPUT", "REFERENCE_RASTER", reporter=context.reporter,
                   labels={"INPUT": "BAND", "REFERENCE_RASTER": "REFERENCE_BAND"})
    map_path = params.string("INPUT")
    vector_uri = params.string("REFERENCE", None)
    ref_path = params.string("REFERENCE_RASTER", None)
    if bool(vector_uri) == bool(ref_path):
        raise PatchFlowError(
            "give exactly one reference: reference points or polygons (REFERENCE, with CLASS_FIELD) or a "
            "reference label raster (REFERENCE_RASTER)" + (", not both." if vector_uri else "."),
            "REFERENCE" if not vector_uri else "REFERENCE_RASTER")
    band_index = params.integer("BAND")
    map_band = MapBand(open_raster(map_path, "INPUT"), band_index, "INPUT", "BAND")
    grid = map_band.grid
    known_map = classes_from_raster(map_path, band_index)
    outputs = {name: _staged(params, context, name) for name in ("OUTPUT_CSV", "OUTPUT_HTML", "OUTPUT_TABLE")}
    table_final = outputs["OUTPUT_TABLE"][0]
    check_table_format(table_final, "OUTPUT_TABLE")
    reporter = context.reporter.span(0, 90)
    csv_final = outputs["OUTPUT_CSV"][0]
    pairs_final = pairs_path(csv_final) if csv_final else None
    pairs_file = (pairs_final, context.staging.stage(pairs_final, "OUTPUT_CSV")) if pairs_final else None
    tally = Tally(pairs=PairLog() if pairs_file else None)
    mixed_share, aggregated = None, {}
    if vector_uri:
        tally, known_ref, ref_extent, described = vector_tally(
            map_band, vector_uri, params.string("CLASS_FIELD", None), known_map, map_path, reporter,
            context.cancelled, tally)
        reference_parameter, reference_name = "REFERENCE", vector_uri
    else:
        from .labelraster import tally_label_raster

        context.reporter.stage(f"reading the reference raster {os.path.basename(ref_path)}", 0, 5)
        tally, known_ref, raster_reference = tally_label_raster(
            map_band, ref_path, params.integer("REFERENCE_BAND"), params.nodata("REFERENCE_NODATA"), reporter,
            context.cancelled, tally)
        ref_extent, described, mixed_share = raster_reference.extent, raster_reference.described, \
            raster_reference.mixed_share
        if raster_reference.aggregated is not None:
            aggregated = {"aggregated": raster_reference.aggregated, "mixed pixels (share of the pairs)":
                          f"{mixed_share or 0.0:.4f} ({raster_reference.mixed} of {raster_reference.scored})"}
        reference_parameter, reference_name = "REFERENCE_RASTER", ref_path
    if tally.counter.total == 0:
        raise PatchFlowError(
            f"no reference sample falls on a classified pixel of the map ({tally.outside} outside it, "
            f"{tally.map_nodata} on its nodata). The map covers {_format_extent(grid.extent)}, the reference "
            f"{_format_extent(ref_extent)} ({crs_label(grid.crs_wkt)}). Check both cover the same area.",
            reference_parameter)
    context.reporter.stage("computing the confusion matrix and the scores", 90)
    class_ids = tally.counter.class_ids
    known = {**known_ref, **{k: v for k, v in known_map.items() if v.name}}
    infos = complete(class_ids, known)
    scores = Scores.from_matrix(tally.counter.matrix(class_ids), infos)
    _report(context.reporter, scores, tally)
    checks.classes_missing_from_reference(context.reporter, scores.rows(), known_map, reference_parameter)
    facts = {
        "map": os.path.basename(map_path), "band": band_index, "reference": os.path.basename(reference_name),
        "reference kind": described, **aggregated, "pairs": scores.total,
        "skipped: reference on map nodata": tally.map_nodata, "skipped: reference outside the map": tally.outside,
        "overall accuracy": scores.overall_accuracy, "kappa": scores.kappa,
        "macro F1": scores.macro_f1, "weighted F1": scores.weighted_f1,
    }
    context.reporter.stage("writing the reports", 95, 99)
    _write_outputs(scores, facts, outputs, context)
    pairs_final = _write_pairs(tally, pairs_file, context.reporter)
    context.reporter.progress(100)
    return {
        "OA": scores.overall_accuracy, "KAPPA": scores.kappa, "N": scores.total,
        "MACRO_F1": scores.macro_f1, "WEIGHTED_F1": scores.weighted_f1,
        "SKIPPED_NODATA": tally.map_nodata, "SKIPPED_OUTSIDE": tally.outside, "MIXED_SHARE": mixed_share,
        "OUTPUT_CSV": outputs["OUTPUT_CSV"][0], "OUTPUT_HTML": outputs["OUTPUT_HTML"][0],
        "OUTPUT_TABLE": table_final, "PAIRS": pairs_final, "CLASSES": scores.rows(), "MATRIX": scores.matrix.tolist(),
    }


def _report(reporter: Reporter, scores: Scores, tally: Tally) -> None:
    reporter.log(f"{scores.total} pairs: overall accuracy {scores.overall_accuracy:.4f}, kappa {scores.kappa:.4f}, "
                 f"macro F1 {scores.macro_f1:.4f}")
    for row in scores.rows():
        reporter.log(f"  {row['id']} {row['name']}: reference {row['reference']}, mapped {row['predicted']}, "
                     f"precision {row['precision']:.3f}, recall {row['recall']:.3f}, F1 {row['f1']:.3f}")
    if tally.map_nodata:
        reporter.warning(f"{tally.map_nodata} reference samples fall on the map's nodata: skipped.")
    if tally.outside:
        reporter.warning(f"{tally.outside} reference points fall outside the map: skipped.")


def _write_pairs(tally: Tally, pairs_file: tuple[str, str] | None, reporter: Reporter) -> str | None:
    """Every sample (coordinates, reference, map class) beside the CSV, for Compare accuracy's tests."""
    if pairs_file is None or tally.pairs is None:
        return None
    if tally.pairs.overflow:
        reporter.warning(f"{tally.pairs.count} reference samples: more than {tally.pairs.limit}, so no pairs file "
                         "(Compare accuracy cannot test significance). To compare maps, assess them at sample points "
                         "(e.g. Sample from label raster) instead.")
        tally.pairs.parts = []
    tally.pairs.write(pairs_file[1])  # header only when too many: no stale pairs left beside the CSV
    return None if tally.pairs.overflow else pairs_file[0]


def _write_outputs(scores: Scores, facts: dict, outputs: dict, context: RunContext) -> None:
    _, csv_path = outputs["OUTPUT_CSV"]
    _, html_path = outputs["OUTPUT_HTML"]
    _, table_path = outputs["OUTPUT_TABLE"]
    if csv_path:
        scores.write_csv(csv_path)
    if table_path:
        rows = scores.table_rows()
        write_table(table_path, rows, table_columns(rows), "OUTPUT_TABLE")
    if html_path:
        from ..report import htmlreport

        with tempfile.TemporaryDirectory(prefix="patchflow-") as folder:
            png = os.path.join(folder, "confusion.png")
            plot_confusion(scores, png)
            htmlreport.write(html_path, html_report(scores, facts, png))
    _check_cancel(context.cancelled)
