"""Compare accuracy: several Assess accuracy reports (their CSV) side by side in one table (overall
accuracy, kappa, macro F1 and F1 per class), as CSV and HTML — the last step of experiments such as
"does super-resolution help?" (the same classifier on LR, bicubic, SR and HR images)."""

from __future__ import annotations

import csv
import os
from typing import Any

from ..errors import PatchFlowError
from ..params import Params, RunContext
from ..report import htmlreport

SUMMARY = {"overall accuracy": "OA", "kappa": "kappa", "macro F1": "macro F1"}


def read_report(path: str, parameter: str) -> tuple[dict[str, float], dict[str, float]]:
    """(summary scores, F1 by class name) of an Assess accuracy CSV."""
    if not os.path.isfile(path):
        raise PatchFlowError(f"accuracy report not found: {path}. Give the CSV written by Assess accuracy.", parameter)
    summary: dict[str, float] = {}
    per_class: dict[str, float] = {}
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            for row in csv.DictReader(stream):
                if row.get("id"):
                    per_class[row.get("name") or f"class {row['id']}"] = float(row["f1"] or "nan")
                elif row.get("name") in SUMMARY:
                    summary[SUMMARY[row["name"]]] = float(row["value"] if row.get("value") else row["f1"])
    except (KeyError, ValueError, csv.Error) as exc:
        raise PatchFlowError(f"{path} is not an Assess accuracy CSV ({exc}).", parameter) from None
    if "kappa" not in summary or "OA" not in summary:
        raise PatchFlowError(f"{path} has no kappa or overall accuracy row: give the CSV written by Assess "
                             "accuracy.", parameter)
    return summary, per_class


def formatted(row: dict, digits: int) -> dict:
    return {k: "" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else v) for k, v in row.items()}


def run_compare_accuracy(params: Params, context: RunContext) -> dict:
    from .. import checks

    checks.writable(params, "OUTPUT_CSV", "OUTPUT_HTML")
    reports = params.paths("REPORTS")
    names = [n.strip() for n in (params.string("NAMES") or "").split(";") if n.strip()]
    if names and len(names) != len(reports):
        raise PatchFlowError(f"{len(names)} names for {len(reports)} reports; give one name per report, separated "
                             "by ';' (or none: the file names).", "NAMES")
    names = names or [os.path.splitext(os.path.basename(p))[0] for p in reports]
    scores = [read_report(path, "REPORTS") for path in reports]
    classes = list(dict.fromkeys(name for _, per_class in scores for name in per_class))
    rows: list[dict[str, Any]] = []
    for name, (summary, per_class) in zip(names, scores):
        row = {"map": name, "kappa": summary["kappa"], "OA": summary["OA"], "macro F1": summary.get("macro F1")}
        row.update({f"F1 {c}": per_class.get(c) for c in classes})
        rows.append(row)
    columns = list(rows[0])
    output_csv = params.string("OUTPUT_CSV")
    output_html = params.string("OUTPUT_HTML")
    staged = context.staging.stage(output_csv, "OUTPUT_CSV")
    with open(staged, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(formatted(row, 4))
    if output_html:
        shown = [formatted(row, 3) for row in rows]
        text = htmlreport.page("PatchFlow: accuracy compared", [
            ("Accuracy of each map", htmlreport.table(shown, columns)),
            ("Sources", htmlreport.paragraph("; ".join(f"{n}: {p}" for n, p in zip(names, reports))))])
        htmlreport.write(context.staging.stage(output_html, "OUTPUT_HTML"), text)
    best = max(rows, key=lambda r: r["kappa"])
    context.reporter.log("; ".join(f"{r['map']}: kappa {r['kappa']:.3f}, OA {r['OA']:.3f}" for r in rows))
    context.reporter.progress(100)
    return {"OUTPUT_CSV": output_csv, "OUTPUT_HTML": output_html, "BEST": best["map"], "BEST_KAPPA": best["kappa"],
            "ROWS": rows}
