"""Cheap checks every operation runs first, so that a bad input fails in a fraction of a second,
before TensorFlow, scikit-learn or any long read starts: outputs writable, rasters readable (a
truncated file names its parameter), label rasters holding whole numbers, band counts against the
model card, classes in a training set. And the warnings that say what a run does with a
surprising input (a raster without a CRS, a class missing from a validation or test set).

Nothing here writes a file a user would see (the writability probe is a hidden folder, removed at
once) and nothing imports TensorFlow, Keras or scikit-learn.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator

import numpy as np

from .errors import PatchFlowError
from .params import Params
from .reporting import Reporter

SAMPLED_BLOCKS = 32  # blocks per band whose place in a GeoTIFF is checked, and read for label checks
SAMPLED_BANDS = 16
IMAGE_LOSSES = ("l1", "l2", "ssim")


# ---- outputs ------------------------------------------------------------------------------------


def writable(params: Params, *names: str) -> None:
    """Each output parameter given in ``names`` can be written: its folder exists and takes files,
    or the nearest existing folder above it takes the folders to make."""
    for name in names:
        path = params.values.get(name)
        if path in (None, ""):
            continue
        check_writable(str(path), name)


def check_writable(path: str, parameter: str) -> None:
    final = os.path.abspath(path.split("|", 1)[0])
    folder = os.path.dirname(final)
    existing = folder
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        raise PatchFlowError(f"cannot write to folder {folder}: {existing} is a file, not a folder. Choose an output "
                             "in a folder you can write to.", parameter)
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".patchflow-probe-", dir=existing))
    except OSError as exc:
        raise PatchFlowError(f"cannot write to folder {folder} ({exc.strerror or exc}). Choose an output in a folder "
                             "you can write to.", parameter) from None


# ---- rasters ------------------------------------------------------------------------------------


def raster_paths(params: Params, name: str) -> list[str]:
    value = params.values.get(name)
    if value in (None, "", []):
        return []
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


def rasters(params: Params, *names: str, reporter: Reporter | None = None, labels: dict[str, str | None] | None = None,
            crs: bool = True) -> None:
    """Every raster of the parameters ``names`` opens and its blocks can be read. ``labels`` maps
    the label rasters among them to their band parameter (None: band 1): they must hold whole
    numbers (class ids). A raster without a CRS gets a warning (unless ``crs`` is False)."""
    labels = labels or {}
    for name in names:
        for path in raster_paths(params, name):
            ds = readable_raster(path, name)
            if crs and reporter is not None and not ds.GetProjection():
                reporter.warning(f"{name}: {path} has no CRS (coordinate reference system): its coordinates are used "
                                 "as they are, in the units of the other inputs. If it has one, assign it first "
                                 "(gdal_edit.py -a_srs EPSG:xxxx).")
            if name in labels:
                band_name = labels[name]
                band = params.values.get(band_name) if band_name else None
                integer_valued(ds, path, name, _band_number(band))


def _band_number(value) -> int:
    try:
        return max(1, int(value)) if value not in (None, "") else 1
    except (TypeError, ValueError):
        return 1  # the operation reports a bad band number


def readable_raster(path: str, parameter: str):
    """The opened dataset, after checking that the blocks at its end can be read: a truncated or
    damaged file fails here, naming ``parameter``, instead of halfway through a run."""
    from .geodata.raster import open_raster

    ds = open_raster(path, parameter)
    size = os.path.getsize(path) if os.path.isfile(path) else None
    gtiff = ds.GetDriver().ShortName == "GTiff" and size is not None
    for index in _spread(ds.RasterCount, SAMPLED_BANDS, base=1):
        band = ds.GetRasterBand(index)
        bx, by = band.GetBlockSize()
        nx, ny = math.ceil(ds.RasterXSize / max(1, bx)), math.ceil(ds.RasterYSize / max(1, by))
        if gtiff and size is not None:
            for block in _spread(nx * ny, SAMPLED_BLOCKS):
                x, y = block % nx, block // nx
                offset = band.GetMetadataItem(f"BLOCK_OFFSET_{x}_{y}", "TIFF")
                length = band.GetMetadataItem(f"BLOCK_SIZE_{x}_{y}", "TIFF")
                if offset and length and int(offset) + int(length) > size:
                    raise PatchFlowError(
                        f"{path} is truncated: it is {size} bytes long but the data of its band {index} reaches byte "
                        f"{int(offset) + int(length)} (an interrupted copy or download?). Copy or write it again.",
                        parameter)
        x0, y0 = (nx - 1) * bx, (ny - 1) * by
        try:
            band.ReadRaster(x0, y0, min(bx, ds.RasterXSize - x0), min(by, ds.RasterYSize - y0))
        except RuntimeError as exc:
            raise PatchFlowError(f"{path} cannot be read ({str(exc).strip()}): the file is damaged or truncated. Copy "
                                 "or write it again.", parameter) from None
    return ds


def integer_valued(ds, path: str, parameter: str, band_index: int = 1) -> None:
    """A label raster holds class ids: an integer type passes at once; a float one passes when
    the blocks sampled hold whole numbers only (nodata and NaN aside)."""
    from .geodata.raster import gdal_array_dtype

    if not 1 <= band_index <= ds.RasterCount:
        return  # the operation says which bands exist
    band = ds.GetRasterBand(band_index)
    dtype = gdal_array_dtype(band.DataType)
    if dtype.kind in "iub":
        return
    nodata = band.GetNoDataValue()
    bx, by = band.GetBlockSize()
    nx, ny = math.ceil(ds.RasterXSize / max(1, bx)), math.ceil(ds.RasterYSize / max(1, by))
    for block in _spread(nx * ny, SAMPLED_BLOCKS):
        x0, y0 = (block % nx) * bx, (block // nx) * by
        values = band.ReadAsArray(x0, y0, min(bx, ds.RasterXSize - x0), min(by, ds.RasterYSize - y0))
        if dtype.kind == "c":
            raise PatchFlowError(f"{path} holds complex numbers ({dtype.name}), not class ids. Give a raster of class "
                                 "ids (whole numbers).", parameter)
        values = values.astype(np.float64, copy=False)
        kept = np.isfinite(values)
        if nodata is not None and math.isfinite(nodata):
            kept &= values != nodata
        fractional = kept & (values != np.round(values))
        if fractional.any():
            value = float(values[fractional][0])
            raise PatchFlowError(
                f"{path} is not a label raster: band {band_index} ({dtype.name}) holds {value:.6g}, not a class id (a "
                "whole number). Is it an image (e.g. reflectances)? Give the raster of class ids.", parameter)


def _spread(count: int, most: int, base: int = 0) -> Iterator[int]:
    """Up to ``most`` indices from base..base+count-1, evenly spread, the last one included."""
    if count <= 0:
        return iter(())
    if count <= most:
        return iter(range(base, base + count))
    picks = sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})
    return iter(base + p for p in picks)


# ---- datasets -----------------------------------------------------------------------------------


def dataset(path: str | None, parameter: str) -> dict | None:
    """The manifest at ``path`` (None when not given, or a .tif that the operation explains), after
    checking its patches-images and labels image can be read."""
    from .data.manifest import load_manifest, refuse_nonfinite

    if not path or str(path).lower().endswith((".tif", ".tiff")):
        return None
    manifest = load_manifest(str(path), parameter)
    refuse_nonfinite(manifest, str(path), parameter)  # data that cannot be trained on, before any other advice
    images = [source.get("patches") for source in manifest.get("sources") or []]
    if manifest.get("labels"):
        images.append(manifest["labels"].get("patches"))
    for image in images:
        if image:
            readable_raster(image, parameter)
    return manifest


def class_counts(manifest: dict, parameter: str = "TRAIN") -> dict[int, int] | None:
    """Samples per class: read from the labels image (one class per patch), else the manifest's
    counts (label patches); None when neither tells."""
    from .geodata.raster import open_raster

    labels = manifest.get("labels")
    if labels and int(labels.get("patch_size") or 1) == 1:
        values = open_raster(labels["patches"], parameter).ReadAsArray()
        ids, counts = np.unique(values, return_counts=True)
        return {int(i): int(n) for i, n in zip(ids, counts)}
    classes = manifest.get("classes") or []
    if classes and all(c.get("count") is not None for c in classes):
        return {int(c["id"]): int(c["count"]) for c in classes}
    return None


def class_names(manifest: dict) -> dict[int, str]:
    return {int(c["id"]): str(c.get("name") or f"class {c['id']}") for c in manifest.get("classes") or []}


def two_classes(manifest: dict, path: str | None, parameter: str) -> dict[int, int] | None:
    """The class counts, after checking there are 2 classes or more to learn."""
    counts = class_counts(manifest, parameter)
    if counts is None:
        return None
    present = sorted(c for c, n in counts.items() if n > 0)
    if len(present) < 2:
        names = class_names(manifest)
        found = ", ".join(f"{c} ({names.get(c, f'class {c}')})" for c in present) or "none"
        raise PatchFlowError(f"the dataset {path} holds {len(present)} class ({found}); a classifier learns to tell 2 "
                             "classes or more apart. Sample more classes (e.g. strategy 'constant'), or check the "
                             "class field.", parameter)
    return counts


def missing_classes(reporter: Reporter, counts: dict[int, int], other: dict[int, int] | None, names: dict[int, str],
                    what: str) -> None:
    """Warn about classes of ``counts`` that ``other`` (a validation or test set) has no sample of."""
    if other is None:
        return
    absent = sorted(c for c, n in counts.items() if n > 0 and other.get(c, 0) == 0)
    if absent:
        listed = ", ".join(f"{c} ({names.get(c, f'class {c}')})" for c in absent)
        reporter.warning(f"{what} has no sample of class(es) {listed}: their recall and F1 cannot be measured "
                         "there, and its overall scores say nothing about them.")


def image_target(params: Params, manifest: dict) -> bool:
    """Whether training learns an image (super-resolution, image losses) rather than classes."""
    if params.values.get("TARGET") or str(params.values.get("LOSS") or "").lower() in IMAGE_LOSSES:
        return True
    if params.values.get("LOSS_WEIGHTS"):
        return True
    return any(s.get("role") == "target" for s in manifest.get("sources") or [])


# ---- models -------------------------------------------------------------------------------------


def model_folder(path: str) -> str:
    path = path.rstrip("/\\") or path
    return os.path.dirname(path) if os.path.basename(path) == "saved_model.pb" else path


def card_of(path: str | None, parameter: str = "MODEL"):
    """The model card of MODEL (None without a model or a card); a missing model is an error."""
    from .models.modelcard import load_card
    from .models.modelio import model_kind

    if not path:
        return None
    folder = model_folder(str(path))
    model_kind(folder, parameter)
    return load_card(folder, parameter)


def card_against_dataset(card, manifest: dict, inputs_text: str | None, path: str | None) -> None:
    """The bands and patch size each model input takes (its card) against the dataset's sources."""
    if card is None:
        return
    mapping = {spec.name: spec.source for spec in card.inputs}
    sources = {s["name"]: s for s in manifest.get("sources") or []}
    for item in (inputs_text or "").replace(",", ";").split(";"):
        name, _, source = item.partition("=")
        name, source = name.strip(), source.strip()
        if not name:
            continue
        if name not in mapping:
            raise PatchFlowError(f"the model has no input '{name}'; its inputs are: {', '.join(mapping)} (its card).",
                                 "INPUTS")
        if source not in sources:
            raise PatchFlowError(f"the dataset {path} has no source '{source}'; it has: {', '.join(sources)}.",
                                 "INPUTS")
        mapping[name] = source
    if len(card.inputs) == 1 and card.inputs[0].source not in sources and not inputs_text:
        images = [s for s in manifest.get("sources") or [] if s.get("role", "image") == "image"]
        mapping = {card.inputs[0].name: images[0]["name"]} if images else mapping
    for spec in card.inputs:
        entry = sources.get(mapping.get(spec.name, ""))
        if entry is None:
            continue  # the operation names the missing source
        bands, size = len(entry["bands"]), int(entry["patch_size"])
        if bands != spec.bands:
            raise PatchFlowError(f"the model input '{spec.name}' takes {spec.bands} bands (its card) but the dataset "
                                 f"source '{entry['name']}' of {path} has {bands}. Use a dataset extracted from the "
                                 "bands the model was made for, or create a model from this dataset.", "MODEL")
        if spec.patch_size > size:
            raise PatchFlowError(f"the model input '{spec.name}' takes {spec.patch_size}x{spec.patch_size} px patches "
                                 f"(its card) but {path} has {size}x{size}. Extract patches of {spec.patch_size} px or "
                                 "more.", "MODEL")


