"""Train model: a zoo architecture or the user's model, fitted on patches streamed from disk.

While it trains, ``<OUTPUT>.training/`` holds the last complete epoch (model with optimiser state,
history, best epoch): a run that is interrupted (cancel, crash, power cut) resumes from there. At
the end, OUTPUT receives the SavedModel and its card, the training report (HTML), the history
(CSV), the validation scores (CSV) and the TensorBoard logs; the work folder is then removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ...protocol import strict_dump
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
from ..data.records import expected_bytes, record_dataset, room_for, write_records
from ..errors import Cancelled, PatchFlowError
from ..models.modelcard import InputSpec, ModelCard, Normalization, OutputSpec
from ..models.srmodel import ARCHITECTURE as SR_ARCHITECTURE
from ..models.srmodel import TASK as SR_TASK
from ..models.srmodel import output_normalization
from ..ownership import check_replaceable, mark_folder
from ..params import Params, RunContext
from ..reporting import Reporter

if TYPE_CHECKING:
    from ..evaluate.metrics import Scores
    from ..geodata.classes import ClassLike

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
LOSSES = ("auto", "crossentropy", "l1", "l2", "ssim")
IMAGE_LOSSES = ("l1", "l2", "ssim")
ADVERSARIAL = "adversarial"  # LOSS_WEIGHTS key: an LSGAN discriminator trains against the generator
DEVICES = ("auto", "cpu", "gpu", "multi-gpu")
CLASS_WEIGHTS = ("none", "auto")
WORK_SUFFIX = ".training"
CHECKPOINT = "checkpoint.keras"
BEST = "best.weights.h5"
STATE = "state.json"


@dataclass
class Settings:
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str
    loss: str
    class_weights: str
    augment: bool
    patience: int
    seed: int
    device: str
    loss_weights: dict[str, float] | None = None  # image targets: {"l1": 1, "ssim": 0.2, "adversarial": 1e-3}
    pretrain_epochs: int | None = None  # adversarial training: content loss alone first (None: half the epochs)

    @classmethod
    def from_params(cls, params: Params) -> Settings:
        return cls(
            epochs=params.integer("EPOCHS"),
            batch_size=params.integer("BATCH_SIZE"),
            learning_rate=params.number("LEARNING_RATE"),
            optimizer=params.choice("OPTIMIZER"),
            loss=params.choice("LOSS"),
            loss_weights=parse_loss_weights(params.string("LOSS_WEIGHTS")),
            pretrain_epochs=params.integer("PRETRAIN_EPOCHS"),
            class_weights=params.choice("CLASS_WEIGHTS"),
            augment=params.boolean("AUGMENT"),
            patience=params.integer("PATIENCE"),
            seed=params.integer("SEED"),
            device=params.choice("DEVICE"),
        )


def parse_loss_weights(text: str | None) -> dict[str, float] | None:
    """LOSS_WEIGHTS "l1=1;ssim=0.2" (image targets) -> {"l1": 1.0, "ssim": 0.2}; None when empty."""
    if not text or not text.strip():
        return None
    weights = {}
    for item in text.replace(",", ";").split(";"):
        if not item.strip():
            continue
        name, _, value = item.partition("=")
        name = name.strip().lower()
        if name not in (*IMAGE_LOSSES, ADVERSARIAL):
            raise PatchFlowError(f"'{name}' is not an image loss; LOSS_WEIGHTS combines {', '.join(IMAGE_LOSSES)} "
                                 f"and {ADVERSARIAL} as 'l1=1;ssim=0.2;adversarial=0.001'.", "LOSS_WEIGHTS")
        try:
            weights[name] = float(value)
        except ValueError:
            raise PatchFlowError(f"'{item.strip()}' needs a number after '='.", "LOSS_WEIGHTS") from None
    if not any(v for k, v in weights.items() if k != ADVERSARIAL):
        raise PatchFlowError("LOSS_WEIGHTS needs a content loss (l1, l2 or ssim) with a weight above 0, the "
                             "adversarial loss only adds to it.", "LOSS_WEIGHTS")
    return weights


@dataclass
class State:
    """What the work folder remembers between epochs (and between runs, to resume)."""

    signature: str
    epoch: int = 0  # epochs completed
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = 0
    best_value: float | None = None
    seconds: float = 0.0

    def save(self, folder: str) -> None:
        temporary = os.path.join(folder, STATE + ".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            strict_dump(self.__dict__, handle)  # a NaN loss is written as null, read back as NaN
        os.replace(temporary, os.path.join(folder, STATE))

    @classmethod
    def load(cls, folder: str) -> State | None:
        try:
            with open(os.path.join(folder, STATE), encoding="utf-8") as handle:
                state = cls(**json.load(handle))
            state.history = {key: [float("nan") if v is None else v for v in values]
                             for key, values in state.history.items()}
        except (OSError, ValueError, TypeError, AttributeError):
            return None
        return state


# ---- devices ----------------------------------------------------------------------------------------


def select_device(device: str, reporter: Reporter):
    """Make TensorFlow use the chosen device(s); returns a distribution strategy."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu" or (device == "auto" and not gpus):
        if gpus:
            tf.config.set_visible_devices([], "GPU")
        reporter.log("device: CPU")
        return tf.distribute.get_strategy()
    if not gpus:
        raise PatchFlowError("TensorFlow sees no GPU on this machine. Choose 'cpu' (or 'auto'), or install the "
                             "GPU build (make setup GPU=1).", "DEVICE")
    if device == "multi-gpu":
        if len(gpus) < 2:
            reporter.warning(f"only {len(gpus)} GPU visible: training on one GPU.")
        else:
            reporter.log(f"device: {len(gpus)} GPUs (MirroredStrategy)")
            return tf.distribute.MirroredStrategy()
    tf.config.set_visible_devices(gpus[:1], "GPU")
    reporter.log(f"device: GPU ({gpus[0].name})")
    return tf.distribute.get_strategy()


def seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# ---- model and card ---------------------------------------------------------------------------------


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
    source = dataset.manifest["sources"][0]
    spec = InputSpec("x1", len(source["bands"]), int(source["patch_size"]), source["name"],
                     Normalization.from_stats(source["bands"]))
    return build_model(architecture, [spec], dataset.classes, params.integer("WIDTH"),
                       settings.seed)


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
             architecture: str) -> ModelCard:
    """The card of the trained model: the model's own, with this training's inputs and classes."""
    inputs = [InputSpec(f.input_name, f.bands, f.size, f.source, f.normalization) for f in feeds]
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


# ---- fitting ----------------------------------------------------------------------------------------


def compile_model(model, settings: Settings, target: Target) -> None:
    import keras

    optimizers = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
                  "sgd": lambda learning_rate: keras.optimizers.SGD(learning_rate, momentum=0.9),
                  "rmsprop": keras.optimizers.RMSprop}
    loss: Any  # an ImageLoss, or the name of a Keras loss
    if target.kind == "image":
        from ..models.imageloss import ImageLoss, psnr, ssim

        weights = settings.loss_weights or {settings.loss if settings.loss in IMAGE_LOSSES else "l1": 1.0}
        loss, metrics = ImageLoss(weights), [psnr, ssim]
    else:
        if settings.loss in ("l1", "l2"):
            raise PatchFlowError("L1/L2 losses are for image targets; use 'crossentropy' (or 'auto') for classes.",
                                 "LOSS")
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    optimizer = optimizers[settings.optimizer](learning_rate=settings.learning_rate)
    if type(model).__name__ == "AdversarialTrainer":  # its own losses and metrics (adversarial.py)
        model.compile(optimizer=optimizer)
        return
    if target.kind == "image":  # PSNR/SSIM per image: not weighted by the per-pixel sample weights
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    else:
        model.compile(optimizer=optimizer, loss=loss, weighted_metrics=metrics)


def monitored(history: dict[str, list[float]]) -> str:
    return "val_loss" if "val_loss" in history else "loss"


