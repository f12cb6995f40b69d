"""Training setup: the model to train (the MODEL given, or an ARCHITECTURE built for the dataset),
which dataset source feeds each model input, the target to fit (labels, label patches or an image)
and the trained model's card, gathered in a ``TrainingPlan`` before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.datasets import (
    LABELS,
    BatchStream,
    Feed,
    PatchDataset,
    Target,
    balanced_weights,
    label_counts,
    label_values,
)
from ..errors import PatchFlowError
from ..models.fusion import FUSION, fusion_specs, source_pixel_size
from ..models.modelcard import InputSpec, ModelCard, Normalization, OutputSpec
from ..models.srmodel import ARCHITECTURE as SR_ARCHITECTURE
from ..models.srmodel import TASK as SR_TASK
from ..models.srmodel import output_normalization, record_target_range
from ..params import Params
from ..reporting import Reporter
from .trainsettings import IMAGE_LOSSES, Settings


def obtain_model(params: Params, dataset: PatchDataset, settings: Settings, reporter: Reporter | None = None):
    """(model, card or None): the MODEL given (through the safety gate), or ARCHITECTURE built for
    this dataset."""
    from ..models.modelio import load_trainable
    from ..models.zoo import build_model

    model_path = params.string("MODEL")
    if model_path:
        return load_trainable(model_path, "MODEL", params.boolean("TRUST_MODEL"), reporter)
    architecture = params.choice("ARCHITECTURE")
    if architecture == SR_ARCHITECTURE:
        return build_sr_for(params, dataset, settings)
    if architecture in FUSION:  # one input per image source (or per source INPUTS names)
        specs = fusion_specs(dataset.manifest, params.string("INPUTS"))
    else:
        source = dataset.manifest["sources"][0]
        specs = [InputSpec("x1", len(source["bands"]), int(source["patch_size"]), source["name"],
                           Normalization.from_stats(source["bands"]))]
    return build_model(architecture, specs, dataset.classes, params.integer("WIDTH"), settings.seed)


def sr_sources(params: Params, dataset: PatchDataset) -> tuple[dict, dict]:
    """(low-resolution input source, high-resolution target source) of an SR dataset."""
    sources = dataset.manifest["sources"]
    target_name = params.string("TARGET") or next(
        (s["name"] for s in sources if s.get("role") == "target"), None)
    if target_name is None:
        raise PatchFlowError(f"the dataset {dataset.path} has no high-resolution target source: build it with "
                             "'Build super-resolution dataset', or name the TARGET source.", "TARGET")
    target = dataset.source(target_name, "TARGET")
    inputs = [s for s in sources if s.get("role", "image") == "image" and s["name"] != target_name]
    if not inputs:
        raise PatchFlowError(f"the dataset {dataset.path} has no low-resolution image source.", "TRAIN")
    return inputs[0], target


def build_sr_for(params: Params, dataset: PatchDataset, settings: Settings):
    from ..models.srmodel import build_sr_generator

    low, high = sr_sources(params, dataset)
    scale = int(high["patch_size"]) / int(low["patch_size"])
    spec = InputSpec("x1", len(low["bands"]), int(low["patch_size"]), low["name"],
                     Normalization.from_stats(low["bands"]))
    return build_sr_generator(spec, len(high["bands"]), scale, Normalization.from_stats(high["bands"]),
                              params.integer("WIDTH"), seed=settings.seed)


def input_names(model) -> list[str]:
    return [tensor.name.split(":")[0] for tensor in model.inputs] if hasattr(model, "inputs") else []


def input_bands(model) -> dict[str, int | None]:
    return {tensor.name.split(":")[0]: tensor.shape[-1] for tensor in model.inputs}


def input_sizes(model) -> dict[str, int | None]:
    return {tensor.name.split(":")[0]: tensor.shape[1] for tensor in model.inputs}


def parse_inputs(text: str | None, names: list[str], dataset: PatchDataset, card: ModelCard | None) -> dict[str, str]:
    """INPUTS 'x1=source1;x2=source2' -> {input name: source name}; default: the card's, else by order."""
    if text:
        mapping = {}
        for item in text.replace(",", ";").split(";"):
            if item.strip():
                name, _, source = item.partition("=")
                mapping[name.strip()] = source.strip()
    elif card is not None:
        mapping = {spec.name: spec.source for spec in card.inputs}
    else:
        images = [s["name"] for s in dataset.manifest["sources"] if s.get("role", "image") == "image"]
        mapping = dict(zip(names, images))
    for name, source in mapping.items():
        if name not in names:
            raise PatchFlowError(f"the model has no input '{name}'; its inputs are: {', '.join(names)}.", "INPUTS")
        dataset.source(source, "INPUTS")
    missing = [name for name in names if name not in mapping]
    if missing:
        raise PatchFlowError(f"no dataset source feeds the model input(s) {', '.join(missing)}. Give INPUTS as "
                             f"'{missing[0]}=source1' (the dataset has: {', '.join(dataset.sources)}).", "INPUTS")
    return mapping