def stacked_bands(paths: list[str]) -> int:
    from osgeo import gdal

    return sum(gdal.Open(p).RasterCount for p in paths)


def sources_against_card(params: Params, card, sources: int = 3) -> None:
    """apply_model: one source per model input, each with the bands its input takes (the card)."""
    if card is None:
        return
    stacks = [(f"SOURCE{i}", raster_paths(params, f"SOURCE{i}")) for i in range(1, sources + 1)]
    stacks = [(name, paths) for name, paths in stacks if paths]
    given = [n.strip() for n in str(params.values.get("INPUT_NAMES") or "").split(";") if n.strip()]
    names = given or [spec.name for spec in card.inputs]
    if len(stacks) != len(card.inputs):
        listed = ", ".join(spec.name for spec in card.inputs)
        raise PatchFlowError(f"the model has {len(card.inputs)} input(s) ({listed}) but {len(stacks)} source(s) were "
                             "given. Give one source per model input.", "SOURCE1")
    specs = {spec.name: spec for spec in card.inputs}
    for (parameter, paths), name in zip(stacks, names):
        spec = specs.get(name)
        if spec is None:
            continue  # INPUT_NAMES is checked with the model
        bands = stacked_bands(paths)
        if bands != spec.bands:
            raise PatchFlowError(f"the model's input '{name}' takes {spec.bands} bands but {parameter} has {bands}. "
                                 "Stack the bands the model was trained on, in order.", parameter)