def make_callbacks(context: RunContext, state: State, work: str, settings: Settings, steps: int, first_epoch: int):
    import keras

    class Progress(keras.callbacks.Callback):
        """Per-batch progress and cancel, per-epoch log line, checkpoint of every complete epoch."""

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.started, self.samples = epoch, time.monotonic(), 0

        def on_train_batch_end(self, batch, logs=None):
            if context.cancelled():
                raise Cancelled()
            done = (self.epoch - first_epoch) + (batch + 1) / steps
            context.reporter.progress(5 + 85 * done / max(1, settings.epochs - first_epoch))

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.monotonic() - self.started
            for key, value in (logs or {}).items():
                state.history.setdefault(key, []).append(float(value))
            state.epoch, state.seconds = epoch + 1, state.seconds + seconds
            value = state.history[monitored(state.history)][-1]
            if state.best_value is None or value < state.best_value:
                state.best_value, state.best_epoch = value, epoch + 1
                self.model.save_weights(os.path.join(work, BEST + ".tmp.weights.h5"))
                os.replace(os.path.join(work, BEST + ".tmp.weights.h5"), os.path.join(work, BEST))
            temporary = os.path.join(work, "checkpoint.tmp.keras")
            self.model.save(temporary)
            os.replace(temporary, os.path.join(work, CHECKPOINT))
            state.save(work)
            shown = ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items())
            context.reporter.log(f"epoch {epoch + 1}/{settings.epochs}: {shown} ({seconds:.1f} s)")
            if settings.patience and epoch + 1 - state.best_epoch >= settings.patience:
                context.reporter.log(f"early stopping: {monitored(state.history)} has not improved for "
                                     f"{settings.patience} epochs (best: epoch {state.best_epoch})")
                self.model.stop_training = True

    callbacks = [Progress(), keras.callbacks.TensorBoard(os.path.join(work, "logs"), write_graph=False)]
    if adversarial_weight(settings):
        from ..models.adversarial import AdversarialSchedule

        callbacks.insert(0, AdversarialSchedule())
    return callbacks


def signature_of(params: Params, settings: Settings) -> str:
    """Identifies a training run: resuming is only offered for the same inputs and settings."""
    keys = ("TRAIN", "VALID", "MODEL", "ARCHITECTURE", "WIDTH", "INPUTS", "TARGET", "NORMALIZATION")
    values = {key: params.values.get(key) for key in keys}
    values.update({k: v for k, v in settings.__dict__.items() if k not in ("epochs", "patience", "device")})
    return hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prepare_work_folder(work: str, signature: str, resume: bool, reporter: Reporter) -> State | None:
    """The saved state to resume from, or None (the folder is then emptied)."""
    if os.path.isdir(work):
        state = State.load(work)
        if resume and state is not None and state.signature == signature and \
                os.path.exists(os.path.join(work, CHECKPOINT)):
            reporter.log(f"resuming from {work}: {state.epoch} epoch(s) already done")
            return state
        reason = "RESUME is off" if not resume else "it was made with other inputs or settings"
        reporter.warning(f"the checkpoint in {work} is not used ({reason}); starting over.")
        shutil.rmtree(work)
    os.makedirs(work)
    mark_folder(work, "training", whole=True)
    return None


def check_output(output: str, overwrite: bool) -> str:
    output = os.path.abspath(output)
    check_replaceable(output, overwrite, "OUTPUT", "model folder", empty_ok=False)
    check_replaceable(output + WORK_SUFFIX, True, "OUTPUT", "work folder")
    return output


def run_train_model(params: Params, context: RunContext) -> dict:
    """Train a model on patches streamed from disk; SavedModel, card, report, history, logs."""
    from .. import checks

    settings = Settings.from_params(params)
    output = check_output(params.string("OUTPUT"), params.boolean("OVERWRITE"))
    checks.training(params, context.reporter, settings.batch_size, settings.epochs)  # no TensorFlow yet
    checks.resume(params, context.reporter, output + WORK_SUFFIX, signature_of(params, settings), settings.epochs)
    if params.string("MODEL"):  # a model that could run code is refused before TensorFlow reads it
        from ..models.modelsafety import check_model

        check_model(params.string("MODEL"), params.boolean("TRUST_MODEL"), "MODEL")
    train = PatchDataset(params.string("TRAIN"), "TRAIN")
    valid_path = params.string("VALID")
    valid = PatchDataset(valid_path, "VALID") if valid_path else None
    try:
        return train_and_export(params, context, settings, output, train, valid)
    finally:  # TensorFlow keeps the data generators alive: let go of the files now
        for dataset in (train, valid):
            if dataset is not None:
                dataset.close()


