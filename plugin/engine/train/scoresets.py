"""The sets a trained classifier is scored on: training, validation (VALID, which may choose the
epoch and the seed) and test (TEST, scored once at the end and never used to choose), their
scoring streams, the outputs and the table they give, and what the report says about them in
words (which weights were saved, optimistic validation scores, overfitting).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..data.datasets import LABELS, BatchStream, PatchDataset, Target, label_values
from ..errors import PatchFlowError
from ..reporting import Reporter
from .trainsettings import Settings
from .trainsetup import TrainingPlan

if TYPE_CHECKING:
    from ..evaluate.metrics import Scores

# training kappa this far above the validation (else test) kappa: the report says the model overfits
OVERFIT_GAP = 0.1
# result key prefix of each set's scores, and the Scores attribute of each score
PREFIXES = {"training": "TRAIN_", "validation": "", "test": "TEST_"}
METRICS = {"OA": "overall_accuracy", "KAPPA": "kappa", "MACRO_F1": "macro_f1"}


@dataclass
class SetScores:
    """The scores of one trained model on each set it was scored on (None: no such set)."""

    training: Scores | None = None
    validation: Scores | None = None
    test: Scores | None = None

    def items(self) -> Iterator[tuple[str, Scores]]:
        for name in PREFIXES:
            scores = getattr(self, name)
            if scores is not None:
                yield name, scores

    def value(self, set_name: str, metric: str) -> float | None:
        scores = getattr(self, set_name)
        return None if scores is None else float(getattr(scores, METRICS[metric]))

    def outputs(self) -> dict[str, float | None]:
        """TRAIN_OA, OA (validation), TEST_OA, ... for the result."""
        return {f"{prefix}{metric}": self.value(name, metric) for name, prefix in PREFIXES.items()
                for metric in METRICS}

    def summary(self) -> dict[str, Any]:
        """For the card: each set's OA, kappa and macro F1 with its sample count."""
        return {name: {"overall_accuracy": s.overall_accuracy, "kappa": s.kappa, "macro_f1": s.macro_f1,
                       "samples": s.total} for name, s in self.items()}


def scoring_stream(stream: BatchStream, classes: list[dict], batch_size: int) -> BatchStream:
    """``stream``'s patches in order, without augmentation, targets over ``classes`` (a class the model
    does not know counts as an error)."""
    target = stream.target
    return BatchStream(stream.dataset, stream.feeds, Target(target.source, "classes", target.shape,
                                                            [int(c["id"]) for c in classes], target.nodata),
                       batch_size)


def test_stream(test: PatchDataset, plan: TrainingPlan, settings: Settings,
                reporter: Reporter) -> tuple[BatchStream, list[dict]]:
    """(stream, classes) of the TEST set, fed as training is; classes only the test set has are
    added to the scored classes (their samples count as errors)."""
    for feed in plan.train_stream.feeds:
        other = test.source(feed.source, "TEST")
        if len(other["bands"]) != feed.bands or int(other["patch_size"]) < feed.size:
            raise PatchFlowError(f"the test source '{feed.source}' has {len(other['bands'])} bands of "
                                 f"{other['patch_size']} px; training has {feed.bands} bands of {feed.size} px. "
                                 "Extract the test patches from the same rasters with the same patch size.", "TEST")
    target = plan.target
    if target.source == LABELS and not test.has_labels:
        raise PatchFlowError(f"the test dataset {test.path} has no labels image. Extract it with the class field, as "
                             "the training set.", "TEST")
    if target.source != LABELS:
        test.source(target.source, "TEST")
    classes = list(plan.classes)
    known_ids = [int(c["id"]) for c in classes]
    probe = Target(target.source, "classes", target.shape, known_ids, target.nodata)
    extra = [v for v in label_values(test, probe) if v not in known_ids]
    if extra:
        names = {int(c["id"]): c for c in test.classes}
        added = [{"id": v, "name": names.get(v, {}).get("name", f"class {v}"),
                  "color": names.get(v, {}).get("color", "#7f7f7f")} for v in extra]
        reporter.warning("the test set has class(es) absent from training: "
                         f"{', '.join(str(c['id']) + ' (' + c['name'] + ')' for c in added)}. The model cannot "
                         "predict them; their samples count as errors in the test scores.")
        classes += added
    stream = BatchStream(test, plan.train_stream.feeds, probe, settings.batch_size)
    return scoring_stream(stream, classes, settings.batch_size), classes


def chosen_on(plan: TrainingPlan) -> str:
    """The loss the best epoch is chosen on."""
    return "validation loss" if plan.valid_stream is not None else "training loss"


def saved_weights_text(saved_epoch: int, keeps_best: bool, plan: TrainingPlan) -> str:
    if saved_epoch == 0:
        return "none trained (the initial weights)"
    return f"epoch {saved_epoch} ({'best on ' + chosen_on(plan) if keeps_best else 'last epoch'})"


def scores_rows(scores: SetScores) -> list[dict]:
    """One row per set: samples, overall accuracy, kappa, macro F1."""
    return [{"set": name, "samples": s.total, "overall accuracy": s.overall_accuracy, "kappa": s.kappa,
             "macro F1": s.macro_f1} for name, s in scores.items()]


def score_notes(scores: SetScores, plan: TrainingPlan, settings: Settings, saved_epoch: int,
                seed_chosen: bool = False) -> list[str]:
    """What the scores mean, in words: which set chose the epoch (and seed), whether the validation
    scores are optimistic, whether the model overfits."""
    notes = []
    keeps_best = settings.keeps_best and saved_epoch > 0
    valid_chose = scores.validation is not None and (keeps_best or settings.patience > 0 or seed_chosen)
    choices = [what for what, made in (("the epoch whose weights were saved", keeps_best),
                                       ("when to stop (early stopping)", settings.patience > 0),
                                       ("the seed kept", seed_chosen)) if made]
    if scores.validation is None:
        chose = "The best epoch was chosen on the training loss. " if keeps_best else ""
        notes.append("No validation set (VALID): the model was scored on the training set, which it was fitted on "
                     f"(those scores say little about unseen data){' and on the test set' if scores.test else ''}. "
                     f"{chose}Give a VALID dataset to choose the epoch on, and a TEST dataset for honest figures.")
    elif valid_chose and scores.test is None:
        notes.append(f"The validation scores are optimistic: the validation set chose {' and '.join(choices)}, "
                     "so it is no longer independent of the model. Give a TEST dataset (e.g. the test set of Grid "
                     "split) for an unbiased estimate.")
    elif valid_chose:
        notes.append(f"The validation set chose {' and '.join(choices)}, so its scores are somewhat optimistic; the "
                     "test set chose nothing: its scores are the unbiased estimate.")
    else:
        notes.append("The validation set chose nothing (the last epoch's weights were saved, no early stopping): "
                     "its scores are an unbiased estimate" + (", as are the test set's." if scores.test else "."))
    reference = next(((name, s) for name, s in scores.items() if name != "training"), None)
    if scores.training is not None and reference is not None:
        gap = scores.training.kappa - reference[1].kappa
        if gap > OVERFIT_GAP:
            notes.append(f"Overfitting: the training-set kappa ({scores.training.kappa:.3f}) is {gap:.3f} above the "
                         f"{reference[0]} kappa ({reference[1].kappa:.3f}): the model fits the samples it was "
                         "trained on much better than unseen ones. Fewer epochs (PATIENCE), more augmentation or "
                         "more training data may help; a validation set unlike the training set gives such a gap "
                         "too.")
    return notes
