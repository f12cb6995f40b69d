"""Train model: a zoo architecture or the user's model, fitted on patches streamed from disk.

While it trains, ``<OUTPUT>.training/`` holds the last complete epoch (model with optimiser state,
history, best epoch): a run that is interrupted (cancel, crash, power cut) resumes from there. At
the end, OUTPUT receives the SavedModel and its card, the training report (HTML), the history
(CSV), the validation scores (CSV) and the TensorBoard logs; the work folder is then removed.

This module runs the operation; its parts are trainsettings (settings, state, work folder),
trainsetup (model, inputs, target, plan), fitting (compile, feed, fit) and trainresults (scores,
export, report).
"""

from __future__ import annotations

import os

from ..data.datasets import PatchDataset
from ..params import Params, RunContext
from .fitting import adversarial_weight, compile_model, fit, keep_or_drop_checkpoint, with_discriminator
from .trainresults import finish
from .trainsettings import (
    BEST,
    CHECKPOINT,
    WORK_SUFFIX,
    Settings,
    State,
    check_output,
    prepare_work_folder,
    seed_everything,
    select_device,
    signature_of,
)
from .trainsetup import obtain_model, plan_training


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
