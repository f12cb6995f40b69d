"""Extract patches (OTBTF PatchesExtraction), the operation: the sources and points read from the
job, patches extracted (``patches.extract``), a labels image and the dataset manifest written."""

from __future__ import annotations

import datetime
import math
import os

from ..errors import PatchFlowError
from ..geodata.classes import ClassInfo, classes_from_raster, complete
from ..geodata.gridoffset import offset_report
from ..geodata.raster import RasterStack, crs_label
from ..geodata.vector import open_layer, read_points, resolve_class_field
from ..params import Params, RunContext
from ..reporting import Reporter
from ..scale.execution import execution_of
from .manifest import FORMAT, VERSION, source_entry, write_manifest
from .patches import Extraction, Source, extract, labels_dtype
from .positions import manifest_entry, positions_path, write_positions

MAX_SOURCES = 3
FLOAT_LABEL_NODATA = -99999.0  # label patches' nodata for a floating-point label raster without a finite one


def _sources_from(params: Params) -> list[Source]:
    sources: list[Source] = []
    for index in range(1, MAX_SOURCES + 1):
        paths = params.paths(f"SOURCE{index}", required=index == 1)
        if paths:
            stack = RasterStack(paths, f"SOURCE{index}")
            size = params.integer(f"PATCH_SIZE{index}")
            if size is None and sources:  # the patch covering source 1's ground, at this source's pixel size
                reference = sources[0]
                size = max(1, round(reference.patch_size * abs(reference.grid.dx) / abs(stack.grid.dx)))
            if size is None:
                raise PatchFlowError(f"a patch size is required for SOURCE{index}.", f"PATCH_SIZE{index}")
            sources.append(Source(f"source{index}", f"SOURCE{index}", stack, size))
    label_raster = params.string("LABEL_RASTER")
    if label_raster and params.string("LABEL_POLYGONS"):
        raise PatchFlowError("give one label source: LABEL_RASTER or LABEL_POLYGONS (with LABEL_FIELD), not both.",
                             "LABEL_POLYGONS")
    if params.string("LABEL_POLYGONS"):
        from .polygonlabels import polygon_source

        sources.append(polygon_source(params, sources[0])[0])
    elif label_raster:
        stack = RasterStack([label_raster], "LABEL_RASTER")
        for band in stack.bands:
            if stack.dtype.kind == "f" and (band.nodata is None or not math.isfinite(band.nodata)):
                band.nodata = FLOAT_LABEL_NODATA  # what NaN/infinity labels are written as ('unlabelled')
        reference = sources[0]
        default = max(1, round(reference.patch_size * abs(reference.grid.dx) / abs(stack.grid.dx)))
        size = params.integer("LABEL_PATCH_SIZE", default)
        sources.append(Source("labels_raster", "LABEL_RASTER", stack, size, role="label"))
    return sources


def output_paths(manifest_path: str, sources: list[Source]) -> tuple[list[str], str]:
    stem = os.path.splitext(manifest_path)[0]
    return [f"{stem}_{s.name}.tif" for s in sources], f"{stem}_labels.tif"


def run_extract_patches(params: Params, context: RunContext) -> dict:
    """OTBTF PatchesExtraction: patches of every source at every point, a labels image, a manifest."""
    from .. import checks
    from .sourcechecks import check_sources

    checks.writable(params, "OUTPUT")
    execution = execution_of(params)  # checked before reading anything: a bad address or cluster file names itself
    checks.rasters(params, "SOURCE1", "SOURCE2", "SOURCE3", "LABEL_RASTER", reporter=context.reporter,
                   labels={"LABEL_RASTER": None})

    sources = _sources_from(params)
    check_sources(sources)
    reference = sources[0]
    for source in sources[1:]:  # as Apply model reports it (geodata.gridoffset)
        if source.role == "image":
            line, warning = offset_report(source.parameter, reference.grid, source.grid, source.patch_size)
            context.reporter.log(line)
            if warning:
                context.reporter.warning(warning)
    points_uri = params.string("INPUT")
    field = params.string("CLASS_FIELD")
    class_field = None
    if field:
        _, layer = open_layer(points_uri, "INPUT")
        class_field = resolve_class_field(layer, field, "CLASS_FIELD", points_uri)
    points = read_points(points_uri, "INPUT", reference.grid.crs_wkt, class_field)
    if len(points.xs) == 0:
        raise PatchFlowError("the point layer has no point (with a class value).", "INPUT")
    manifest_path = params.string("OUTPUT")
    if not manifest_path.lower().endswith(".json"):
        manifest_path += ".json"
    patches_paths, labels_path = output_paths(manifest_path, sources)
    staged_manifest = context.staging.stage(manifest_path, "OUTPUT")
    staged_patches = [context.staging.stage(p, "OUTPUT") for p in patches_paths]
    staged_labels = context.staging.stage(labels_path, "OUTPUT") if class_field else None
    staged_positions = context.staging.stage(positions_path(manifest_path), "OUTPUT")
    skip_nodata = params.boolean("SKIP_NODATA")

    if execution.distributed:
        from ..scale.extracting import extract_on_dask

        result = extract_on_dask(params, context, execution, sources, points.xs, points.ys, points.class_ids,
                                 staged_patches, staged_labels)
    else:
        result = extract(sources, points.xs, points.ys, points.class_ids, staged_patches, staged_labels,
                         skip_nodata, context.reporter.span(0, 95), context.cancelled)
    _check_result(result, reference)
    _report(context.reporter, result)
    write_positions(staged_positions, result.centres)
    classes = _classes(sources, class_field, result)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "crs": reference.grid.crs_wkt,
        "crs_label": crs_label(reference.grid.crs_wkt),
        "points": {"path": points_uri, "class_field": field},
        "n_patches": result.kept,
        "n_points": result.candidates,
        "dropped": {"outside": result.dropped_outside, "nodata": result.dropped_nodata},
        "sources": [source_entry(s, os.path.basename(p), stat.as_list())
                    for s, p, stat in zip(sources, patches_paths, result.stats)],
        "label_polygons": _polygons_entry(sources),
        "labels": ({"patches": os.path.basename(labels_path), "field": field,
                    "dtype": labels_dtype(result.class_ids).name} if class_field else None),
        "classes": [c.as_dict() for c in classes],
        "positions": manifest_entry(positions_path(manifest_path)),
    }
    write_manifest(staged_manifest, manifest)
    context.reporter.progress(100)
    outputs = {"OUTPUT": manifest_path, "COUNT": result.kept,
               "DROPPED_NODATA": result.dropped_nodata, "DROPPED_OUTSIDE": result.dropped_outside}
    for index, (source, path) in enumerate(zip(sources, patches_paths), start=1):
        outputs["LABEL_PATCHES" if source.role == "label" else f"PATCHES{index}"] = path
    outputs["LABELS"] = labels_path if class_field else None
    return outputs