def classifier_description(path: str | None) -> dict | None:
    """The ``<stem>.json`` beside a classifier, or None when it is missing or unreadable (the
    classifier's loader explains)."""
    if not path:
        return None
    try:
        with open(os.path.splitext(str(path))[0] + ".json", encoding="utf-8") as handle:
            description = json.load(handle)
    except (OSError, ValueError):
        return None
    return description if isinstance(description, dict) else None


def input_against_classifier(params: Params, description: dict | None) -> None:
    if description is None or "bands" not in description:
        return
    paths = raster_paths(params, "INPUT")
    bands, have = int(description["bands"]), stacked_bands(paths)
    if paths and have != bands:
        names = ", ".join(description.get("band_descriptions") or [])
        raise PatchFlowError(f"the classifier was trained on {bands} bands ({names}) but the input has {have}. Give "
                             "the same bands, stacked in the same order.", "INPUT")


def classes_missing_from_sets(reporter: Reporter, sets: np.ndarray, class_ids: np.ndarray | None, names: dict,
                              written: Iterable[str]) -> None:
    """grid_split: warn when the validation or test set written lacks a class the training set has."""
    if class_ids is None:
        return
    sets, class_ids = np.asarray(sets).ravel(), np.asarray(class_ids).ravel()
    per_set = []
    for index in range(3):
        ids, counts = np.unique(class_ids[sets == index], return_counts=True)
        per_set.append({int(i): int(n) for i, n in zip(ids, counts) if int(i) != -1})
    labels = {int(k): (v.name if hasattr(v, "name") else str(v)) for k, v in names.items()}
    for index, (output, what) in enumerate((("OUTPUT_VALID", "the validation set (OUTPUT_VALID)"),
                                            ("OUTPUT_TEST", "the test set (OUTPUT_TEST)")), start=1):
        if output in written and per_set[index]:
            missing_classes(reporter, per_set[0], per_set[index], labels, what)