def train_and_export(params: Params, context: RunContext, settings: Settings, output: str, train: PatchDataset,
                     valid: PatchDataset | None) -> dict:
    strategy = select_device(settings.device, context.reporter)
    seed_everything(settings.seed)
    work = output + WORK_SUFFIX
    with strategy.scope():
        model, card = obtain_model(params, train, settings, context.reporter)
        plan = plan_training(params, model, card, train, valid, settings, context.reporter)
        # only now, with every input checked, is anything written
        state = prepare_work_folder(work, signature_of(params, settings), params.boolean("RESUME"),
                                    context.reporter)
        if state is not None:
            from ..models import imageloss  # noqa: F401 - registers the image losses and metrics
            from ..models.srmodel import register_layers

            register_layers()
            if adversarial_weight(settings):
                from ..models import adversarial  # noqa: F401 - registers the trainer
            from ..models.modelio import load_trainable

            model = load_trainable(os.path.join(work, CHECKPOINT), "MODEL", params.boolean("TRUST_MODEL"),
                                   compile=True)[0]
        else:
            model = with_discriminator(model, plan, settings, context.reporter)
            compile_model(model, settings, plan.target)
            state = State(signature_of(params, settings))
    context.reporter.progress(5)
    first_epoch = state.epoch
    stopped_early = settings.patience and first_epoch - state.best_epoch >= settings.patience
    if first_epoch < settings.epochs and not stopped_early:
        try:
            fit(model, plan, context, state, work, settings, first_epoch)
        except BaseException:
            keep_or_drop_checkpoint(work, state, context.reporter)
            raise
    if settings.patience and os.path.exists(os.path.join(work, BEST)):
        model.load_weights(os.path.join(work, BEST))
        context.reporter.log(f"kept the weights of the best epoch ({state.best_epoch})")
    return finish(params, context, model, plan, state, work, output, settings)


def adversarial_weight(settings: Settings) -> float:
    return float((settings.loss_weights or {}).get(ADVERSARIAL, 0.0))


def with_discriminator(model, plan: TrainingPlan, settings: Settings, reporter: Reporter):
    """The generator inside an LSGAN trainer when LOSS_WEIGHTS asks for an adversarial loss."""
    weight = adversarial_weight(settings)
    if not weight:
        return model
    if plan.target.kind != "image":
        raise PatchFlowError("an adversarial loss trains image generators (super-resolution); remove "
                             f"'{ADVERSARIAL}' from LOSS_WEIGHTS.", "LOSS_WEIGHTS")
    from ..models.adversarial import AdversarialTrainer, build_discriminator

    pretrain = settings.epochs // 2 if settings.pretrain_epochs is None else settings.pretrain_epochs
    content = {k: v for k, v in (settings.loss_weights or {}).items() if k != ADVERSARIAL}
    bands = int(model.output.shape[-1])
    reporter.log(f"adversarial training (LSGAN, weight {weight:g}) after {pretrain} epoch(s) of content loss "
                 f"({', '.join(f'{k} {v:g}' for k, v in content.items())})")
    return AdversarialTrainer(model, build_discriminator(bands, seed=settings.seed), content, weight, pretrain)


def generator_of(model):
    """The network to export: the generator of an adversarial trainer, else the model itself."""
    return getattr(model, "generator", model) if type(model).__name__ == "AdversarialTrainer" else model


def keep_or_drop_checkpoint(work: str, state: State, reporter: Reporter) -> None:
    """After an interrupted fit: keep the last complete epoch for RESUME, or remove an empty start."""
    if state.epoch and os.path.exists(os.path.join(work, CHECKPOINT)):
        reporter.log(f"training stopped after epoch {state.epoch}; its checkpoint is kept in {work}: run again "
                     "with RESUME to continue from there.")
    else:
        shutil.rmtree(work, ignore_errors=True)


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
    return TrainingPlan(card_for(model, card, feeds, target, model_classes, architecture), train_stream, valid_stream,
                target, classes, architecture)


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