def _polygons_entry(sources: list[Source]) -> dict | None:
    """Where the label patches were burnt from (LABEL_POLYGONS): the layer, its class field, and for a
    text field the value -> class id table."""
    from .polygonlabels import PolygonLabels

    label = next((s for s in sources if isinstance(s.stack, PolygonLabels)), None)
    if label is None:
        return None
    assert isinstance(label.stack, PolygonLabels)
    field = label.stack.field
    return {"path": label.stack.paths[0], "field": field.name, "nodata": label.stack.bands[0].nodata,
            "class_map": {str(k): v for k, v in field.ids.items()} if field.is_text else {}}


def _check_result(result: Extraction, reference: Source) -> None:
    if result.candidates and result.dropped_outside == result.candidates:
        xmin, ymin, xmax, ymax = reference.grid.extent
        raise PatchFlowError(
            f"none of the {result.candidates} points has its patch inside every source (SOURCE1 covers "
            f"x {xmin:.1f}..{xmax:.1f}, y {ymin:.1f}..{ymax:.1f}). Check the points and the rasters cover "
            "the same area, or use a smaller patch size.", "INPUT")
    if result.kept == 0:
        raise PatchFlowError(
            f"all {result.candidates - result.dropped_outside} patches inside the sources touch nodata. "
            "Check the rasters' nodata value, or untick SKIP_NODATA.", "INPUT")


def _report(reporter: Reporter, result: Extraction) -> None:
    reporter.log(f"{result.kept} patches kept of {result.candidates} points")
    if result.dropped_outside:
        reporter.warning(f"{result.dropped_outside} points dropped: their patch is not entirely inside every source.")
    if result.dropped_nodata:
        reporter.warning(f"{result.dropped_nodata} points dropped: their patch touches nodata (its value, NaN or "
                         "infinity) in a source.")
    kept = int(sum(stat.nonfinite.sum() for stat in result.stats))
    if kept:
        reporter.warning(f"the patches hold {kept} NaN or infinite values (SKIP_NODATA is off and the rasters "
                         "have no nodata value to write instead): Train model refuses such a dataset. Tick "
                         "SKIP_NODATA, or give the rasters a nodata value.")


def _classes(sources: list[Source], class_field, result: Extraction) -> list[ClassInfo]:
    if class_field is not None:
        ids, counts = _unique_counts(result.class_ids)
        table = {c.id: c for c in class_field.class_list()}
        found = complete(list(ids), table)
    else:
        label = next((s for s in sources if s.role == "label"), None)
        if label is None:
            return []
        from .polygonlabels import PolygonLabels, polygon_classes

        if isinstance(label.stack, PolygonLabels):
            return polygon_classes(label.stack, result.label_pixel_counts)
        known = classes_from_raster(label.stack.paths[0])
        nodata = label.stack.nodata[0]
        counts_by_id = {k: v for k, v in result.label_pixel_counts.items() if nodata is None or k != nodata}
        ids, counts = list(counts_by_id), list(counts_by_id.values())
        found = complete(ids, known)
    for info in found:
        info.count = int(dict(zip(ids, counts)).get(info.id, 0))
    return found


def _unique_counts(values) -> tuple[list[int], list[int]]:
    import numpy as np

    ids, counts = np.unique(values, return_counts=True)
    return [int(i) for i in ids], [int(c) for c in counts]