def classes_missing_from_reference(reporter: Reporter, rows: list[dict], known_map: dict, parameter: str) -> None:
    """assess_accuracy: warn about classes of the map (given at reference samples, or named in the
    map's legend) that the reference (the test set) has no sample of."""
    mapped = {int(row["id"]): int(row["predicted"]) for row in rows}
    names = {int(k): getattr(v, "name", "") for k, v in known_map.items()}
    for class_id, name in names.items():
        if name:
            mapped[class_id] = max(1, mapped.get(class_id, 0))
    names.update({int(row["id"]): row["name"] for row in rows})
    reference = {int(row["id"]): int(row["reference"]) for row in rows}
    missing_classes(reporter, mapped, reference, names, f"the reference ({parameter})")


# ---- training -----------------------------------------------------------------------------------


def training(params: Params, reporter: Reporter, batch_size: int, epochs: int) -> None:
    """train_model: OUTPUT writable, TRAIN/VALID readable, 2 classes or more in TRAIN, the model
    card (or the architecture) fits TRAIN; warnings for a batch larger than TRAIN and for classes
    VALID has no sample of."""
    writable(params, "OUTPUT")
    train_path, valid_path = params.values.get("TRAIN"), params.values.get("VALID") or None
    train = dataset(train_path, "TRAIN")
    valid = dataset(valid_path, "VALID")
    if train is None:
        return
    model = params.values.get("MODEL") or None
    card_against_dataset(card_of(model) if model else None, train, params.values.get("INPUTS"), train_path)
    if valid is not None:
        sources = {s["name"]: s for s in valid.get("sources") or []}
        for source in train.get("sources") or []:
            other = sources.get(source["name"])
            if other is not None and len(other["bands"]) != len(source["bands"]):
                raise PatchFlowError(f"the validation source '{source['name']}' has {len(other['bands'])} bands; "
                                     f"training has {len(source['bands'])}. Extract both from the same rasters.",
                                     "VALID")
    if not image_target(params, train):
        if not train.get("labels") and not any(s.get("role") == "label" for s in train.get("sources") or []):
            raise PatchFlowError(f"the dataset {train_path} has neither a labels image nor label patches. Extract it "
                                 "with a class field or a label raster, or name the TARGET source.", "TRAIN")
        counts = two_classes(train, train_path, "TRAIN")
        if counts is not None and valid is not None:
            missing_classes(reporter, counts, class_counts(valid, "VALID"), class_names(train), f"VALID ({valid_path})")
    if not model:
        architecture_fits(params, train)
    count = int(train.get("n_patches") or 0)
    if 0 < count < batch_size:
        reporter.warning(f"BATCH_SIZE {batch_size} is larger than TRAIN's {count} patches: each epoch is one batch "
                         f"of {count} patches.")


