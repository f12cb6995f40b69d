"""The dataset manifest: a JSON file beside the patches-images telling what they hold (sources,
bands, patch sizes, data types, per-band statistics, classes, CRS, counts)."""

from __future__ import annotations

import datetime
import json
import math
import os
from typing import Any

from ..protocol import strict_dump
from .classes import ClassInfo, classes_from_raster, complete
from .errors import PatchFlowError
from .patches import Extraction, PatchesImage, Source, extract, labels_dtype
from .raster import RasterStack, crs_label, open_raster
from .vector import open_layer, read_points, resolve_class_field

FORMAT = "patchflow-dataset"
VERSION = 1
MAX_SOURCES = 3
FLOAT_LABEL_NODATA = -99999.0  # label patches' nodata for a floating-point label raster without a finite one


def _band_entries(source: Source, stats: list[dict]) -> list[dict]:
    return [
        {"index": i + 1, "description": band.description, "nodata": band.nodata,
         "raster": band.path, "raster_band": band.band, **stat}
        for i, (band, stat) in enumerate(zip(source.stack.bands, stats))
    ]


def source_entry(source: Source, patches_file: str, stats: list[dict]) -> dict:
    return {
        "name": source.name,
        "parameter": source.parameter,
        "role": source.role,
        "rasters": source.stack.paths,
        "patch_size": source.patch_size,
        "pixel_size": [source.grid.dx, source.grid.dy],
        "dtype": source.stack.dtype.name,
        "bands": _band_entries(source, stats),
        "patches": patches_file,
    }


def write_manifest(path: str, manifest: dict) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        strict_dump(manifest, handle, indent=2)  # NaN/infinity (a NaN nodata value) are null
        handle.write("\n")


def load_manifest(path: str, parameter: str = "INPUT") -> dict:
    """A manifest with its patches-image paths made absolute; errors name ``parameter``."""
    if not os.path.exists(path):
        raise PatchFlowError(f"dataset manifest not found: {path}.", parameter)
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as exc:
        raise PatchFlowError(f"{path} is not a PatchFlow dataset manifest (JSON): {exc}", parameter) from None
    if manifest.get("format") != FORMAT:
        raise PatchFlowError(f"{path} is not a PatchFlow dataset manifest (no format '{FORMAT}').", parameter)
    folder = os.path.dirname(os.path.abspath(path))
    for source in manifest["sources"]:
        source["patches"] = os.path.join(folder, source["patches"])
    if manifest.get("labels"):
        manifest["labels"]["patches"] = os.path.join(folder, manifest["labels"]["patches"])
    return manifest


def nonfinite_bands(manifest: dict, names: list[str] | None = None, parameter: str = "INPUT") -> list[str]:
    """'source1 band 2: 1234 values' for each band of the dataset's patches (those of the sources
    ``names``, else all) holding NaN or infinite values. PatchFlow's manifests count them; for one
    that does not (written elsewhere or by an older PatchFlow) its floating-point patches-images are
    scanned."""
    import numpy as np

    found = []
    for source in manifest["sources"]:
        if names is not None and source.get("name") not in names:
            continue
        bands = source.get("bands") or []
        counts = [band.get("nonfinite") for band in bands]
        if not bands or not all(isinstance(count, int) for count in counts):
            image = PatchesImage(source["patches"], int(source.get("patch_size") or 0) or None, parameter)
            counts = [0] * image.bands
            if image.dtype.kind in "fc":
                for start in range(0, len(image), 256):
                    patches = image.read(start, start + 256)
                    counts = [c + int(n) for c, n in zip(counts, (~np.isfinite(patches)).sum(axis=(0, 1, 2)))]
            image.ds = None
        found += [f"{source.get('name')} band {index}: {count} values"
                  for index, count in enumerate(counts, start=1) if count]
    return found


def refuse_nonfinite(manifest: dict, path: str, parameter: str, names: list[str] | None = None) -> None:
    """Errors naming ``parameter`` when the dataset's patches hold NaN or infinite values."""
    found = nonfinite_bands(manifest, names, parameter)
    if found:
        raise PatchFlowError(
            f"the dataset {path} holds NaN or infinite values in its patches ({'; '.join(found[:6])}"
            f"{'; ...' if len(found) > 6 else ''}): a model learns nothing from them (NaN losses). Extract the "
            "patches again with SKIP_NODATA ticked (patches touching NaN or infinity are then dropped), or give "
            "the rasters a nodata value.", parameter)


def _sources_from(params) -> list[Source]:
    sources = []
    for index in range(1, MAX_SOURCES + 1):
        paths = params.paths(f"SOURCE{index}", required=index == 1)
        if paths:
            stack = RasterStack(paths, f"SOURCE{index}")
            size = params.integer(f"PATCH_SIZE{index}")
            if size is None:
                raise PatchFlowError(f"a patch size is required for SOURCE{index}.", f"PATCH_SIZE{index}")
            sources.append(Source(f"source{index}", f"SOURCE{index}", stack, size))
    label_raster = params.string("LABEL_RASTER")
    if label_raster:
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