def fit(model, plan: TrainingPlan, context: RunContext, state: State, work: str, settings: Settings,
        first_epoch: int) -> None:
    steps = plan.train_stream.steps
    context.reporter.log(f"training on {plan.train_stream.dataset.count} patches ({steps} batches of "
                         f"{settings.batch_size}) for epochs {first_epoch + 1}-{settings.epochs}")
    valid = plan.valid_stream
    # endless streams with explicit steps: one iterator across epochs, each pass a new (seeded) order
    train_data = training_data(plan.train_stream, os.path.join(work, "records", "train"), context, first_epoch)
    valid_data = training_data(valid, os.path.join(work, "records", "valid"), context) if valid else None
    model.fit(train_data, steps_per_epoch=steps, validation_data=valid_data, shuffle=False,
              validation_steps=valid.steps if valid else None, epochs=settings.epochs, initial_epoch=first_epoch,
              verbose=0, callbacks=make_callbacks(context, state, work, settings, steps, first_epoch))


def training_data(stream: BatchStream, folder: str, context: RunContext, start_epoch: int = 0):
    """Endless batches for fit: read back by TensorFlow from a record cache written in ``folder``
    (several times faster to feed than a Python generator), or straight from the patches-images
    when the disk has no room for the cache."""
    if room_for(stream, folder):
        started = time.monotonic()
        layout = write_records(stream, folder, context.cancelled)
        if layout is not None:
            context.reporter.log(f"record cache of {stream.dataset.count} patches "
                                 f"({layout.count * layout.record_bytes / 2**20:.0f} MiB) ready in {folder} "
                                 f"({time.monotonic() - started:.1f} s)")
            return record_dataset(stream, folder, layout, start_epoch)
        reason = "the patches' data type cannot be cached"
    else:
        reason = f"less than {expected_bytes(stream) / 2**20:.0f} MiB free for the record cache"
    context.reporter.log(f"streaming {stream.dataset.path} straight from its patches-images ({reason})")
    return stream.tf_dataset(start_epoch).repeat()


# ---- results ----------------------------------------------------------------------------------------


def first_output(output):
    if isinstance(output, dict):
        return output.get("probabilities", next(iter(output.values())))
    if isinstance(output, (list, tuple)):
        return output[0]
    return output


def evaluate(model, stream: BatchStream, classes: Sequence[ClassLike], context: RunContext) -> Scores:
    """Confusion matrix of the model on every sample of ``stream`` (pixels of maps where labelled)."""
    from ..evaluate.metrics import Scores

    count = len(classes)
    matrix = np.zeros((count, count), np.int64)
    for inputs, targets, weights in stream.epoch(0):
        if context.cancelled():
            raise Cancelled()
        batch = inputs if len(inputs) > 1 else next(iter(inputs.values()))
        predicted = np.asarray(first_output(model.predict_on_batch(batch))).argmax(-1).reshape(targets.shape)
        valid = weights > 0
        matrix += np.bincount(targets[valid] * count + predicted[valid], minlength=count * count).reshape(count, count)
    return Scores.from_matrix(matrix, classes)


