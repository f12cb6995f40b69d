"""Accuracy metrics of a classification: confusion matrix, overall accuracy, Cohen's kappa and
per-class precision / recall / F1, computed with numpy alone (scikit-learn is only used by the tests,
which check every number against it). Matrices can be built block by block and summed, so a map of
any size is scored without holding its pairs in memory.

Conventions (scikit-learn's): rows are reference classes, columns predicted classes; a ratio whose
denominator is zero is 0 (``zero_division=0``); precision is the user's accuracy, recall the
producer's accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..geodata.classcolors import default_colors
from ..geodata.classes import ClassInfo, ClassLike
from ..report import tables

SUMMARY_LABELS = {
    "overall_accuracy": "overall accuracy",
    "kappa": "kappa",
    "macro_f1": "macro F1",
    "weighted_f1": "weighted F1",
}


def _positions(values: np.ndarray, class_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Index of each value in ``class_ids`` and whether it is there at all."""
    ids = np.asarray(list(class_ids), dtype=np.int64)
    values = np.asarray(values).ravel()
    if len(ids) == 0:
        return np.zeros(len(values), dtype=np.int64), np.zeros(len(values), dtype=bool)
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    found = np.clip(np.searchsorted(ordered, values), 0, len(ids) - 1)
    known = ordered[found] == values
    return order[found], known


def confusion_matrix(reference: np.ndarray, predicted: np.ndarray, class_ids: Sequence[int]) -> np.ndarray:
    """Counts (int64, len(class_ids) square): row i = reference class_ids[i], column j = predicted class_ids[j].

    A pair is counted only when both of its values are in ``class_ids``, exactly as scikit-learn's
    ``confusion_matrix(reference, predicted, labels=class_ids)``. To count predictions of classes
    outside the list as errors (rather than dropping them), give the union of both arrays' values:
    ``Scores.from_pairs`` and ``PairCounter`` do so.
    """
    reference = np.asarray(reference).ravel()
    predicted = np.asarray(predicted).ravel()
    if reference.shape != predicted.shape:
        raise ValueError(f"reference ({reference.size}) and predicted ({predicted.size}) differ in length")
    k = len(class_ids)
    rows, row_known = _positions(reference, class_ids)
    cols, col_known = _positions(predicted, class_ids)
    keep = row_known & col_known
    flat = rows[keep] * k + cols[keep]
    return np.bincount(flat, minlength=k * k).astype(np.int64).reshape(k, k)


class PairCounter:
    """Counts (reference, predicted) pairs block by block, whatever classes turn up."""

    def __init__(self) -> None:
        self.counts: dict[tuple[int, int], int] = {}

    def add(self, reference: np.ndarray, predicted: np.ndarray) -> None:
        reference = np.asarray(reference, dtype=np.int64).ravel()
        predicted = np.asarray(predicted, dtype=np.int64).ravel()
        if reference.size == 0:
            return
        pairs, n = np.unique(np.stack([reference, predicted]), axis=1, return_counts=True)
        for (r, p), count in zip(pairs.T.tolist(), n.tolist()):
            self.counts[(r, p)] = self.counts.get((r, p), 0) + count

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def class_ids(self) -> list[int]:
        """Every class seen, in the reference or the predictions, sorted."""
        return sorted({r for r, _ in self.counts} | {p for _, p in self.counts})

    def matrix(self, class_ids: Sequence[int] | None = None) -> np.ndarray:
        ids = list(self.class_ids if class_ids is None else class_ids)
        index = {c: i for i, c in enumerate(ids)}
        matrix = np.zeros((len(ids), len(ids)), dtype=np.int64)
        for (r, p), count in self.counts.items():
            if r in index and p in index:
                matrix[index[r], index[p]] += count
        return matrix


def _ratio(numerator: np.ndarray, denominator: np.ndarray | float) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _class_lists(class_ids: Sequence[int], classes: Sequence[ClassLike]) -> tuple[list[str], list[str]]:
    known = {info.id: info for info in map(ClassInfo.of, classes)}
    infos = [known.get(int(class_id)) for class_id in class_ids]
    names = [info.name if info and info.name else f"class {class_id}" for class_id, info in zip(class_ids, infos)]
    return names, default_colors(names, [info.color if info else "" for info in infos])