def check_every_source_used(mapping: dict[str, str], dataset: PatchDataset, params: Params, card: ModelCard | None,
                            reporter: Reporter) -> None:
    """A model that leaves image sources of the dataset unused is refused (it would train and report as if
    they were not there); with an explicit INPUTS the user chose it: a warning names them."""
    images = [s["name"] for s in dataset.manifest["sources"] if s.get("role", "image") == "image"]
    used = set(mapping.values())
    if card is not None and card.task == SR_TASK or params.string("TARGET") in images:
        used.add(params.string("TARGET") or "")
    unused = [name for name in images if name not in used]
    if not unused:
        return
    fed = ", ".join(f"{name} <- {source}" for name, source in mapping.items())
    if params.string("INPUTS"):
        reporter.warning(f"the dataset's source(s) {', '.join(unused)} feed no model input (INPUTS: {fed}): the "
                         "model is trained without them.")
        return
    parameter = "MODEL" if params.string("MODEL") else "ARCHITECTURE"
    what = "the model" if parameter == "MODEL" else f"the zoo's {params.choice('ARCHITECTURE')}"
    raise PatchFlowError(
        f"the dataset {dataset.path} has {len(images)} image sources ({', '.join(images)}) but {what} takes "
        f"{len(mapping)} ({fed}): {', '.join(unused)} would be silently left out. Give a model with an input per "
        "source, extract the dataset from the sources the model takes, or name the sources to use in INPUTS "
        f"(e.g. {next(iter(mapping), 'x1')}={next(iter(mapping.values()), images[0])}) to train without the "
        "others on purpose.", parameter)


def make_feeds(model, card: ModelCard | None, mapping: dict[str, str], dataset: PatchDataset,
               normalization_mode: str) -> list[Feed]:
    bands, sizes = input_bands(model), input_sizes(model)
    feeds = []
    for name, source_name in mapping.items():
        source = dataset.source(source_name)
        have_bands, have_size = len(source["bands"]), int(source["patch_size"])
        if bands[name] is not None and bands[name] != have_bands:
            raise PatchFlowError(f"the model input '{name}' takes {bands[name]} bands but the dataset source "
                                 f"'{source_name}' has {have_bands}. Create the model from this dataset, or "
                                 "extract patches from the rasters the model was made for.", "MODEL")
        spec = next((s for s in card.inputs if s.name == name), None) if card else None
        size = sizes[name] or (spec.patch_size if spec else have_size)
        if size > have_size:
            raise PatchFlowError(f"the model input '{name}' needs {size}x{size} px patches but the dataset source "
                                 f"'{source_name}' has {have_size}x{have_size}. Extract patches of {size} px or "
                                 "more.", "TRAIN")
        feeds.append(Feed(name, source_name, size, have_bands, choose_normalization(spec, source, normalization_mode)))
    return feeds


def choose_normalization(spec: InputSpec | None, source: dict, mode: str) -> Normalization:
    if mode == "none":
        return Normalization()
    if mode == "auto" and spec is not None and spec.normalization.kind != "none":
        return spec.normalization
    return Normalization.from_stats(source["bands"])


def probe_output(model, feeds: list[Feed]) -> tuple[int, ...]:
    """The model's output shape (without batch) for the fed patch sizes; errors when it cannot run."""
    inputs = {f.input_name: np.zeros((1, f.size, f.size, f.bands), np.float32) for f in feeds}
    try:
        output = model(inputs if len(inputs) > 1 else next(iter(inputs.values())), training=False)
    except Exception as exc:  # noqa: BLE001 - a model that cannot take the dataset's patches
        raise PatchFlowError(f"the model cannot run on the dataset's patches ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:300]}).", "MODEL") from None
    if isinstance(output, dict):
        output = output.get("probabilities", next(iter(output.values())))
    elif isinstance(output, (list, tuple)):
        output = output[0]
    return tuple(int(d) for d in output.shape[1:])


