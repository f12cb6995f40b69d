"""REPEATS: the same training with seeds SEED, SEED+1, ..., one after the other in this process, each
in its own sub-folder of the work folder; the scores of every seed, their mean and standard
deviation (how much a change of seed moves them), and the model of the seed with the lowest
validation loss (else training loss) at its saved epoch kept as OUTPUT.

A cancel stops the repeat under way; repeats are not resumed (RESUME applies to REPEATS=1): the
next run starts them over.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import Cancelled
from ..ownership import mark_folder
from ..params import Params, RunContext
from ..report import htmlreport
from .scoresets import METRICS, PREFIXES, SetScores, chosen_on
from .trainresults import Trained, finish, score_sets
from .trainsettings import Settings

LABELS = {"OA": "OA", "KAPPA": "kappa", "MACRO_F1": "macro F1"}


@dataclass
class Run:
    seed: int
    saved_epoch: int
    loss: float  # the selection loss at the saved epoch
    scores: SetScores | None


@dataclass
class Repeats:
    """Every seed's run and the one kept."""

    runs: list[Run] = field(default_factory=list)
    kept: int = 0  # index in runs
    chosen_on: str = "validation loss"

    def values(self, set_name: str, metric: str) -> list[float]:
        found = [run.scores.value(set_name, metric) for run in self.runs if run.scores is not None]
        return [v for v in found if v is not None]

    def statistics(self) -> dict[str, tuple[float | None, float | None]]:
        """{result key: (mean, sample sd (n - 1))} of each set's scores over the seeds."""
        stats: dict[str, tuple[float | None, float | None]] = {}
        for name, prefix in PREFIXES.items():
            for metric in METRICS:
                values = self.values(name, metric)
                stats[f"{prefix}{metric}"] = (float(np.mean(values)) if values else None,
                                              float(np.std(values, ddof=1)) if len(values) > 1 else None)
        return stats

    def outputs(self) -> dict[str, float | None]:
        stats = self.statistics()
        return {**{f"{key}_MEAN": mean for key, (mean, _) in stats.items()},
                **{f"{key}_SD": sd for key, (_, sd) in stats.items()}}

    def columns(self) -> list[tuple[str, str, str]]:
        """(column title, set, metric) of each set scored."""
        present = [name for name in PREFIXES if self.values(name, "KAPPA")]
        return [(f"{name} {LABELS[metric]}", name, metric) for name in present for metric in METRICS]

    def rows(self) -> list[dict[str, Any]]:
        columns = self.columns()
        loss = "validation loss" if self.chosen_on == "validation loss" else "training loss"
        rows: list[dict[str, Any]] = []
        for index, run in enumerate(self.runs):
            row: dict[str, Any] = {"seed": run.seed, "kept": "yes" if index == self.kept else "",
                                   "saved epoch": run.saved_epoch, loss: run.loss}
            for title, name, metric in columns:
                row[title] = run.scores.value(name, metric) if run.scores else None
            rows.append(row)
        stats = self.statistics()
        for which, position in (("mean", 0), ("sd", 1)):
            row = {"seed": which, "kept": "", "saved epoch": "", loss: ""}
            for title, name, metric in columns:
                row[title] = stats[f"{PREFIXES[name]}{metric}"][position]
            rows.append(row)
        return rows

    def kept_text(self) -> str:
        return (f"{len(self.runs)} seeds ({self.runs[0].seed}-{self.runs[-1].seed}); kept: seed "
                f"{self.runs[self.kept].seed}, the lowest {self.chosen_on} at its saved epoch")

    def section(self) -> tuple[str, str]:
        rows = self.rows()
        words = (f"Each row is one training with its seed; mean and sd (sample standard deviation, n - 1) are over "
                 f"the {len(self.runs)} seeds: a difference between two models smaller than about two sd is within "
                 f"the change a new seed makes. The model kept is the seed with the lowest {self.chosen_on} at its "
                 "saved epoch (seed " + str(self.runs[self.kept].seed) + ").")
        if self.chosen_on == "validation loss":
            words += (" Its validation scores are optimistic (the validation set chose it among the seeds); the "
                      "mean over the seeds does not depend on that choice, and the test set chose nothing.")
        else:
            words += " Without VALID it is chosen on the training loss, which says little about unseen data."
        return (f"Repeats: {len(self.runs)} seeds", "\n".join([htmlreport.table(rows, list(rows[0])),
                                                               htmlreport.paragraph(words)]))

    def summary(self) -> dict[str, Any]:
        """For the card: every seed's scores, the mean and sd, and the seed kept."""
        return {"seeds": [run.seed for run in self.runs], "kept_seed": self.runs[self.kept].seed,
                "kept_on": f"lowest {self.chosen_on} at the saved epoch",
                "runs": [{"seed": run.seed, "saved_epoch": run.saved_epoch,
                          "selection_loss": run.loss if np.isfinite(run.loss) else None,
                          "scores": run.scores.summary() if run.scores else None} for run in self.runs],
                "mean_sd": {key: {"mean": mean, "sd": sd} for key, (mean, sd) in self.statistics().items()
                            if mean is not None}}


def train_repeats(params: Params, context: RunContext, settings: Settings, work: str, output: str,
                  train_seed: Callable[[Settings, str, RunContext, bool], Trained]) -> dict:
    """Train ``settings.repeats`` seeds in turn; export the best one with every seed's scores."""
    count = settings.repeats
    if params.boolean("RESUME"):
        context.reporter.log(f"REPEATS {count}: the repeats start over (RESUME continues a run of REPEATS=1).")
    if os.path.isdir(work):  # check_output made sure it is PatchFlow's work folder
        shutil.rmtree(work)
    os.makedirs(work)
    mark_folder(work, "training", whole=True)
    repeats, kept = Repeats(), None
    try:
        for index in range(count):
            if context.cancelled():
                raise Cancelled()
            run_settings = dataclasses.replace(settings, seed=settings.seed + index)
            context.reporter.log(f"repeat {index + 1}/{count}: seed {run_settings.seed}")
            run_context = dataclasses.replace(context, reporter=context.reporter.span(90 * index / count,
                                                                                       90 * (index + 1) / count))
            trained = train_seed(run_settings, os.path.join(work, f"seed_{run_settings.seed}"), run_context, False)
            trained.scores = score_sets(trained, context)
            repeats.chosen_on = chosen_on(trained.plan)
            repeats.runs.append(Run(run_settings.seed, trained.saved_epoch, trained.selection_loss, trained.scores))
            shutil.rmtree(os.path.join(trained.work, "records"), ignore_errors=True)  # one record cache at a time
            if kept is None or trained.selection_loss < kept.selection_loss:
                if kept is not None:
                    shutil.rmtree(kept.work, ignore_errors=True)
                kept, repeats.kept = trained, index
            else:  # only the kept model stays, in memory and on disk
                shutil.rmtree(trained.work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        context.reporter.log("repeats interrupted: their work folder is removed; a new run starts them over.")
        raise
    assert kept is not None
    context.reporter.log(f"kept: seed {kept.settings.seed} (lowest {repeats.chosen_on}, "
                         f"{kept.selection_loss:.4f} at epoch {kept.saved_epoch})")
    return finish(params, context, kept, work, output, repeats)
