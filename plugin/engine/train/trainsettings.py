"""Training settings and state: the choices Train model reads (optimiser, loss, device, seed...)
as ``Settings``, the device and seed they set, and the work folder ``<OUTPUT>.training/`` whose
``State`` (last complete epoch, history, best epoch) lets an interrupted run resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...protocol import strict_dump
from ..errors import PatchFlowError
from ..ownership import check_replaceable, mark_folder
from ..params import Params
from ..reporting import Reporter

if TYPE_CHECKING:
    from .multiworker import Cluster

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
LOSSES = ("auto", "crossentropy", "l1", "l2", "ssim")
IMAGE_LOSSES = ("l1", "l2", "ssim")
ADVERSARIAL = "adversarial"  # LOSS_WEIGHTS key: an LSGAN discriminator trains against the generator
DEVICES = ("auto", "cpu", "gpu", "multi-gpu", "multi-worker")  # multi-worker: multiworker.py
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
    restore_best: str = "auto"  # the weights saved: "best" epoch's, "last" epoch's, "auto": best with PATIENCE
    repeats: int = 1  # seeds seed, seed + 1, ... trained in turn

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
            restore_best=params.choice("RESTORE_BEST"),
            repeats=params.integer("REPEATS"),
        )

    @property
    def keeps_best(self) -> bool:
        """Whether the model saved holds the best epoch's weights (else the last epoch's)."""
        return self.restore_best == "best" or self.restore_best == "auto" and self.patience > 0


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


def select_device(device: str, reporter: Reporter, cluster: Cluster | None = None, batch_size: int = 0):
    """Make TensorFlow use the chosen device(s); returns a distribution strategy. "multi-worker"
    joins ``cluster`` (multiworker.cluster_of, checked before TensorFlow)."""
    if cluster is not None:
        from .multiworker import start

        return start(cluster, batch_size, reporter)
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


def signature_of(params: Params, settings: Settings) -> str:
    """Identifies a training run: resuming is only offered for the same inputs and settings."""
    keys = ("TRAIN", "VALID", "MODEL", "ARCHITECTURE", "WIDTH", "INPUTS", "TARGET", "NORMALIZATION")
    values = {key: params.values.get(key) for key in keys}
    unrelated = ("epochs", "patience", "device", "restore_best", "repeats")  # they do not change the epochs trained
    values.update({k: v for k, v in settings.__dict__.items() if k not in unrelated})
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


def check_output(output: str, overwrite: bool, work_folder: bool = True) -> str:
    """OUTPUT may be written (and its work folder, unless ``work_folder`` is False: another
    worker's, whose chief owns it)."""
    output = os.path.abspath(output)
    check_replaceable(output, overwrite, "OUTPUT", "model folder", empty_ok=False)
    if work_folder:
        check_replaceable(output + WORK_SUFFIX, True, "OUTPUT", "work folder")
    return output
