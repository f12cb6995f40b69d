"""The dataset manifest: a JSON file beside the patches-images telling what they hold (sources,
bands, patch sizes, data types, per-band statistics, classes, CRS, counts)."""

from __future__ import annotations

import datetime
import json
import os
from typing import Any

from ...protocol import strict_dump
from ..errors import PatchFlowError
from ..geodata.classes import complete
from ..geodata.raster import open_raster
from ..params import Params, RunContext
from ..reporting import Reporter
from .patches import PatchesImage, Source

FORMAT = "patchflow-dataset"
VERSION = 1


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


def describe_otbtf(patches_paths: list[str], patch_sizes: list[int], labels_path: str | None,
                   names: list[str] | None = None, reporter: Reporter | None = None) -> dict[str, Any]:
    """A manifest for OTBTF patches-images made elsewhere (paths stay absolute)."""
    import numpy as np

    reporter = reporter or Reporter()
    images = [PatchesImage(path, size or None, "PATCHES") for path, size in zip(patches_paths, patch_sizes)]
    counts = {len(image) for image in images}
    if len(counts) != 1:
        raise PatchFlowError(f"the patches-images hold different numbers of patches: {sorted(counts)}.", "PATCHES")
    sources = []
    for index, image in enumerate(images, start=1):
        part = reporter.span(90 * (index - 1) / len(images), 90 * index / len(images))
        part.stage(f"band statistics of {os.path.basename(image.path)} ({index}/{len(images)})", 0)
        stats = _image_stats(image, part)
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
        reporter.stage(f"reading the label patches {os.path.basename(labels_path)}", 90, 98)
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


def _image_stats(image: PatchesImage, reporter: Reporter) -> list[dict]:
    from .patches import BandStats

    stats = BandStats(image.bands)
    for start in range(0, len(image), 256):
        stats.add(image.read(start, start + 256).transpose(0, 3, 1, 2))
        done = min(len(image), start + 256)
        reporter.stage(f"statistics: patches {done}/{len(image)}", 100.0 * done / len(image), log=False)
    return stats.as_list()


def run_describe_patches(params: Params, context: RunContext) -> dict:
    """Write a manifest for existing OTBTF patches-images so PatchFlow can train on them."""
    from .. import checks

    checks.writable(params, "OUTPUT")
    checks.rasters(params, "PATCHES", "LABELS", labels={"LABELS": None}, crs=False)  # patches carry no CRS
    paths = params.paths("PATCHES")
    sizes = [params.integer("PATCH_SIZE")] * len(paths)
    manifest = describe_otbtf(paths, sizes, params.string("LABELS"), reporter=context.reporter)
    output = params.string("OUTPUT")
    staged = context.staging.stage(output, "OUTPUT")
    context.reporter.stage("writing the manifest", 98)
    write_manifest(staged, manifest)
    context.reporter.log(f"{manifest['n_patches']} patches in {len(paths)} source(s)")
    context.reporter.progress(100)
    return {"OUTPUT": output, "COUNT": manifest["n_patches"]}
