"""Training results: score the trained model (confusion matrix on the training, validation and test
sets for classes, PSNR/SSIM against bicubic for images), export the SavedModel with its card, and
write the training report, the history, the scores per set and the TensorBoard logs into OUTPUT.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.datasets import BatchStream
from ..errors import Cancelled
from ..params import Params, RunContext
from .fitting import generator_of, monitored
from .scoresets import SetScores, chosen_on, saved_weights_text, score_notes, scoring_stream
from .trainsettings import Settings, State
from .trainsetup import TrainingPlan

if TYPE_CHECKING:
    from ..evaluate.metrics import Scores
    from ..geodata.classes import ClassLike
    from ..models.modelcard import ModelCard
    from .repeats import Repeats

SCORE_FILES = {"training": "training.csv", "validation": "validation.csv", "test": "test.csv"}


def first_output(output):
    if isinstance(output, dict):
        return output.get("probabilities", next(iter(output.values())))
    if isinstance(output, (list, tuple)):
        return output[0]
    return output


def evaluate(model, stream: BatchStream, classes: Sequence[ClassLike], context: RunContext,
             card: ModelCard | None = None) -> Scores:
    """Confusion matrix of the model on every sample of ``stream`` (pixels of maps where labelled):
    the one place that scores a set (training, validation, test). With the trained model's ``card``, a
    fully convolutional segmentation model is scored as Apply model serves it."""
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


@dataclass
class Trained:
    """One trained model with what it was trained on, its state and the epoch whose weights it holds."""

    model: Any
    plan: TrainingPlan
    state: State
    settings: Settings
    saved_epoch: int
    work: str
    test: tuple[BatchStream, list[dict]] | None = None  # the TEST stream and its scored classes
    scores: SetScores | None = None  # class targets

    @property
    def selection_loss(self) -> float:
        """The loss that chose the epoch (validation, else training) at the saved epoch; inf if none."""
        values = self.state.history.get(monitored(self.state.history), [])
        value = values[self.saved_epoch - 1] if 0 < self.saved_epoch <= len(values) else float("inf")
        return value if np.isfinite(value) else float("inf")


def score_sets(trained: Trained, context: RunContext) -> SetScores | None:
    """Scores of a class model on the training, validation and test sets (None: an image target)."""
    plan, settings = trained.plan, trained.settings
    if plan.target.kind != "classes":
        return None
    scores = SetScores()
    streams = [("training", plan.train_stream, plan.classes), ("validation", plan.valid_stream, plan.classes)]
    for name, stream, classes in streams:
        if stream is not None:  # the training set on its patches: serving it would map most of the scene
            setattr(scores, name, evaluate(trained.model, scoring_stream(stream, classes, settings.batch_size),
                                           classes, context, card=plan.card if name != "training" else None))
    if trained.test is not None:
        scores.test = evaluate(trained.model, trained.test[0], trained.test[1], context, card=plan.card)
    if scores.training is not None and any(result.method.startswith("as Apply model") for _, result in scores.items()):
        scores.training.method = ("on the training patches themselves, as the network was trained (serving the "
                                  "training set would map most of the scene)")
    for name, result in scores.items():
        context.reporter.log(f"{name} set (seed {settings.seed}, weights of epoch {trained.saved_epoch}): overall "
                             f"accuracy {result.overall_accuracy:.4f}, kappa {result.kappa:.4f}, macro F1 "
                             f"{result.macro_f1:.4f} ({result.total} samples)")
    return scores


def finish(params: Params, context: RunContext, trained: Trained, work: str, output: str,
           repeats: Repeats | None = None) -> dict:
    from ..models.zoo import export_model
    from .trainingreport import write_history_csv, write_training_report

    plan, state, settings, scores = trained.plan, trained.state, trained.settings, trained.scores
    model = generator_of(trained.model)
    quality = evaluate_image_target(model, plan, settings, context) if plan.target.kind == "image" else None
    context.reporter.progress(93)
    plan.card.training = training_summary(trained, repeats)
    if quality is not None:
        plan.card.training["validation"] = {"psnr": quality.psnr, "ssim": quality.ssim,
                                            "bicubic_psnr": quality.bicubic_psnr, "bicubic_ssim": quality.bicubic_ssim}
    staged = context.staging.stage(output, "OUTPUT")
    export_model(model, plan.card, staged)
    write_history_csv(os.path.join(staged, "history.csv"), state.history)
    for name, result in (scores.items() if scores else ()):
        result.write_csv(os.path.join(staged, SCORE_FILES[name]))
    if os.path.isdir(os.path.join(trained.work, "logs")):
        shutil.copytree(os.path.join(trained.work, "logs"), os.path.join(staged, "logs"))
    extra = []
    if quality is not None:
        from .srreport import report_sections

        os.makedirs(os.path.join(staged, "report_files"), exist_ok=True)
        extra = report_sections(quality, "validation set" if plan.valid_stream else "training set",
                                os.path.join(staged, "report_files", "samples.png"))
    notes = score_notes(scores, plan, settings, trained.saved_epoch, repeats is not None) if scores else []
    for note in notes:
        context.reporter.log(note)
    if repeats is not None:
        extra.append(repeats.section())
    report = write_training_report(staged, f"PatchFlow training report: {plan.architecture}",
                                   summary_rows(trained, repeats), state.history, scores, notes,
                                   state.best_epoch, trained.saved_epoch, extra)
    shutil.rmtree(work, ignore_errors=True)
    context.reporter.progress(100)
    values = scores.outputs() if scores else SetScores().outputs()
    return {
        "OUTPUT": output, "MODEL_FOLDER": output, "CARD": os.path.join(output, "patchflow_card.json"),
        "REPORT": os.path.join(output, os.path.basename(report)), "HISTORY": os.path.join(output, "history.csv"),
        "EPOCHS_RUN": state.epoch, "BEST_EPOCH": state.best_epoch, "SAVED_EPOCH": trained.saved_epoch,
        "KEPT_SEED": settings.seed, **values,
        **(repeats.outputs() if repeats else {**{f"{k}_MEAN": v for k, v in values.items()},
                                              **{f"{k}_SD": None for k in values}}),
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


def training_summary(trained: Trained, repeats: Repeats | None = None) -> dict[str, Any]:
    plan, state, settings, scores = trained.plan, trained.state, trained.settings, trained.scores
    return {
        "train": os.path.abspath(plan.train_stream.dataset.path),
        "valid": os.path.abspath(plan.valid_stream.dataset.path) if plan.valid_stream else None,
        "test": os.path.abspath(trained.test[0].dataset.path) if trained.test else None,
        "samples": plan.train_stream.dataset.count, "epochs": state.epoch, "best_epoch": state.best_epoch,
        "best_chosen_on": chosen_on(plan), "saved_epoch": trained.saved_epoch,
        "saved_weights": "best" if settings.keeps_best and trained.saved_epoch else "last",
        "seconds": round(state.seconds, 2), "settings": settings.__dict__,
        "final": {k: v[-1] for k, v in state.history.items() if v},
        "validation": ({"overall_accuracy": scores.validation.overall_accuracy, "kappa": scores.validation.kappa,
                        "macro_f1": scores.validation.macro_f1} if scores and scores.validation else None),
        "scores": scores.summary() if scores else None,
        "repeats": repeats.summary() if repeats else None,
    }


def summary_rows(trained: Trained, repeats: Repeats | None = None) -> list[dict]:
    plan, state, settings = trained.plan, trained.state, trained.settings

    def described(stream: BatchStream | None) -> str:
        return f"{stream.dataset.path} ({stream.dataset.count} patches)" if stream else "none"

    rows = [
        ("architecture", plan.architecture),
        ("training set", described(plan.train_stream)),
        ("validation set", described(plan.valid_stream)),
        ("test set", described(trained.test[0] if trained.test else None)),
        ("inputs", ", ".join(f"{f.input_name} <- {f.source} ({f.bands} bands, {f.size} px)"
                             for f in plan.train_stream.feeds)),
        ("epochs run", f"{state.epoch} (best: {state.best_epoch}, on the {chosen_on(plan)})"),
        ("weights saved", saved_weights_text(trained.saved_epoch, settings.keeps_best, plan)),
        *((("repeats", repeats.kept_text()),) if repeats else ()),
        ("training time", f"{state.seconds:.1f} s ({samples_per_second(plan, state):.0f} samples/s)"),
        *((key, value) for key, value in settings.__dict__.items()),
    ]
    return [{"item": item, "value": str(value)} for item, value in rows]
