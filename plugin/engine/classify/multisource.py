"""Classifiers on the deep features of a multi-input model (one network input a dataset source, e.g.
x1 <- source1 16 px at 28.5 m, x2 <- source2 8 px at 57 m).

Training: the dataset's other sources are checked against the model's other inputs and read beside
the first (``attach_sources``), the sources a classifier leaves unused are named, and the
classifier's description records every source (``describe_sources``: names, bands, patch sizes,
pixel sizes), which Classify checks its inputs against.

Classify: INPUT feeds the first source and defines the output grid; INPUT2, INPUT3 feed the others.
For each output pixel, source i's patch is centred where INPUT's patch is centred, at the nearest
pixel: ``data.patches.matching_origins`` with the dataset's patch sizes, as extraction placed the
patches, then the model's centred sub-patch, as training cropped them. A patch reaching past source
i's edge is mirrored (reflection, edge pixel not repeated); nodata pixels become the band means; an
output pixel whose centre lies outside source i, or on a nodata pixel of it, stays nodata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..checks.modelchecks import EXTRA_INPUTS
from ..data.patches import Source, matching_origins
from ..errors import PatchFlowError
from ..geodata.raster import RasterStack
from ..params import Params
from ..reporting import Reporter
from .features import FeatureExtractor, ModelInput
from .labelled import LabelledPatches

__all__ = ["EXTRA_INPUTS", "attach_sources", "describe_sources", "extra_sources", "resolution_warning", "source_order",
           "unused_sources"]


def image_sources(manifest: dict) -> list[dict]:
    return [s for s in manifest.get("sources") or [] if s.get("role", "image") == "image"]


def source_order(path: str, parameter: str = "DATASET") -> list[str]:
    """The names of a dataset's image sources, in its order (source1 first: extraction's reference)."""
    from ..data.manifest import load_manifest

    return [s["name"] for s in image_sources(load_manifest(path, parameter))]


# ---- training --------------------------------------------------------------------------------------


def attach_sources(dataset: LabelledPatches, extractor: FeatureExtractor) -> None:
    """The dataset's sources feeding the model's other inputs (checked: present, bands, patch size),
    read beside the first by ``labelled.dataset_features``."""
    from ..checks.modelchecks import inputs_against_dataset
    from ..data.manifest import refuse_nonfinite

    if not extractor.extra:
        return
    inputs_against_dataset([(spec.name, spec.source, spec.bands, spec.patch_size) for spec in extractor.extra],
                           dataset.manifest, dataset.path, dataset.parameter)
    refuse_nonfinite(dataset.manifest, dataset.path, dataset.parameter, [spec.source for spec in extractor.extra])
    sources = {s["name"]: s for s in image_sources(dataset.manifest)}
    dataset.extra_sources = [sources[spec.source] for spec in extractor.extra]


def unused_sources(dataset: LabelledPatches, extractor: FeatureExtractor, reporter: Reporter) -> None:
    """A warning naming the dataset's image sources the classifier's features do not read."""
    used = [spec.source for spec in extractor.inputs]
    unused = [s["name"] for s in image_sources(dataset.manifest) if s["name"] not in used]
    if unused:
        what = f"the model {extractor.model_path}" if extractor.model_path else "features without a model"
        reporter.warning(f"{dataset.path} has the image sources {', '.join(unused)}, which {what} does not read "
                         f"(it reads {', '.join(used)}): they are not used. Give a model with one input per source "
                         "to use them.")


def _ground_pixel(entry: dict) -> float | None:
    size = entry.get("pixel_size")
    if isinstance(size, (list, tuple)):
        size = size[0] if size else None
    return abs(float(size)) if size not in (None, 0) else None


def resolution_warning(dataset: LabelledPatches, extractor: FeatureExtractor, reporter: Reporter) -> None:
    """A warning when the dataset's sources' pixel-size ratios are not those the model's card records."""
    entries = [dataset.source, *dataset.extra_sources]
    first_card, first_data = extractor.inputs[0].pixel_size, _ground_pixel(entries[0])
    for spec, entry in zip(extractor.extra, entries[1:]):
        have = _ground_pixel(entry)
        if None in (first_card, first_data, spec.pixel_size, have):
            continue
        card_ratio = float(spec.pixel_size) / float(first_card)  # type: ignore[arg-type]
        data_ratio = float(have) / float(first_data)  # type: ignore[arg-type]
        if abs(data_ratio / card_ratio - 1) > 0.01:
            reporter.warning(f"the model's input '{spec.name}' was made for source '{spec.source}' at {card_ratio:g} "
                             f"x the pixel size of '{extractor.source}' (its card), but {dataset.path} has it at "
                             f"{data_ratio:g} x: its patches cover other ground than the model was trained on.")


def describe_sources(dataset: LabelledPatches, extractor: FeatureExtractor) -> list[dict]:
    """Every source the classifier reads, in the order Classify takes them (INPUT, INPUT2, INPUT3)."""
    return [{"name": entry["name"], "input_name": spec.name, "bands": spec.bands, "patch_size": spec.patch_size,
             "dataset_patch_size": int(entry["patch_size"]), "pixel_size": entry.get("pixel_size"),
             "model_pixel_size": spec.pixel_size, "normalization": asdict(spec.normalization),
             "band_descriptions": [b.get("description", "") for b in entry["bands"]],
             "band_nodata": [b.get("nodata") for b in entry["bands"]]}
            for spec, entry in zip(extractor.inputs, [dataset.source, *dataset.extra_sources])]