def architecture_fits(params: Params, manifest: dict) -> None:
    """The architecture to build (no MODEL) can be built for TRAIN's first source and classes."""
    from .models.modelcard import InputSpec
    from .models.srmodel import ARCHITECTURE as SR_ARCHITECTURE
    from .models.zoo import check_build

    architecture = params.choice("ARCHITECTURE")
    sources = manifest.get("sources") or []
    if architecture == SR_ARCHITECTURE or not sources or image_target(params, manifest):
        return
    source = sources[0]
    spec = InputSpec("x1", len(source["bands"]), int(source["patch_size"]), source["name"])
    try:
        check_build(architecture, [spec], list(manifest.get("classes") or []))
    except PatchFlowError as exc:
        if exc.parameter == "ARCHITECTURE":
            raise
        raise PatchFlowError(f"{exc.message} (the dataset has {spec.bands} bands, {spec.patch_size} px patches and "
                             f"{len(manifest.get('classes') or [])} classes)", "TRAIN") from None


def resume(params: Params, reporter: Reporter, work: str, signature: str, epochs: int) -> None:
    """Say what RESUME does: nothing to resume, or more epochs done than EPOCHS asks."""
    if not params.boolean("RESUME"):
        return
    if not os.path.isdir(work):
        output = work[:-len(".training")] if work.endswith(".training") else work
        say = reporter.warning if os.path.isdir(output) and os.listdir(output) else reporter.log
        # a warning when OUTPUT holds a finished model (one might expect to train it on); RESUME is on by
        # default, so for a new OUTPUT it is only a log line
        say(f"RESUME: there is no interrupted training of this OUTPUT to resume ({work} does not exist): "
            "training starts at epoch 1." + (" A finished model is not trained on: give it as MODEL to fine-tune it."
                                             if say == reporter.warning else ""))
        return
    try:
        with open(os.path.join(work, "state.json"), encoding="utf-8") as handle:
            state = json.load(handle)
        done = int(state["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return  # the training says the checkpoint is not used
    if state.get("signature") == signature and os.path.exists(os.path.join(work, "checkpoint.keras")) and \
            done > epochs:
        reporter.warning(f"RESUME: the interrupted training in {work} has done {done} epochs, more than EPOCHS "
                         f"({epochs}): no epoch is trained, the model is exported as it is after epoch {done}. Raise "
                         "EPOCHS to train on, or untick RESUME to start over.")


def classifier_training(params: Params) -> None:
    """train_classifier: OUTPUT writable, DATASET/VALID readable with 2 classes or more, the model
    card's bands and patch size fit DATASET."""
    writable(params, "OUTPUT")
    path = params.values.get("DATASET")
    train = dataset(path, "DATASET")
    dataset(params.values.get("VALID") or None, "VALID")
    if train is None:
        return
    model = params.values.get("MODEL") or None
    card = card_of(model) if model else None
    card_against_dataset(card, train, None, path)
    outputs_in_card(model, card, [str(params.values.get("FEATURE_OUTPUT") or "features")], "FEATURE_OUTPUT")
    if train.get("labels") and int(train["labels"].get("patch_size") or 1) == 1:
        two_classes(train, path, "DATASET")


def outputs_in_card(path: str | None, card, names: list[str], parameter: str) -> None:
    """The model outputs asked for exist: a SavedModel PatchFlow wrote serves exactly its card's."""
    from .models.modelio import model_kind

    if not path or card is None or not card.outputs or model_kind(model_folder(str(path))) != "patchflow":
        return
    known = [spec.name for spec in card.outputs]
    unknown = [name.strip() for name in names if name.strip() and name.strip().split(":")[0] not in known]
    if unknown:
        raise PatchFlowError(f"the model has no output {', '.join(unknown)}; its outputs: {', '.join(known)}.",
                             parameter)


def extent_overlaps(params: Params, name: str = "SOURCE1") -> None:
    """EXTENT overlaps the first raster of ``name``."""
    from .geodata.raster import Grid, open_raster, parse_extent

    text, paths = str(params.values.get("EXTENT") or ""), raster_paths(params, name)
    if not text.strip() or not paths:
        return
    grid = Grid.of(open_raster(paths[0], name), name)
    xmin, xmax, ymin, ymax = parse_extent(text, grid, f"{name}'s")
    gx0, gy0, gx1, gy1 = grid.extent
    if xmax <= gx0 or xmin >= gx1 or ymax <= gy0 or ymin >= gy1:
        raise PatchFlowError(f"the extent {xmin:g},{xmax:g},{ymin:g},{ymax:g} lies outside {name} ({gx0:g},{gx1:g},"
                             f"{gy0:g},{gy1:g}). Choose an extent that overlaps the image.", "EXTENT")
