"""Fitting: compile the model (optimiser, loss, metrics), wrap a generator in an LSGAN trainer for
an adversarial loss, feed it batches (from a record cache, else straight from the patches-images)
and run Keras fit with callbacks that report progress, honour cancel and checkpoint every epoch.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

from ..data.datasets import BatchStream, Target
from ..data.records import expected_bytes, record_dataset, room_for, write_records
from ..errors import Cancelled, PatchFlowError
from ..params import RunContext
from ..reporting import Reporter
from .trainsettings import ADVERSARIAL, BEST, CHECKPOINT, IMAGE_LOSSES, Settings, State
from .trainsetup import TrainingPlan


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
    """Endless batches for fit, sharded by DATA between the workers of a multi-worker training
    (each keeps its share of every batch; nothing changes in one process)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return batches(stream, folder, context, start_epoch).with_options(options)


def batches(stream: BatchStream, folder: str, context: RunContext, start_epoch: int = 0):
    """Endless batches: read back by TensorFlow from a record cache written in ``folder`` (several
    times faster to feed than a Python generator), or straight from the patches-images when the
    disk has no room for the cache."""
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
