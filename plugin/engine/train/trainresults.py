"""Training results: score the trained model (confusion matrix for classes, PSNR/SSIM against
bicubic for images), export the SavedModel with its card, and write the training report, the
history, the validation scores and the TensorBoard logs into OUTPUT.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.datasets import BatchStream, Target
from ..errors import Cancelled
from ..params import Params, RunContext
from .fitting import generator_of
from .trainsettings import Settings, State
from .trainsetup import TrainingPlan

if TYPE_CHECKING:
    from ..evaluate.metrics import Scores
    from ..geodata.classes import ClassLike
    from ..models.modelcard import ModelCard


def first_output(output):
    if isinstance(output, dict):
        return output.get("probabilities", next(iter(output.values())))
    if isinstance(output, (list, tuple)):
        return output[0]
    return output


def evaluate(model, stream: BatchStream, classes: Sequence[ClassLike], context: RunContext,
             card: ModelCard | None = None) -> Scores:
    """Confusion matrix of the model on every sample of ``stream`` (pixels of maps where labelled); with
    the model's ``card``, a fully convolutional segmentation model is scored as Apply model serves it."""
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
    if card is not None:
        from .servedscores import as_served

        return as_served(model, stream, classes, context, card, Scores.from_matrix(matrix, classes))
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
        scores = evaluate(model, stream, plan.classes, context, card=plan.card)
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