@dataclass
class Scores:
    """A confusion matrix with its class ids, names and colours, and every score derived from it."""

    class_ids: list[int]
    names: list[str]
    colors: list[str]
    matrix: np.ndarray = field(repr=False)
    method: str = ""  # how the scores were computed (e.g. as Apply model serves the model), for reports

    def __post_init__(self) -> None:
        self.class_ids = [int(c) for c in self.class_ids]
        self.matrix = np.asarray(self.matrix, dtype=np.int64)
        k = len(self.class_ids)
        if self.matrix.shape != (k, k) or len(self.names) != k or len(self.colors) != k:
            raise ValueError(f"matrix {self.matrix.shape}, {len(self.names)} names and {len(self.colors)} colours "
                             f"do not match {k} classes")

    # ---- construction ----------------------------------------------------------------------

    @classmethod
    def from_matrix(cls, matrix: np.ndarray, classes: Sequence[ClassLike]) -> Scores:
        """``classes`` (ClassInfo or {id, name, color}, in the matrix's row order) name the rows and columns."""
        ids = [ClassInfo.of(c).id for c in classes]
        names, colors = _class_lists(ids, classes)
        return cls(ids, names, colors, np.asarray(matrix))

    @classmethod
    def from_pairs(cls, reference: np.ndarray, predicted: np.ndarray, classes: Sequence[ClassLike]) -> Scores:
        """Scores of (reference, predicted) pairs. Pairs whose reference is not one of ``classes`` are
        ignored; a predicted value that is not one of them becomes an extra class (named "class N"),
        so that it counts as an error instead of vanishing."""
        ids = [ClassInfo.of(c).id for c in classes]
        reference = np.asarray(reference).ravel()
        predicted = np.asarray(predicted).ravel()
        _, in_classes = _positions(reference, ids)
        extra = sorted(set(np.unique(predicted[in_classes]).astype(np.int64).tolist()) - set(ids))
        all_ids = ids + extra
        names, colors = _class_lists(all_ids, classes)
        return cls(all_ids, names, colors, confusion_matrix(reference, predicted, all_ids))

    # ---- scores ------------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    @property
    def correct(self) -> np.ndarray:
        return np.diag(self.matrix).copy()

    @property
    def support(self) -> np.ndarray:
        """Reference count of each class (row sums)."""
        return self.matrix.sum(axis=1)

    @property
    def predicted_counts(self) -> np.ndarray:
        """Predicted count of each class (column sums)."""
        return self.matrix.sum(axis=0)

    @property
    def overall_accuracy(self) -> float:
        return float(_ratio(self.correct.sum(), self.total))

    @property
    def kappa(self) -> float:
        """Cohen's kappa. When chance agreement is 1 (one single class, in every reference and every
        prediction) kappa is undefined; it is given as 1 then, since such pairs agree perfectly."""
        n = self.total
        if n == 0:
            return 0.0
        observed = self.correct.sum() / n
        expected = float(np.dot(self.support.astype(np.float64), self.predicted_counts.astype(np.float64))) / n**2
        if expected >= 1.0:
            return 1.0
        return float((observed - expected) / (1.0 - expected))

    @property
    def precision(self) -> np.ndarray:
        return _ratio(self.correct, self.predicted_counts)

    @property
    def recall(self) -> np.ndarray:
        return _ratio(self.correct, self.support)

    @property
    def f1(self) -> np.ndarray:
        return _ratio(2 * self.correct, self.support + self.predicted_counts)

    @property
    def present(self) -> np.ndarray:
        """Classes in the reference or the predictions: those scikit-learn averages over."""
        return (self.support + self.predicted_counts) > 0

    def _macro(self, values: np.ndarray) -> float:
        return float(values[self.present].mean()) if self.present.any() else 0.0

    def _weighted(self, values: np.ndarray) -> float:
        return float(_ratio(np.dot(values, self.support), self.support.sum()))

    @property
    def macro_precision(self) -> float:
        return self._macro(self.precision)

    @property
    def macro_recall(self) -> float:
        return self._macro(self.recall)

    @property
    def macro_f1(self) -> float:
        return self._macro(self.f1)

    @property
    def weighted_precision(self) -> float:
        return self._weighted(self.precision)

    @property
    def weighted_recall(self) -> float:
        return self._weighted(self.recall)

    @property
    def weighted_f1(self) -> float:
        return self._weighted(self.f1)

    # ---- outputs -----------------------------------------------------------------------------

    def rows(self) -> list[dict]:
        """One row per class: id, name, color, reference, predicted, correct, precision, recall, f1."""
        return [
            {"id": class_id, "name": name, "color": color, "reference": int(ref), "predicted": int(pred),
             "correct": int(ok), "precision": float(p), "recall": float(r), "f1": float(f)}
            for class_id, name, color, ref, pred, ok, p, r, f in zip(
                self.class_ids, self.names, self.colors, self.support, self.predicted_counts, self.correct,
                self.precision, self.recall, self.f1)
        ]

    def summary(self) -> dict:
        return {
            "n": self.total,
            "correct": int(self.correct.sum()),
            "overall_accuracy": self.overall_accuracy,
            "kappa": self.kappa,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "macro_f1": self.macro_f1,
            "weighted_precision": self.weighted_precision,
            "weighted_recall": self.weighted_recall,
            "weighted_f1": self.weighted_f1,
        }

    def as_dict(self) -> dict:
        """Everything, JSON-able."""
        return {
            "classes": self.rows(),
            "matrix": self.matrix.tolist(),
            **self.summary(),
        }

    def table_rows(self) -> list[dict]:
        """The rectangular table that the CSV and table outputs hold: the per-class rows with their
        confusion matrix row (``pred_<id>``: reference pixels of this class predicted as <id>), then
        summary rows (no id) whose ``value`` column holds OA, kappa, macro F1 and weighted F1; the
        averages rows also fill precision / recall / f1."""
        blank = {"id": None, "name": "", "color": "", "reference": None, "predicted": None, "correct": None,
                 "precision": None, "recall": None, "f1": None, "value": None}
        matrix_columns = [f"pred_{c}" for c in self.class_ids]
        rows = []
        for row, counts in zip(self.rows(), self.matrix.tolist()):
            rows.append({**blank, **row, **dict(zip(matrix_columns, counts))})
        summary = self.summary()
        n, correct = summary["n"], summary["correct"]
        extra = {
            "overall_accuracy": {"reference": n, "predicted": n, "correct": correct},
            "macro_f1": {"precision": summary["macro_precision"], "recall": summary["macro_recall"],
                         "f1": summary["macro_f1"]},
            "weighted_f1": {"precision": summary["weighted_precision"], "recall": summary["weighted_recall"],
                            "f1": summary["weighted_f1"]},
        }
        for key, label in SUMMARY_LABELS.items():
            rows.append({**blank, **dict.fromkeys(matrix_columns), "name": label, **extra.get(key, {}),
                         "value": summary[key]})
        return rows

    def write_csv(self, path: str) -> None:
        rows = self.table_rows()
        tables.write_csv(path, rows, list(rows[0]) if rows else ["name", "value"], lambda value: f"{value:.6f}")

    def html_table(self) -> str:
        """OA / kappa / averages, then the per-class table (HTML fragment, no page around it)."""
        from ..report import htmlreport

        summary = self.summary()
        head = htmlreport.table([
            {"pairs": summary["n"], "correct": summary["correct"], "overall accuracy": summary["overall_accuracy"],
             "kappa": summary["kappa"], "macro F1": summary["macro_f1"], "weighted F1": summary["weighted_f1"]}])
        per_class = [
            {"class": htmlreport.swatch(row["color"], f"{row['id']} {row['name']}"),
             "reference": row["reference"], "predicted": row["predicted"], "correct": row["correct"],
             "precision (user's)": row["precision"], "recall (producer's)": row["recall"], "F1": row["f1"]}
            for row in self.rows()
        ]
        return head + htmlreport.table(per_class)

    def html_matrix(self) -> str:
        """The confusion matrix as an HTML table of counts, with totals."""
        from ..report import htmlreport

        labels = [f"{c} {n}" for c, n in zip(self.class_ids, self.names)]
        rows = []
        for label, counts, total in zip(labels, self.matrix.tolist(), self.support.tolist()):
            rows.append({"reference \\ predicted": label, **dict(zip(labels, counts)), "total": total})
        rows.append({"reference \\ predicted": "total", **dict(zip(labels, self.predicted_counts.tolist())),
                     "total": self.total})
        return htmlreport.table(rows)