def run_extract_patches(params, context) -> dict:
    """OTBTF PatchesExtraction: patches of every source at every point, a labels image, a manifest."""
    from . import checks
    from .patches import check_sources

    checks.writable(params, "OUTPUT")
    checks.rasters(params, "SOURCE1", "SOURCE2", "SOURCE3", "LABEL_RASTER", reporter=context.reporter,
                   labels={"LABEL_RASTER": None})

    sources = _sources_from(params)
    check_sources(sources)
    reference = sources[0]
    points_uri = params.string("INPUT")
    field = params.string("CLASS_FIELD")
    class_field = None
    if field:
        _, layer = open_layer(points_uri, "INPUT")
        class_field = resolve_class_field(layer, field, "CLASS_FIELD")
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
    skip_nodata = params.boolean("SKIP_NODATA")

    result = extract(sources, points.xs, points.ys, points.class_ids, staged_patches, staged_labels,
                     skip_nodata, context.reporter.span(0, 95), context.cancelled)
    _check_result(result, reference)
    _report(context.reporter, result)
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
        "labels": ({"patches": os.path.basename(labels_path), "field": field,
                    "dtype": labels_dtype(result.class_ids).name} if class_field else None),
        "classes": [c.as_dict() for c in classes],
    }
    write_manifest(staged_manifest, manifest)
    context.reporter.progress(100)
    outputs = {"OUTPUT": manifest_path, "COUNT": result.kept,
               "DROPPED_NODATA": result.dropped_nodata, "DROPPED_OUTSIDE": result.dropped_outside}
    for index, (source, path) in enumerate(zip(sources, patches_paths), start=1):
        outputs["LABEL_PATCHES" if source.role == "label" else f"PATCHES{index}"] = path
    outputs["LABELS"] = labels_path if class_field else None
    return outputs


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


def _report(reporter, result: Extraction) -> None:
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


def describe_otbtf(patches_paths: list[str], patch_sizes: list[int], labels_path: str | None,
                   names: list[str] | None = None) -> dict[str, Any]:
    """A manifest for OTBTF patches-images made elsewhere (paths stay absolute)."""
    import numpy as np

    images = [PatchesImage(path, size or None, "PATCHES") for path, size in zip(patches_paths, patch_sizes)]
    counts = {len(image) for image in images}
    if len(counts) != 1:
        raise PatchFlowError(f"the patches-images hold different numbers of patches: {sorted(counts)}.", "PATCHES")
    sources = []
    for index, image in enumerate(images, start=1):
        stats = _image_stats(image)
        sources.append({
            "name": (names[index - 1] if names else f"source{index}"), "parameter": f"SOURCE{index}",
            "role": "image", "rasters": [image.path], "patch_size": image.patch_size, "pixel_size": None,
            "dtype": image.dtype.name,
            "bands": [{"index": b + 1, "description": f"band {b + 1}", "nodata": None, **stats[b]}
                      for b in range(image.bands)],
            "patches": image.path,
        })
    labels, classes = None, []
    if labels_path:
        label_image = open_raster(labels_path, "LABELS")
        values = label_image.ReadAsArray()
        if label_image.RasterYSize != len(images[0]) * label_image.RasterXSize:
            raise PatchFlowError(
                f"{labels_path} is {label_image.RasterXSize}x{label_image.RasterYSize} px: not one label patch of "
                f"{label_image.RasterXSize} px per patch for {len(images[0])} patches.", "LABELS")
        if values.dtype.kind in "fc" and not np.isfinite(values).all():
            raise PatchFlowError(
                f"{labels_path} holds {int((~np.isfinite(values)).sum())} NaN or infinite values: labels are class "
                "ids. Write a class id (or a nodata value) there.", "LABELS")
        ids, counts = np.unique(values, return_counts=True)
        classes = [dict(c.as_dict(), count=int(n)) for c, n in zip(complete([int(i) for i in ids], {}), counts)]
        labels = {"patches": labels_path, "field": None, "dtype": values.dtype.name,
                  "patch_size": label_image.RasterXSize}
    return {
        "format": FORMAT, "version": VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "crs": "", "crs_label": "unknown (OTBTF patches-images carry no georeferencing)",
        "points": None, "n_patches": len(images[0]), "n_points": len(images[0]),
        "dropped": {"outside": 0, "nodata": 0}, "sources": sources, "labels": labels, "classes": classes,
    }


def _image_stats(image: PatchesImage) -> list[dict]:
    from .patches import BandStats

    stats = BandStats(image.bands)
    for start in range(0, len(image), 256):
        stats.add(image.read(start, start + 256).transpose(0, 3, 1, 2))
    return stats.as_list()


def run_describe_patches(params, context) -> dict:
    """Write a manifest for existing OTBTF patches-images so PatchFlow can train on them."""
    from . import checks

    checks.writable(params, "OUTPUT")
    checks.rasters(params, "PATCHES", "LABELS", labels={"LABELS": None}, crs=False)  # patches carry no CRS
    paths = params.paths("PATCHES")
    sizes = [params.integer("PATCH_SIZE")] * len(paths)
    manifest = describe_otbtf(paths, sizes, params.string("LABELS"))
    output = params.string("OUTPUT")
    staged = context.staging.stage(output, "OUTPUT")
    write_manifest(staged, manifest)
    context.reporter.log(f"{manifest['n_patches']} patches in {len(paths)} source(s)")
    return {"OUTPUT": output, "COUNT": manifest["n_patches"]}
