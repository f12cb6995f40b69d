"""Train model: a zoo architecture or the user's model, fitted on patches streamed from disk.

While it trains, ``<OUTPUT>.training/`` holds the last complete epoch (model with optimiser state,
history, best epoch): a run that is interrupted (cancel, crash, power cut) resumes from there. At
the end, OUTPUT receives the SavedModel and its card, the training report (HTML), the history
(CSV), the scores per set (CSV) and the TensorBoard logs; the work folder is then removed. VALID
may choose the epoch (early stopping, RESTORE_BEST) and the seed (REPEATS); TEST never chooses.

This module runs the operation; its parts are trainsettings (settings, state, work folder),
trainsetup (model, inputs, target, plan), fitting (compile, feed, fit), scoresets (the scored
sets), repeats (REPEATS seeds) and trainresults (scores, export, report).
"""

from __future__ import annotations

import os
import shutil

from ..data.datasets import PatchDataset
from ..errors import PatchFlowError
from ..params import Params, RunContext
from .fitting import adversarial_weight, compile_model, fit, keep_or_drop_checkpoint, with_discriminator
from .multiworker import (
    cluster_of,
    copy_checkpoint,
    is_distributed,
    leave_out_tiny_batches,
    lost_worker,
    worker_folder,
    worker_outputs,
)
from .repeats import train_repeats
from .scoresets import saved_weights_text, test_stream
from .trainresults import Trained, finish, score_sets
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
    cluster = cluster_of(settings.device)  # DEVICE multi-worker: TF_CONFIG or SLURM, checked before TensorFlow
    if cluster is not None and settings.repeats > 1:
        raise PatchFlowError("REPEATS trains the seeds one after the other in one process; on several machines, "
                             "run one training per seed (SEED), or set REPEATS to 1.", "REPEATS")
    output = check_output(params.string("OUTPUT"), params.boolean("OVERWRITE"), cluster is None or cluster.chief)
    checks.training(params, context.reporter, settings.batch_size, settings.epochs)  # no TensorFlow yet
    checks.resume(params, context.reporter, output + WORK_SUFFIX, signature_of(params, settings), settings.epochs)
    if params.string("MODEL"):  # a model that could run code is refused before TensorFlow reads it
        from ..models.modelsafety import check_model

        check_model(params.string("MODEL"), params.boolean("TRUST_MODEL"), "MODEL")
    train = PatchDataset(params.string("TRAIN"), "TRAIN")
    datasets = {key: PatchDataset(params.string(key), key) if params.string(key) else None for key in ("VALID", "TEST")}
    own = worker_folder(output, cluster) if cluster is not None and not cluster.chief else None
    try:
        work = output + WORK_SUFFIX
        if own is not None:  # another worker than the chief: its own folder, from the chief's checkpoint to resume
            work = os.path.join(own, os.path.basename(output) + WORK_SUFFIX)
            if params.boolean("RESUME"):
                copy_checkpoint(output + WORK_SUFFIX, work)
        strategy = select_device(settings.device, context.reporter, cluster, settings.batch_size)

        def train_seed(run_settings: Settings, run_work: str, run_context: RunContext, resume: bool) -> Trained:
            return train_once(params, run_context, run_settings, run_work, train, datasets["VALID"],
                              datasets["TEST"], strategy, resume)

        if settings.repeats > 1:
            return train_repeats(params, context, settings, work, output, train_seed)
        trained = train_seed(settings, work, context, params.boolean("RESUME"))
        if own is not None:
            context.reporter.log(f"{cluster.describe() if cluster else 'worker'}: training done; the chief writes "
                                 "the outputs")
            return worker_outputs(trained.state.epoch, trained.state.best_epoch, trained.saved_epoch, settings.seed)
        trained.scores = score_sets(trained, context)
        return finish(params, context, trained, work, output)
    finally:  # TensorFlow keeps the data generators alive: let go of the files now
        for dataset in (train, *datasets.values()):
            if dataset is not None:
                dataset.close()
        if own is not None:
            shutil.rmtree(own, ignore_errors=True)


def train_once(params: Params, context: RunContext, settings: Settings, work: str, train: PatchDataset,
               valid: PatchDataset | None, test: PatchDataset | None, strategy, resume: bool) -> Trained:
    """Train one model (seed ``settings.seed``) in ``work``; it holds the weights RESTORE_BEST asks for."""
    seed_everything(settings.seed)
    with strategy.scope():
        model, card = obtain_model(params, train, settings, context.reporter)
        plan = plan_training(params, model, card, train, valid, settings, context.reporter)
        if is_distributed(strategy):
            leave_out_tiny_batches(plan, strategy.num_replicas_in_sync, context.reporter)
        test_set = test_stream(test, plan, settings, context.reporter) if test is not None and \
            plan.target.kind == "classes" else None
        if test is not None and test_set is None:
            context.reporter.warning("TEST is scored for class targets; for an image target, apply the model to the "
                                     "test area and use Assess image quality.")
        # only now, with every input checked, is anything written
        state = prepare_work_folder(work, signature_of(params, settings), resume, context.reporter)
        if state is not None:
            model = load_checkpoint(params, settings, work)
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
        except BaseException as exc:
            keep_or_drop_checkpoint(work, state, context.reporter)
            lost = lost_worker(exc) if is_distributed(strategy) else None
            if lost is not None:
                raise lost from exc
            raise
    if is_distributed(strategy):  # scored and exported by the chief alone: off the cluster, whose predictions
        model = load_checkpoint(params, settings, work)  # would gather every worker's batch
    saved_epoch = state.epoch
    if settings.keeps_best and state.best_epoch != state.epoch and os.path.exists(os.path.join(work, BEST)):
        model.load_weights(os.path.join(work, BEST))
        saved_epoch = state.best_epoch
    context.reporter.log(f"weights saved: {saved_weights_text(saved_epoch, settings.keeps_best, plan)}")
    return Trained(model, plan, state, settings, saved_epoch, work, test_set)


def load_checkpoint(params: Params, settings: Settings, work: str):
    """The model of the work folder's last complete epoch, compiled, with its optimiser state."""
    from ..models import imageloss  # noqa: F401 - registers the image losses and metrics
    from ..models.srmodel import register_layers

    register_layers()
    if adversarial_weight(settings):
        from ..models import adversarial  # noqa: F401 - registers the trainer
    from ..models.modelio import load_trainable

    return load_trainable(os.path.join(work, CHECKPOINT), "MODEL", params.boolean("TRUST_MODEL"), compile=True)[0]