# ---- classification --------------------------------------------------------------------------------


def reflected(index: np.ndarray, size: int) -> np.ndarray:
    """Indices mirrored into 0..size-1 as ``np.pad(mode="reflect")`` does (edge pixel not repeated)."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    folded = np.mod(index, period)
    return np.where(folded >= size, period - folded, folded)


@dataclass
class BlockPatches:
    """Source i's pixels for one block of output pixels: the (bands, rows, cols) window holding
    their patches (mirrored, nodata filled), each output pixel's patch origin in it, and the output
    pixels it cannot feed (``invalid``: their centre outside source i, or on its nodata)."""

    values: np.ndarray | None
    cols: np.ndarray
    rows: np.ndarray
    patch_size: int
    invalid: np.ndarray

    def patches(self, index: np.ndarray) -> np.ndarray:
        """(n, p, p, bands) patches of the block's output pixels ``index`` (flat, row-major)."""
        assert self.values is not None
        offsets = np.arange(self.patch_size)
        r = self.rows[index][:, None] + offsets
        c = self.cols[index][:, None] + offsets
        return self.values[:, r[:, :, None], c[:, None, :]].transpose(1, 2, 3, 0)


@dataclass
class ExtraSource:
    """A source beyond INPUT: its rasters, the model input it feeds, and the patch sizes extraction
    used (``reference_size`` for the first source, ``dataset_size`` for this one)."""

    parameter: str
    stack: RasterStack
    spec: ModelInput
    reference_size: int
    dataset_size: int

    def origins(self, reference: RasterStack, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-left pixels in this source of the patches of the output pixels (cols, rows) of INPUT:
        extraction's (``matching_origins`` of the dataset patches centred there), then the model's
        centred sub-patch of them."""
        half = self.reference_size // 2
        c, r = matching_origins(Source("INPUT", "INPUT", reference, self.reference_size), cols - half, rows - half,
                                Source(self.spec.source, self.parameter, self.stack, self.dataset_size))
        shift = self.dataset_size // 2 - self.spec.patch_size // 2
        return c + shift, r + shift

    def block(self, reference: RasterStack, window: tuple[int, int, int, int]) -> BlockPatches:
        """Source i's patches of the output pixels of ``window`` (INPUT's pixels); those whose centre
        lies outside source i, or on a nodata pixel of it, are ``invalid``."""
        xoff, yoff, width, height = window
        rows, cols = np.divmod(np.arange(width * height), width)
        oc, orow = self.origins(reference, cols + xoff, rows + yoff)
        p, grid = self.spec.patch_size, self.stack.grid
        u, v = grid.fractional_pixel(*reference.grid.pixel_centres(cols + xoff, rows + yoff))
        cc, cr = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)  # source i's pixel under each
        invalid = (cc < 0) | (cr < 0) | (cc >= grid.width) | (cr >= grid.height)
        if invalid.all():
            return BlockPatches(None, oc, orow, p, invalid.reshape(height, width))
        kept = ~invalid
        c0, r0 = int(min(oc[kept].min(), cc[kept].min())), int(min(orow[kept].min(), cr[kept].min()))
        mc = reflected(np.arange(c0, int(max(oc[kept].max() + p, cc[kept].max() + 1))), grid.width)
        mr = reflected(np.arange(r0, int(max(orow[kept].max() + p, cr[kept].max() + 1))), grid.height)
        x0, y0 = int(mc.min()), int(mr.min())
        window_values = self.stack.read((x0, y0, int(mc.max()) - x0 + 1, int(mr.max()) - y0 + 1))
        values = window_values[:, (mr - y0)[:, None], (mc - x0)[None, :]]
        missing = self.stack.nodata_mask(values)
        if missing.any():
            inside = np.flatnonzero(~invalid)
            invalid[inside] = missing[cr[inside] - r0, cc[inside] - c0]
            values = np.where(missing[np.newaxis], self.spec.fill_value()[:, None, None], values.astype(np.float32))
        return BlockPatches(values, oc - c0, orow - r0, p, invalid.reshape(height, width))


def extra_sources(params: Params, description: dict, extractor: FeatureExtractor) -> list[ExtraSource]:
    """INPUT2, INPUT3 opened for the model's other inputs (``checks.input_against_classifier`` has
    checked them against the classifier's description)."""
    sources = description.get("sources") or []
    extras = []
    for index, (spec, entry) in enumerate(zip(extractor.extra, sources[1:]), start=2):
        parameter = f"INPUT{index}"
        stack = RasterStack(params.paths(f"INPUT{index}"), parameter)
        if min(stack.grid.width, stack.grid.height) < 2:
            raise PatchFlowError("the raster is less than 2 pixels wide or high; patches cannot be mirrored at its "
                                 "edges.", parameter)
        extras.append(ExtraSource(parameter, stack, spec, int(sources[0]["dataset_patch_size"]),
                                  int(entry["dataset_patch_size"])))
    return extras