def make_target(params: Params, dataset: PatchDataset, output_shape: tuple[int, ...], classes: list[dict],
                loss: str, card: ModelCard | None = None) -> Target:
    """What to fit: the labels image (classification), label patches (segmentation) or an image."""
    name = params.string("TARGET")
    if card is not None and card.task == SR_TASK or name is None and any(
            s.get("role") == "target" for s in dataset.manifest["sources"]):
        name = name or sr_sources(params, dataset)[1]["name"]
        return image_target(dataset, name, output_shape, card)
    if name is None:
        label_sources = [s["name"] for s in dataset.manifest["sources"] if s.get("role") == "label"]
        name = LABELS if dataset.has_labels else (label_sources[0] if label_sources else None)
        if name is None:
            raise PatchFlowError(f"the dataset {dataset.path} has neither a labels image nor label patches. Extract "
                                 "it with a class field or a label raster, or name the TARGET source.", "TRAIN")
    if name != LABELS:
        dataset.source(name, "TARGET")
    if loss in IMAGE_LOSSES:
        return image_target(dataset, name, output_shape, card)
    ids = [int(c["id"]) for c in classes]
    channels = output_shape[-1]
    if len(ids) != channels:
        raise PatchFlowError(f"the model outputs {channels} classes but the dataset has {len(ids)} ({ids}). Create "
                             "the model from this dataset (N_CLASSES), or use a dataset with the model's classes.",
                             "MODEL")
    if name == LABELS:
        shape = () if len(output_shape) == 1 else output_shape[:2]
        if shape not in ((), (1, 1)):
            raise PatchFlowError(f"the model outputs {output_shape[0]}x{output_shape[1]} px maps but the dataset has "
                                 "one label per patch. Use a patch-based model (patch_cnn), or a dataset with label "
                                 "patches (extract with a label raster).", "MODEL")
        return Target(LABELS, "classes", shape, ids)
    source = dataset.source(name)
    size = int(source["patch_size"])
    if len(output_shape) != 3 or output_shape[0] != output_shape[1] or output_shape[0] > size:
        raise PatchFlowError(f"the model outputs {output_shape} for the dataset's patches but the label patches are "
                             f"{size}x{size} px. Use a segmentation model (fcnn, unet) whose output covers the "
                             "label patch.", "MODEL")
    return Target(name, "classes", output_shape[:2], ids, nodata=source["bands"][0].get("nodata"))


def image_target(dataset: PatchDataset, name: str, output_shape: tuple[int, ...],
                 card: ModelCard | None = None) -> Target:
    """An image to reproduce, standardised as the model outputs it (an SR card's output normalisation,
    else the target source's statistics)."""
    if name == LABELS:
        raise PatchFlowError("an image loss (L1, L2, SSIM) needs an image TARGET source, not the labels image.",
                             "TARGET")
    source = dataset.source(name, "TARGET")
    size = int(source["patch_size"])
    if len(output_shape) != 3 or output_shape[0] > size:
        raise PatchFlowError(f"the model outputs {output_shape} for the input patches but the target patches are "
                             f"{size}x{size} px: the scale of the model and of the dataset differ.", "TARGET")
    if output_shape[-1] != len(source["bands"]):
        raise PatchFlowError(f"the model outputs {output_shape[-1]} bands but the target '{name}' has "
                             f"{len(source['bands'])}.", "TARGET")
    normalization = output_normalization(card) if card is not None and card.task == SR_TASK else None
    if normalization is None or normalization.kind == "none":
        normalization = Normalization.from_stats(source["bands"])
    return Target(name, "image", output_shape[:2], normalization=normalization)


