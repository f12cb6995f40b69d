"""The training report: one HTML page (opens in a browser, images embedded) with the settings,
the loss and metric curves per epoch, the training, validation and test scores side by side with
what they mean in words, the scores per class and the confusion heat map."""

from __future__ import annotations

import csv
import os

from ..evaluate.metrics import plot_confusion
from ..report import htmlreport
from .scoresets import SetScores, scores_rows


def write_history_csv(path: str, history: dict[str, list[float]]) -> None:
    keys = list(history)
    epochs = max((len(v) for v in history.values()), default=0)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", *keys])
        for epoch in range(epochs):
            writer.writerow([epoch + 1, *(f"{history[k][epoch]:.6g}" if epoch < len(history[k]) else ""
                                          for k in keys)])


def plot_curves(history: dict[str, list[float]], metric: str, png_path: str, best_epoch: int = 0,
                saved_epoch: int = 0) -> bool:
    """Training and validation ``metric`` per epoch; False when the history has no such metric."""
    if metric not in history:
        return False
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axis = pyplot.subplots(figsize=(6.4, 3.6), dpi=100)
    for key, label in ((metric, "training"), (f"val_{metric}", "validation")):
        if key in history:
            epochs = range(1, len(history[key]) + 1)
            axis.plot(epochs, history[key], marker="o", markersize=3, label=label)
    if best_epoch:
        axis.axvline(best_epoch, color="#999999", linestyle="--", linewidth=1, label=f"best epoch ({best_epoch})")
    if saved_epoch and saved_epoch != best_epoch:
        axis.axvline(saved_epoch, color="#d62728", linestyle=":", linewidth=1, label=f"weights saved ({saved_epoch})")
    axis.set_xlabel("epoch")
    axis.set_ylabel(metric)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(png_path)
    pyplot.close(figure)
    return True


def write_training_report(folder: str, title: str, summary: list[dict], history: dict[str, list[float]],
                          scores: SetScores | None, notes: list[str], best_epoch: int, saved_epoch: int,
                          extra_sections: list[tuple[str, str]] | None = None) -> str:
    """report.html in ``folder`` (PNG figures beside it in report_files/); returns its path. ``scores``:
    the training, validation and test scores (class targets) shown side by side, ``notes`` what they
    mean in words."""
    figures = os.path.join(folder, "report_files")
    os.makedirs(figures, exist_ok=True)
    sections: list[tuple[str, str]] = [("Summary", htmlreport.table(summary, ["item", "value"]))]
    curves = []
    for metric in ("loss", "accuracy", "psnr", "ssim"):
        png = os.path.join(figures, f"{metric}.png")
        if plot_curves(history, metric, png, best_epoch, saved_epoch):
            curves.append(htmlreport.image_tag(png, f"{metric} per epoch"))
    sections.append(("Curves per epoch", "\n".join(curves) or htmlreport.paragraph("no epoch was run.")))
    if scores is not None:
        sections.append(("Scores: training, validation and test sets", "\n".join(
            [htmlreport.table(scores_rows(scores), ["set", "samples", "overall accuracy", "kappa", "macro F1"]),
             *(htmlreport.paragraph(note) for note in notes)])))
        for name, result in scores.items():
            method = htmlreport.paragraph(f"Computed {result.method}.") if result.method else ""
            sections.append((f"Accuracy on the {name} set", method + result.html_table()))
        name = next(n for n in ("validation", "test", "training") if getattr(scores, n) is not None)
        result = getattr(scores, name)
        png = os.path.join(figures, "confusion.png")
        plot_confusion(result, png)
        sections.append((f"Confusion matrix, {name} set (rows: reference, columns: predicted)",
                         htmlreport.image_tag(png, "confusion matrix")))
    sections.extend(extra_sections or [])
    sections.append(("Files", htmlreport.paragraph(
        "history.csv (metrics per epoch), training.csv, validation.csv and test.csv (scores per class on each set "
        "given), logs/ (TensorBoard: tensorboard --logdir logs), patchflow_card.json (the model card), "
        "saved_model.pb (the model).")))
    path = os.path.join(folder, "report.html")
    htmlreport.write(path, htmlreport.page(title, sections))
    return path
