"""Compare accuracy: several Assess accuracy reports (their CSV) side by side in one table (overall
accuracy, kappa, macro F1 and F1 per class), as CSV and HTML — the last step of experiments such as
"does super-resolution help?" (the same classifier on LR, bicubic, SR and HR images).

With the samples each assessment scored (the ``<report>_pairs.csv`` Assess accuracy writes beside
its CSV, or PAIRS), each map gets bootstrap 95 % intervals of its OA and kappa, and every two maps
assessed at the same samples are compared (all pairs): McNemar's test and the interval of their
kappa difference (significance.py), in ``<OUTPUT_CSV>_significance.csv`` and the HTML. The outputs
MCNEMAR_P and SIGNIFICANCE are the best map's (highest kappa) against the runner-up. Reports
without pairs (written before PatchFlow wrote them) are compared as before, with a note."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import PatchFlowError
from ..params import Params, RunContext
from ..report import htmlreport
from ..reporting import Reporter
from . import pairs as pairsfile
from . import significance
from .pairs import Pairs, match, pairs_path, read_pairs

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


SIGNIFICANCE_SUFFIX = "_significance.csv"


def formatted(row: dict, digits: int) -> dict:
    """Scores with ``digits`` decimals; p-values with ``digits`` significant digits (1e-7 is not 0)."""
    return {k: "" if v is None else (f"{v:.{digits}{'g' if 'McNemar p' in k else 'f'}}" if isinstance(v, float) else v)
            for k, v in row.items()}


def given_pairs(params: Params) -> list[str]:
    """PAIRS, without the empty entry QGIS may give for none."""
    return [path for path in params.paths("PAIRS", required=False) if path.strip()]


def load_pairs(params: Params, reports: list[str], summaries: list[dict[str, float]]) -> list[Pairs | None]:
    """Each report's pairs (PAIRS, else the file beside it when there is one), checked to be the
    samples the report scored (same OA and kappa)."""
    given = given_pairs(params)
    if given and len(given) != len(reports):
        raise PatchFlowError(f"{len(given)} pairs files for {len(reports)} reports; give one per report, in the same "
                             "order (or none: the <report>_pairs.csv beside each).", "PAIRS")
    found: list[Pairs | None] = []
    for index, report in enumerate(reports):
        path = given[index] if given else pairs_path(report)
        if not given and not os.path.isfile(path):
            found.append(None)
            continue
        pairs = read_pairs(path, "PAIRS" if given else "REPORTS")
        scored = pairs.scored
        if not scored.any():
            found.append(None)
            continue
        (oa,), (kappa,) = significance.scores_of_matrices(_matrix(pairs.reference[scored], pairs.predicted[scored]))
        summary = summaries[index]
        if abs(oa - summary["OA"]) > 1e-5 or abs(kappa - summary["kappa"]) > 1e-5:
            raise PatchFlowError(f"{path} does not hold the samples of {report}: they give OA {oa:.4f} and kappa "
                                 f"{kappa:.4f}, the report {summary['OA']:.4f} and {summary['kappa']:.4f}. Give the "
                                 "pairs file written with the report (assess the map again).",
                                 "PAIRS" if given else "REPORTS")
        found.append(pairs)
    return found


def _matrix(reference: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    ids = np.unique(np.concatenate([reference, predicted]))
    k = len(ids)
    return np.bincount(np.searchsorted(ids, reference) * k + np.searchsorted(ids, predicted),
                       minlength=k * k).reshape(1, k, k)


def bootstrapping(reporter: Reporter, what: str, resamples: int) -> Callable[[int], None]:
    """A stage "bootstrapping <what>", and what tells it each chunk of resamples made (resamples i/N)."""
    reporter.stage(f"bootstrapping {what} ({resamples} resamples)", 0)
    return lambda made: reporter.stage(f"bootstrapping {what}: resamples {made}/{resamples}",
                                       100.0 * made / resamples, log=False)


def pair_tests(names: list[str], pairs: list[Pairs | None], resamples: int, seed: int, parameter: str,
               reporter: Reporter | None = None) -> tuple[list[significance.PairTest], list[str]]:
    """Every two maps with pairs, compared at the samples both scored; and notes on what was left out."""
    tests, notes = [], []
    with_pairs = [i for i, p in enumerate(pairs) if p is not None]
    couples = [(i, j) for position, i in enumerate(with_pairs) for j in with_pairs[position + 1:]]
    for index, (i, j) in enumerate(couples):
        first, second = pairs[i], pairs[j]
        assert first is not None and second is not None
        matched = match(first, second, (names[i], names[j]), parameter)
        if not len(matched.reference):
            raise PatchFlowError(f"no sample has a class in both {names[i]} and {names[j]}: nothing to compare "
                                 "them on.", parameter)
        if matched.first_only or matched.second_only:
            notes.append(f"{names[i]} against {names[j]}: {matched.first_only} samples scored only in "
                         f"{names[i]} and {matched.second_only} only in {names[j]} (the other map has no class "
                         "there) are left out of their test.")
        span = (reporter or Reporter()).span(100 * index / len(couples), 100 * (index + 1) / len(couples))
        done = bootstrapping(span, f"{names[i]} against {names[j]}", resamples)
        tests.append(significance.compare_maps((names[i], names[j]), matched.reference, matched.first,
                                               matched.second, resamples, seed, done))
    missing = [names[i] for i, p in enumerate(pairs) if p is None]
    if missing:
        notes.append(f"No pairs for {', '.join(missing)}: significance (intervals, McNemar's test) needs the samples "
                     "each map was scored at, which Assess accuracy writes beside its CSV (<report>_pairs.csv; "
                     f"empty when more than {pairsfile.LIMIT} samples were assessed). Assess these maps again with "
                     "this version of PatchFlow, at sample points.")
    return tests, notes


def pair_row(test: significance.PairTest) -> dict[str, Any]:
    return {"first": test.first, "second": test.second, "samples": test.n, "kappa first": test.kappa[0],
            "kappa second": test.kappa[1], "kappa difference": test.difference,
            "difference low": test.difference_interval[0], "difference high": test.difference_interval[1],
            "OA first": test.oa[0], "OA second": test.oa[1], "right only in first": test.test.first_only,
            "right only in second": test.test.second_only, "McNemar p": test.test.p, "test": test.test.method,
            f"significant at {100 * significance.LEVEL:g} %": "yes" if test.significant else "no",
            "conclusion": test.sentence()}


def _write_csv(path: str, rows: list[dict], digits: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(formatted(row, digits))


def _against(test: significance.PairTest, name: str) -> bool:
    return name in (test.first, test.second)


def run_compare_accuracy(params: Params, context: RunContext) -> dict:
    from .. import checks

    checks.writable(params, "OUTPUT_CSV", "OUTPUT_HTML")
    reports = params.paths("REPORTS")
    names = [n.strip() for n in (params.string("NAMES") or "").split(";") if n.strip()]
    if names and len(names) != len(reports):
        raise PatchFlowError(f"{len(names)} names for {len(reports)} reports; give one name per report, separated "
                             "by ';' (or none: the file names).", "NAMES")
    names = names or [os.path.splitext(os.path.basename(p))[0] for p in reports]
    resamples, seed = params.integer("RESAMPLES"), params.integer("SEED")
    reporter = context.reporter
    reporter.stage(f"reading the {len(reports)} accuracy reports and their pairs", 0)
    scores = [read_report(path, "REPORTS") for path in reports]
    pairs = load_pairs(params, reports, [summary for summary, _ in scores])
    tests, notes = pair_tests(names, pairs, resamples, seed, "PAIRS" if given_pairs(params) else "REPORTS",
                              reporter.span(5, 50))
    reporter.progress(50)
    classes = list(dict.fromkeys(name for _, per_class in scores for name in per_class))
    best_index = max(range(len(reports)), key=lambda i: scores[i][0]["kappa"])
    best_name = names[best_index]
    rows: list[dict[str, Any]] = []
    for index, (name, (summary, per_class), sampled) in enumerate(zip(names, scores, pairs)):
        span = reporter.span(50 + 40 * index / len(names), 50 + 40 * (index + 1) / len(names))
        intervals = (significance.map_intervals(sampled.reference[sampled.scored], sampled.predicted[sampled.scored],
                                                resamples, seed, bootstrapping(span, name, resamples))
                     if sampled is not None else {})
        against_best = next((t for t in tests if _against(t, name) and _against(t, best_name) and name != best_name),
                            None)
        row = {"map": name, "kappa": summary["kappa"], "kappa low": intervals.get("kappa low"),
               "kappa high": intervals.get("kappa high"), "OA": summary["OA"], "OA low": intervals.get("OA low"),
               "OA high": intervals.get("OA high"), "macro F1": summary.get("macro F1"),
               "McNemar p against the best": against_best.test.p if against_best else None}
        row.update({f"F1 {c}": per_class.get(c) for c in classes})
        rows.append(row)
    columns = list(rows[0])
    output_csv = params.string("OUTPUT_CSV")
    output_html = params.string("OUTPUT_HTML")
    reporter.stage("writing the tables" + (" and the report" if output_html else ""), 90)
    _write_csv(context.staging.stage(output_csv, "OUTPUT_CSV"), rows, 4)
    significance_csv = os.path.splitext(output_csv)[0] + SIGNIFICANCE_SUFFIX if tests else None
    if significance_csv:
        _write_csv(context.staging.stage(significance_csv, "OUTPUT_CSV"), [pair_row(t) for t in tests], 4)
    if output_html:
        htmlreport.write(context.staging.stage(output_html, "OUTPUT_HTML"),
                         html_page(rows, columns, tests, notes, names, reports, resamples, seed))
    best = rows[best_index]
    headline = max((t for t in tests if _against(t, best_name)), default=None,
                   key=lambda t: rows[names.index(t.second if t.first == best_name else t.first)]["kappa"])
    context.reporter.log("; ".join(f"{r['map']}: kappa {r['kappa']:.3f}, OA {r['OA']:.3f}" for r in rows))
    for test in tests:
        context.reporter.log(test.sentence())
    for note in notes:
        context.reporter.warning(note)
    context.reporter.progress(100)
    return {"OUTPUT_CSV": output_csv, "OUTPUT_HTML": output_html, "BEST": best["map"], "BEST_KAPPA": best["kappa"],
            "BEST_KAPPA_LOW": best["kappa low"], "BEST_KAPPA_HIGH": best["kappa high"],
            "MCNEMAR_P": headline.test.p if headline else None,
            "SIGNIFICANCE": headline.sentence() if headline else None, "SIGNIFICANCE_CSV": significance_csv,
            "ROWS": rows, "TESTS": [pair_row(t) for t in tests]}


def html_page(rows: list[dict], columns: list[str], tests: list[significance.PairTest], notes: list[str],
              names: list[str], reports: list[str], resamples: int, seed: int) -> str:
    shown = [formatted(row, 3) for row in rows]
    sections = [("Accuracy of each map", htmlreport.table(shown, columns))]
    if tests:
        table = [formatted({k: v for k, v in pair_row(t).items() if k != "conclusion"}, 3) for t in tests]
        sections.append(("Is the difference significant?", htmlreport.table(table, list(table[0])) + "".join(
            htmlreport.paragraph(t.sentence()) for t in tests)))
        sections.append(("How", htmlreport.paragraph(
            "Two maps are compared at the samples both were assessed at and both have a class at. McNemar's test "
            "looks at the samples one map got right and the other wrong: with fewer than "
            f"{significance.EXACT_BELOW} such samples, the exact two-sided binomial test; else chi-square with "
            "continuity correction (1 degree of freedom). Intervals are percentile bootstrap 95 % intervals over "
            f"{resamples} resamples of the samples (seed {seed}; the same resamples for both maps of a pair). With "
            "several maps every two are tested; the p-values are not adjusted for multiple comparisons. Samples "
            "close to each other (pixels of one polygon) are not independent: intervals and p-values assume they "
            "are, so assess at independent points.")))
    if notes:
        sections.append(("Notes", "".join(htmlreport.paragraph(note) for note in notes)))
    sections.append(("Sources", htmlreport.paragraph("; ".join(f"{n}: {p}" for n, p in zip(names, reports)))))
    return htmlreport.page("PatchFlow: accuracy compared", sections)