def card_for(model, card: ModelCard | None, feeds: list[Feed], target: Target, classes: list[dict],
             architecture: str, dataset: PatchDataset | None = None) -> ModelCard:
    """The card of the trained model: the model's own, with this training's inputs (each with its source's
    pixel size in ``dataset``'s manifest, which says at what resolution it is served) and classes."""
    sizes = {f.source: source_pixel_size(dataset.source(f.source)) if dataset is not None else None for f in feeds}
    inputs = [InputSpec(f.input_name, f.bands, f.size, f.source, f.normalization, sizes[f.source]) for f in feeds]
    if card is not None:
        card.inputs = inputs
        card.classes = classes if target.kind == "classes" else card.classes
        return card
    task = "image" if target.kind == "image" else ("classification" if target.shape in ((), (1, 1))
                                                   else "segmentation")
    kind = "image" if target.kind == "image" else "probabilities"
    size = feeds[0].size
    expression = 1 if target.shape in ((), (1, 1)) else target.shape[0]
    return ModelCard(architecture, task, inputs,
                     [OutputSpec("probabilities" if kind == "probabilities" else "image", kind,
                                 len(classes) if kind == "probabilities" else 0)],
                     receptive_field=size, expression_field=expression,
                     classes=classes if target.kind == "classes" else [])


@dataclass
class TrainingPlan:
    card: ModelCard
    train_stream: BatchStream
    valid_stream: BatchStream | None
    target: Target
    classes: list[dict]
    architecture: str


def plan_training(params: Params, model, card: ModelCard | None, train: PatchDataset, valid: PatchDataset | None,
                  settings: Settings, context_reporter) -> TrainingPlan:
    names = input_names(model)
    mapping = parse_inputs(params.string("INPUTS"), names, train, card)
    check_every_source_used(mapping, train, params, card, context_reporter)
    feeds = make_feeds(model, card, mapping, train, params.choice("NORMALIZATION"))
    output_shape = probe_output(model, feeds)
    classes = card.classes if card is not None and card.classes else train.classes
    target = make_target(params, train, output_shape, classes, settings.loss, card)
    if target.kind == "classes":
        counts = label_counts(train, target)
        if counts.sum() == 0:
            raise PatchFlowError(f"the dataset {train.path} has no labelled sample.", "TRAIN")
        if settings.class_weights == "auto":
            target.class_weights = balanced_weights(counts)
    valid_stream = None
    if valid is not None:
        for feed in feeds:
            other = valid.source(feed.source, "VALID")
            if len(other["bands"]) != feed.bands or int(other["patch_size"]) < feed.size:
                raise PatchFlowError(f"the validation source '{feed.source}' has {len(other['bands'])} bands of "
                                     f"{other['patch_size']} px; training has {feed.bands} bands of {feed.size} px.",
                                     "VALID")
        valid_target = Target(target.source, target.kind, target.shape, target.class_ids, target.nodata,
                              normalization=target.normalization)
        if valid_target.kind == "classes":
            classes = classes + validation_only_classes(valid, valid_target, classes, context_reporter)
        valid_stream = BatchStream(valid, feeds, valid_target, settings.batch_size)
    train_stream = BatchStream(train, feeds, target, settings.batch_size, shuffle=True, augment=settings.augment,
                               seed=settings.seed)
    architecture = card.architecture if card is not None else "user"
    model_classes = classes[:len(target.class_ids)] if target.kind == "classes" else classes
    plan_card = card_for(model, card, feeds, target, model_classes, architecture, train)
    if target.kind == "image":  # the HR range, for Apply model's CLIP
        record_target_range(plan_card, train.source(target.source)["bands"])
    return TrainingPlan(plan_card, train_stream, valid_stream, target, classes, architecture)


def validation_only_classes(valid: PatchDataset, target: Target, classes: list[dict], reporter: Reporter) -> list[dict]:
    """Classes found only in the validation set: the model cannot predict them, so their samples are
    scored as errors (honest figures) but left out of the validation loss."""
    extra = [v for v in label_values(valid, target) if v not in target.class_ids]
    if not extra:
        return []
    known = {int(c["id"]): c for c in valid.classes}
    added = [known.get(v, {"id": v, "name": f"class {v}", "color": "#7f7f7f"}) for v in extra]
    names = ", ".join(f"{c['id']} ({c.get('name', '')})" for c in added)
    reporter.warning(f"the validation set has class(es) absent from training: {names}. The model cannot predict "
                     "them; their samples count as errors in the scores.")
    target.class_ids = target.class_ids + extra
    target.model_classes = len(target.class_ids) - len(extra)
    return [{"id": int(c["id"]), "name": c.get("name", f"class {c['id']}"), "color": c.get("color", "#7f7f7f")}
            for c in added]