def finish(params: Params, context: RunContext, model, plan: TrainingPlan, state: State, work: str, output: str,
           settings: Settings) -> dict:
    from ..models.zoo import export_model
    from .trainingreport import write_history_csv, write_training_report

    scores, scores_label = None, ""
    if plan.target.kind == "classes":
        scored = plan.valid_stream or plan.train_stream
        stream = BatchStream(scored.dataset, scored.feeds,
                             Target(plan.target.source, "classes", plan.target.shape,
                                    [int(c["id"]) for c in plan.classes], plan.target.nodata), settings.batch_size)
        scores = evaluate(model, stream, plan.classes, context)
        scores_label = "validation set" if plan.valid_stream else "training set (no validation set: optimistic)"
        context.reporter.log(f"{scores_label}: overall accuracy {scores.overall_accuracy:.4f}, kappa "
                             f"{scores.kappa:.4f} ({scores.total} samples)")
    model = generator_of(model)
    quality = evaluate_image_target(model, plan, settings, context) if plan.target.kind == "image" else None
    context.reporter.progress(93)
    plan.card.training = training_summary(plan, state, settings, scores)
    if quality is not None:
        plan.card.training["validation"] = {"psnr": quality.psnr, "ssim": quality.ssim,
                                            "bicubic_psnr": quality.bicubic_psnr, "bicubic_ssim": quality.bicubic_ssim}
    staged = context.staging.stage(output, "OUTPUT")
    export_model(model, plan.card, staged)
    write_history_csv(os.path.join(staged, "history.csv"), state.history)
    if scores is not None:
        scores.write_csv(os.path.join(staged, "validation.csv"))
    if os.path.isdir(os.path.join(work, "logs")):
        shutil.copytree(os.path.join(work, "logs"), os.path.join(staged, "logs"))
    extra = []
    if quality is not None:
        from .srreport import report_sections

        os.makedirs(os.path.join(staged, "report_files"), exist_ok=True)
        extra = report_sections(quality, "validation set" if plan.valid_stream else "training set",
                                os.path.join(staged, "report_files", "samples.png"))
    report = write_training_report(staged, f"PatchFlow training report: {plan.architecture}",
                                   summary_rows(plan, state, settings), state.history, scores, scores_label,
                                   state.best_epoch if settings.patience else 0, extra)
    shutil.rmtree(work, ignore_errors=True)
    context.reporter.progress(100)
    return {
        "OUTPUT": output, "MODEL_FOLDER": output, "CARD": os.path.join(output, "patchflow_card.json"),
        "REPORT": os.path.join(output, os.path.basename(report)), "HISTORY": os.path.join(output, "history.csv"),
        "EPOCHS_RUN": state.epoch, "BEST_EPOCH": state.best_epoch,
        "OA": scores.overall_accuracy if scores else None, "KAPPA": scores.kappa if scores else None,
        "PSNR": quality.psnr if quality else None, "SSIM": quality.ssim if quality else None,
        "BICUBIC_PSNR": quality.bicubic_psnr if quality else None,
        "BICUBIC_SSIM": quality.bicubic_ssim if quality else None,
    }


def evaluate_image_target(model, plan: TrainingPlan, settings: Settings, context: RunContext):
    """PSNR/SSIM of the model and of bicubic upsampling on the validation (else training) patches."""
    from .srreport import data_range, evaluate_images

    scored = plan.valid_stream or plan.train_stream
    stream = BatchStream(scored.dataset, scored.feeds, scored.target, settings.batch_size)
    peak = data_range(scored.dataset.source(plan.target.source)["bands"])
    assert plan.target.normalization is not None  # an image target is normalised
    quality = evaluate_images(model, stream, scored.feeds[0].normalization, plan.target.normalization, peak, context)
    context.reporter.log(f"image quality on {quality.patches} patches: PSNR {quality.psnr:.2f} dB, SSIM "
                         f"{quality.ssim:.4f} (bicubic: {quality.bicubic_psnr:.2f} dB, {quality.bicubic_ssim:.4f})")
    return quality


def samples_per_second(plan: TrainingPlan, state: State) -> float:
    return plan.train_stream.dataset.count * state.epoch / state.seconds if state.seconds else 0.0


def training_summary(plan: TrainingPlan, state: State, settings: Settings, scores: Scores | None) -> dict[str, Any]:
    return {
        "train": os.path.abspath(plan.train_stream.dataset.path),
        "valid": os.path.abspath(plan.valid_stream.dataset.path) if plan.valid_stream else None,
        "samples": plan.train_stream.dataset.count, "epochs": state.epoch, "best_epoch": state.best_epoch,
        "seconds": round(state.seconds, 2), "settings": settings.__dict__,
        "final": {k: v[-1] for k, v in state.history.items() if v},
        "validation": ({"overall_accuracy": scores.overall_accuracy, "kappa": scores.kappa} if scores else None),
    }


def summary_rows(plan: TrainingPlan, state: State, settings: Settings) -> list[dict]:
    rows = [
        ("architecture", plan.architecture),
        ("training set", f"{plan.train_stream.dataset.path} ({plan.train_stream.dataset.count} patches)"),
        ("validation set", f"{plan.valid_stream.dataset.path} ({plan.valid_stream.dataset.count} patches)"
         if plan.valid_stream else "none"),
        ("inputs", ", ".join(f"{f.input_name} <- {f.source} ({f.bands} bands, {f.size} px)"
                             for f in plan.train_stream.feeds)),
        ("epochs run", f"{state.epoch} (best: {state.best_epoch})"),
        ("training time", f"{state.seconds:.1f} s ({samples_per_second(plan, state):.0f} samples/s)"),
        *((key, value) for key, value in settings.__dict__.items()),
    ]
    return [{"item": item, "value": str(value)} for item, value in rows]