def plot_confusion(scores: Scores, png_path: str, normalize: bool = True) -> None:
    """A heat map of the confusion matrix (rows: reference) with the counts written in each cell;
    colours show the share of each reference row when ``normalize`` (the recall on the diagonal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = scores.matrix
    k = len(scores.class_ids)
    shown = _ratio(matrix, matrix.sum(axis=1, keepdims=True)) if normalize else matrix.astype(np.float64)
    size = min(4.0 + 0.6 * k, 24.0)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    try:
        image = axes.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(1.0, float(shown.max())))
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04,
                        label="share of the reference class" if normalize else "pairs")
        labels = [f"{c} {n}" for c, n in zip(scores.class_ids, scores.names)]
        axes.set_xticks(range(k), labels=labels, rotation=45, ha="right")
        axes.set_yticks(range(k), labels=labels)
        axes.set_xlabel("predicted")
        axes.set_ylabel("reference")
        axes.set_title(f"OA {scores.overall_accuracy:.3f}, kappa {scores.kappa:.3f}, n = {scores.total}")
        if k <= 30:
            font = max(5, 11 - k // 4)
            for i in range(k):
                for j in range(k):
                    text = str(int(matrix[i, j]))
                    if normalize and matrix[i].sum():
                        text += f"\n{shown[i, j]:.0%}"
                    dark = shown[i, j] > 0.6 * (1.0 if normalize else max(1.0, float(shown.max())))
                    axes.text(j, i, text, ha="center", va="center", fontsize=font,
                              color="white" if dark else "black")
        figure.tight_layout()
        figure.savefig(png_path, dpi=110, format="png")
    finally:
        plt.close(figure)

