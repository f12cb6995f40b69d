#!/usr/bin/env python3
"""PatchFlow demo: the OTBTF chain on the North Carolina Landsat-7 scene, through qgis_process.

samples -> split (training / validation / test) -> patches -> train the patch CNN -> apply it to
the whole scene, then the baselines (per-pixel and deep-features Random Forests) mapping it too.
Every map is assessed twice: at the grid split's test points (pixels of the same polygons the
models learnt from, in other blocks) and at the 1000 independent labelled points shipped with the
data; the maps are then compared there (McNemar's test, bootstrap intervals).

    make demo                       # setup + data + this script
    .venv/bin/python scripts/demo.py [--data DIR] [--output DIR]

Each step is one headless ``qgis_process --json run patchflow:<algorithm>`` in a subprocess,
exactly what a user could type. The outputs, a text summary and ``report.html`` go to
demo-output/ (recreated on every run). Standard library only.

To extend the chain (super-resolution next), append a ``Step`` to ``build_steps`` with a
``summarize`` function; the runner, the text summary and the report need no change. A step's
``Summary.scores`` rows (overall accuracy, kappa) join the comparison table at the top of the
report; its ``Summary.key_outputs`` are linked there too, and its ``Summary.closing`` lines end
the printed summary.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from plugin.protocol import strict_dumps  # noqa: E402 - the standard library only: strict JSON, NaN as null

QGIS_PROCESS = ROOT / "scripts" / "qgis_process.sh"
DEFAULT_DATA = ROOT / ".cache" / "demo-data" / "nc"
DEFAULT_OUTPUT = ROOT / "demo-output"
MARKER = ".patchflow-demo"  # only a folder holding this (or the default one) is ever deleted
PATCH_SIZE = 16
STEP_TIMEOUT_S = 300
TAIL_LINES = 25
NOISE = ("DeprecationWarning: setapi() is deprecated", "XDG_RUNTIME_DIR not set")

IMAGE = "landsat_multiband.tif"
POLYGONS = "landsat96_polygons.shp"
# The 34 polygons are few and clustered (all 46 agriculture samples lie in one block): with this seed
# the training set holds all 7 classes (with seed 0 it has no agriculture, which no model could then
# map) and validation 6 of them.
SPLIT_SEED = 3
SPLIT_BLOCK = 4
SETS = {"train": "training", "valid": "validation", "test": "test"}
SPLIT = {"train": 0.6, "valid": 0.2, "test": 0.2}
EPOCHS = 30
# 1000 labelled points shipped with the data, not drawn from the 34 polygons: an independent check
INDEPENDENT = "landsat96_points.shp"
INDEPENDENT_FIELD = "label"
WHY_TWO_FIGURES = (
    "The test points are pixels of the same 34 polygons the models learnt from (in other blocks of the grid), "
    "and neighbouring pixels of one polygon look alike (spatial autocorrelation), so test scores measure how "
    "well a model recognises those polygons. The independent points are labelled elsewhere in the scene: their "
    "scores are what to expect of the map as a whole, and they are much lower.")


# ---- what a step is, what it produced ---------------------------------------------------------


@dataclass
class ClassCount:
    id: int
    name: str
    color: str
    count: int


@dataclass
class Score:
    """One row of the comparison table: how well a model or map agrees with the validation set."""

    what: str
    oa: float
    kappa: float
    evaluated_on: str  # "556 validation patches"
    evidence: Path  # the report or CSV that gives the details


@dataclass
class Summary:
    """What the text summary and the report show about one step."""

    facts: list[tuple[str, str]] = field(default_factory=list)  # ("samples", "2216"), ...
    classes: dict[str, list[ClassCount]] = field(default_factory=dict)  # column ("train") -> counts
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count
    outputs: list[tuple[str, Path]] = field(default_factory=list)  # (what, path)
    styled: list[tuple[Path, Path]] = field(default_factory=list)  # (layer, QML sidecar)
    notes: list[str] = field(default_factory=list)
    scores: list[Score] = field(default_factory=list)
    key_outputs: list[tuple[str, Path]] = field(default_factory=list)  # (short name, path): at the top too
    closing: list[tuple[str, str, Path | None]] = field(default_factory=list)  # (label, text, path): printed last


@dataclass
class Step:
    key: str  # short name: the JSON answer is kept as logs/<key>.json
    title: str
    algorithm: str  # patchflow:<id>
    parameters: list[tuple[str, str]]  # KEY=VALUE in order; a key may repeat (multiple layers)
    summarize: Callable[[Step, Run, dict[str, Run]], Summary]
    outputs: list[Path] = field(default_factory=list)  # files that must exist afterwards


@dataclass
class Run:
    step: Step
    command: list[str]
    seconds: float
    results: dict[str, Any]
    log: dict[str, list[str]]
    summary: Summary = field(default_factory=Summary)


class StepFailed(Exception):
    def __init__(self, step: Step, command: list[str], seconds: float, reason: str, tail: str) -> None:
        super().__init__(reason)
        self.step, self.command, self.seconds, self.reason, self.tail = step, command, seconds, reason, tail


# ---- reading outputs --------------------------------------------------------------------------


def gpkg_class_counts(path: Path) -> list[ClassCount]:
    """Points per class of a PatchFlow point output (fields class, class_name, color), read with
    sqlite3: a GeoPackage is an SQLite database."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute("SELECT table_name FROM gpkg_contents WHERE data_type = 'features' LIMIT 1").fetchone()
        if row is None:
            return []
        table = row[0].replace('"', '""')
        rows = db.execute(
            f'SELECT class, MAX(class_name), MAX(color), COUNT(*) FROM "{table}" GROUP BY class ORDER BY class'
        ).fetchall()
    return [ClassCount(int(c), name or "", color or "", int(n)) for c, name, color, n in rows if c is not None]


def manifest_classes(path: Path) -> tuple[dict[str, Any], list[ClassCount]]:
    manifest = json.loads(path.read_text(encoding="utf-8"))
    classes = [ClassCount(int(c["id"]), c.get("name", ""), c.get("color", ""), int(c.get("count", 0)))
               for c in manifest.get("classes", [])]
    return manifest, classes


def sidecars(*layers: Path) -> list[tuple[Path, Path]]:
    return [(layer, layer.with_suffix(".qml")) for layer in layers if layer.with_suffix(".qml").exists()]


def missing_classes(columns: dict[str, list[ClassCount]]) -> list[str]:
    """Notes for classes present in some columns and absent (or zero) in others."""
    names = {c.id: c.name for counts in columns.values() for c in counts}
    notes = []
    for class_id, name in sorted(names.items()):
        absent = [col for col, counts in columns.items() if not any(c.id == class_id and c.count for c in counts)]
        if absent:
            notes.append(f"class {class_id} {name} has no sample in: {', '.join(absent)}")
    return notes


# ---- the chain --------------------------------------------------------------------------------


def build_steps(data: Path, out: Path) -> list[Step]:
    image = str(data / IMAGE)
    samples = out / "samples.gpkg"
    sets = {name: out / f"{name}.gpkg" for name in SETS}
    patches = out / "patches"
    size = str(PATCH_SIZE)

    def summarize_samples(step: Step, run: Run, runs: dict[str, Run]) -> Summary:
        counts = gpkg_class_counts(samples)
        return Summary(
            facts=[("samples", str(run.results.get("COUNT")))],
            classes={"samples": counts},
            outputs=[("samples", samples)],
            styled=sidecars(samples),
        )

    def summarize_split(step: Step, run: Run, runs: dict[str, Run]) -> Summary:
        r = run.results
        counts = {name: r.get(f"COUNT_{name.upper()}", 0) for name in SETS}
        columns = {name: gpkg_class_counts(path) for name, path in sets.items()}
        given = int(runs["samples"].results.get("COUNT", 0))
        return Summary(
            facts=[(name, str(n)) for name, n in counts.items()],
            classes=columns,
            dropped={"patch reaches into a block of another set": given - sum(counts.values())},
            outputs=[(f"{SETS[name]} points", path) for name, path in sets.items()],
            styled=sidecars(*sets.values()),
            notes=missing_classes(columns),
        )

    def summarize_patches(name: str) -> Callable[[Step, Run, dict[str, Run]], Summary]:
        def summarize(step: Step, run: Run, runs: dict[str, Run]) -> Summary:
            manifest_path = Path(run.results["OUTPUT"])
            manifest, classes = manifest_classes(manifest_path)
            r = run.results
            source = manifest["sources"][0]
            return Summary(
                facts=[("patches", str(r.get("COUNT"))), ("points", str(manifest.get("n_points"))),
                       ("patches-image", (f"{source['patch_size']} x {source['patch_size']} px, "
                                          f"{len(source['bands'])} bands, {source['dtype']}"))],
                classes={name: classes},
                dropped={"touches nodata": int(r.get("DROPPED_NODATA", 0)),
                         "outside a source": int(r.get("DROPPED_OUTSIDE", 0))},
                outputs=[("manifest", manifest_path), ("patches-image", Path(r["PATCHES1"])),
                         ("labels image", Path(r["LABELS"]))],
            )
        return summarize

    steps = [
        Step("samples", "Sample selection from polygons", "patchflow:samplefromvector",
             [("INPUT", str(data / POLYGONS)), ("FIELD", "label"), ("RASTER", image),
              ("STRATEGY", "1"), ("PATCH_SIZE", size), ("OUTPUT", str(samples))],
             summarize_samples, [samples]),
        Step("split", "Split into training / validation / test on a grid", "patchflow:gridsplit",
             [("INPUT", image), ("SAMPLES", str(samples)), ("CLASS_FIELD", "class"), ("PATCH_SIZE", size),
              ("BLOCK_SIZE", str(SPLIT_BLOCK)), ("SEED", str(SPLIT_SEED)),
              *((name.upper(), str(share)) for name, share in SPLIT.items()),
              *((f"OUTPUT_{name.upper()}", str(path)) for name, path in sets.items())],
             summarize_split, list(sets.values())),
    ]
    for name, points in sets.items():
        manifest = patches / f"{name}.json"
        steps.append(Step(
            f"patches-{name}", f"Extract patches ({SETS[name]})", "patchflow:extractpatches",
            [("INPUT", str(points)), ("SOURCE1", image), ("PATCH_SIZE1", size), ("CLASS_FIELD", "class"),
             ("OUTPUT", str(manifest))],
            summarize_patches(name), [manifest]))
    steps += learning_steps(image, sets["test"], {name: patches / f"{name}.json" for name in SETS},
                            data / INDEPENDENT, out)
    # Next: super-resolution: append its Steps here.
    return steps


def set_size(manifest: Path, what: str) -> str:
    return f"{json.loads(manifest.read_text(encoding='utf-8')).get('n_patches')} {what} patches"


CLASS_PIXELS = re.compile(r"^(\d+) (.+): (\d+) px\b")  # the engine's per-class log line: "2 forest: 73209 px"


def map_class_counts(log: dict[str, list[str]], card: Path) -> list[ClassCount]:
    """Pixels per class of a class map, from the run's log; colours from the model card."""
    try:
        colors = {int(c["id"]): c.get("color", "") for c in json.loads(card.read_text(encoding="utf-8"))["classes"]}
    except (OSError, ValueError, KeyError, TypeError):
        colors = {}
    counts = []
    for line in log.get("info", []):
        match = CLASS_PIXELS.match(line)
        if match:
            class_id = int(match[1])
            counts.append(ClassCount(class_id, match[2], colors.get(class_id, ""), int(match[3])))
    return counts


@dataclass
class MapCase:
    """One class map the demo makes and assesses twice: at the grid split's test points and at the
    independent points."""

    key: str  # "cnn", "rf-pixels", "rf-deep"
    name: str  # "CNN map"
    path: Path


def assessment_steps(case: MapCase, test_points: Path, independent: Path, out: Path) -> list[Step]:
    """Assess ``case``'s map at the test points (class ids) and at the independent points (class names)."""
    steps = []
    for where, points, field_name, what in (
            ("test", test_points, "class", "test points (grid split)"),
            ("independent", independent, INDEPENDENT_FIELD, "independent points")):
        html_path = out / "map" / f"{case.key}_{where}_accuracy.html"
        csv_path = html_path.with_suffix(".csv")

        def summarize(step: Step, run: Run, runs: dict[str, Run], html_path: Path = html_path,
                      what: str = what, where: str = where) -> Summary:
            r = run.results
            closing = []
            if case.key == "cnn":
                closing = [(f"CNN map kappa ({where})", f"{r['KAPPA']:.3f} (overall accuracy {r['OA']:.3f} at "
                                                        f"{r.get('N')} {what})", None)]
            return Summary(
                facts=[("points", str(r.get("N"))), ("OA", f"{r['OA']:.3f}"), ("kappa", f"{r['KAPPA']:.3f}"),
                       ("macro F1", f"{r['MACRO_F1']:.3f}")],
                outputs=[("accuracy report", html_path), ("scores", html_path.with_suffix(".csv"))],
                scores=[Score(f"{case.name} at the {what}", r["OA"], r["KAPPA"], f"{r.get('N')} {what}",
                              html_path)],
                key_outputs=[(f"{case.name} accuracy ({where})", html_path)] if case.key == "cnn" else [],
                closing=closing,
            )
        steps.append(Step(
            f"assess-{case.key}-{where}", f"Assess the {case.name} at the {what}", "patchflow:assessaccuracy",
            [("INPUT", str(case.path)), ("REFERENCE", str(points)), ("CLASS_FIELD", field_name),
             ("OUTPUT_HTML", str(html_path)), ("OUTPUT_CSV", str(csv_path))],
            summarize, [html_path, csv_path]))
    return steps


def learning_steps(image: str, test_points: Path, manifests: dict[str, Path], independent: Path,
                   out: Path) -> list[Step]:
    """Train the patch CNN (validation set: monitored; test set: scored once at the end), apply it to
    the whole scene; then the baselines: a per-pixel and a deep-features Random Forest, each mapping
    the scene. Every map is assessed at the test points and at the independent points, and the
    maps are compared at the independent points (McNemar, bootstrap intervals)."""
    model = out / "model"
    train, valid, test = manifests["train"], manifests["valid"], manifests["test"]
    cases = [MapCase("cnn", "CNN map", out / "map" / "cnn_map.tif"),
             MapCase("rf-pixels", "per-pixel RF map", out / "map" / "rf_pixels_map.tif"),
             MapCase("rf-context", "contextual RF map", out / "map" / "rf_context_map.tif"),
             MapCase("rf-deep", "deep-features RF map", out / "map" / "rf_deep_map.tif")]
    classifiers = {"rf-pixels": out / "classifiers" / "rf_pixels.skops",
                   "rf-context": out / "classifiers" / "rf_context.skops",
                   "rf-deep": out / "classifiers" / "rf_deep.skops"}

    def summarize_training(step: Step, run: Run, runs: dict[str, Run]) -> Summary:
        r = run.results
        report = Path(r["REPORT"])
        return Summary(
            facts=[("epochs", str(r.get("EPOCHS_RUN"))), ("weights saved from epoch", str(r.get("SAVED_EPOCH"))),
                   ("validation OA", f"{r['OA']:.3f}"), ("kappa", f"{r['KAPPA']:.3f}"),
                   ("test OA", f"{r['TEST_OA']:.3f}"), ("test kappa", f"{r['TEST_KAPPA']:.3f}")],
            outputs=[("training report", report), ("model card", Path(r["CARD"])),
                     ("SavedModel", model / "saved_model.pb")],
            scores=[Score("Patch CNN (training report, validation set)", r["OA"], r["KAPPA"],
                          set_size(valid, "validation"), report),
                    Score("Patch CNN (training report, test set)", r["TEST_OA"], r["TEST_KAPPA"],
                          set_size(test, "test"), report)],
            key_outputs=[("model report", report)],
            closing=[("training report", shown(report), report)],
        )

    def summarize_map(case: MapCase, card: Path) -> Callable[[Step, Run, dict[str, Run]], Summary]:
        def summarize(step: Step, run: Run, runs: dict[str, Run]) -> Summary:
            r = run.results
            style = Path(r["STYLE"]) if r.get("STYLE") else case.path.with_suffix(".qml")
            facts = [("output", f"{r.get('WIDTH')} x {r.get('HEIGHT')} px")] if r.get("WIDTH") else \
                [("pixels classified", str(r.get("COUNT")))]
            return Summary(
                facts=facts,
                classes={"pixels": map_class_counts(run.log, card)} if case.key == "cnn" else {},
                outputs=[(case.name, case.path)],
                styled=sidecars(case.path),
                key_outputs=[(case.name, case.path)],
                closing=[(f"styled {case.name}", f"{shown(case.path)} + {style.name} (QGIS applies the .qml when "
                                                 "it opens the layer)", case.path)] if case.key == "cnn" else [],
            )
        return summarize

    def summarize_classifier(label: str) -> Callable[[Step, Run, dict[str, Run]], Summary]:
        def summarize(step: Step, run: Run, runs: dict[str, Run]) -> Summary:
            r = run.results
            scores = Path(r["VALIDATION_CSV"])
            return Summary(
                facts=[("training samples", str(r.get("COUNT"))), ("features per sample", str(r.get("N_FEATURES"))),
                       ("validation OA", f"{r['VALID_OA']:.3f}"), ("kappa", f"{r['VALID_KAPPA']:.3f}"),
                       ("test OA", f"{r['TEST_OA']:.3f}"), ("test kappa", f"{r['TEST_KAPPA']:.3f}")],
                outputs=[("classifier", Path(r["OUTPUT"])), ("description", Path(r["DESCRIPTION"])),
                         ("validation scores", scores)],
                scores=[Score(f"{label} (test set)", r["TEST_OA"], r["TEST_KAPPA"], set_size(test, "test"),
                              scores)],
            )
        return summarize

    def summarize_comparison(step: Step, run: Run, runs: dict[str, Run]) -> Summary:
        r = run.results
        text = Path(r["OUTPUT_HTML"]) if r.get("OUTPUT_HTML") else comparison_html
        verdicts = [line for line in run.log.get("info", []) if "McNemar" in line]
        best = (f"{r.get('BEST')} (kappa {r['BEST_KAPPA']:.3f}, 95 % interval {r['BEST_KAPPA_LOW']:.3f} to "
                f"{r['BEST_KAPPA_HIGH']:.3f})")
        return Summary(
            facts=[("best map at the independent points", best)],
            outputs=[("comparison", text), ("comparison (CSV)", comparison_csv)],
            notes=verdicts,
            key_outputs=[("map comparison", text)],
            closing=[("maps compared", shown(text), text),
                     ("best map", f"{best}: {r.get('SIGNIFICANCE') or 'no significance test (no pairs)'}", None)],
        )

    datasets = [("DATASET", str(train)), ("VALID", str(valid)), ("TEST", str(test))]
    comparison_html = out / "map" / "comparison_independent.html"
    comparison_csv = comparison_html.with_suffix(".csv")
    steps = [
        Step("train", "Train the patch CNN", "patchflow:trainmodel",
             [("TRAIN", str(train)), ("VALID", str(valid)), ("TEST", str(test)), ("ARCHITECTURE", "0"),
              ("EPOCHS", str(EPOCHS)), ("BATCH_SIZE", "32"), ("AUGMENT", "true"), ("CLASS_WEIGHTS", "true"),
              ("SEED", "0"), ("OVERWRITE", "true"), ("OUTPUT", str(model))],
             summarize_training, [model / "saved_model.pb", model / "report.html"]),
        Step("apply", "Apply the CNN to the whole scene", "patchflow:applymodel",
             [("MODEL", str(model / "saved_model.pb")), ("SOURCE1", image), ("OUTPUT", str(cases[0].path))],
             summarize_map(cases[0], model / "patchflow_card.json"),
             [cases[0].path, cases[0].path.with_suffix(".qml")]),
        *assessment_steps(cases[0], test_points, independent, out),
        Step("rf-pixels", "Per-pixel Random Forest (baseline)", "patchflow:trainclassifier",
             [*datasets, ("SEED", "0"), ("OUTPUT", str(classifiers["rf-pixels"]))],
             summarize_classifier("Per-pixel Random Forest (5 band values)"), [classifiers["rf-pixels"]]),
        Step("rf-context", "Random Forest with spatial context (baseline)", "patchflow:trainclassifier",
             [*datasets, ("FEATURES", "1"), ("NEIGHBOURHOOD", "3"), ("SEED", "0"),
              ("OUTPUT", str(classifiers["rf-context"]))],
             summarize_classifier("Contextual Random Forest (5 bands + their 3 x 3 mean and std)"),
             [classifiers["rf-context"]]),
        Step("rf-deep", "Random Forest on the CNN's deep features", "patchflow:trainclassifier",
             [*datasets, ("MODEL", str(model / "saved_model.pb")), ("SEED", "0"),
              ("OUTPUT", str(classifiers["rf-deep"]))],
             summarize_classifier("Random Forest on the CNN's deep features"), [classifiers["rf-deep"]]),
    ]
    for case in cases[1:]:
        steps.append(Step(
            f"classify-{case.key}", f"Classify the scene ({case.name})", "patchflow:classify",
            [("INPUT", image), ("CLASSIFIER", str(classifiers[case.key])), ("OUTPUT", str(case.path))],
            summarize_map(case, classifiers[case.key]), [case.path, case.path.with_suffix(".qml")]))
        steps += assessment_steps(case, test_points, independent, out)
    steps.append(Step(
        "compare", "Compare the maps at the independent points", "patchflow:compareaccuracy",
        [*(("REPORTS", str(out / "map" / f"{case.key}_independent_accuracy.csv")) for case in cases),
         ("NAMES", ";".join(case.name for case in cases)), ("OUTPUT_CSV", str(comparison_csv)),
         ("OUTPUT_HTML", str(comparison_html))],
        summarize_comparison, [comparison_csv, comparison_html]))
    return steps


# ---- running ----------------------------------------------------------------------------------


def command_of(step: Step) -> list[str]:
    return ["bash", str(QGIS_PROCESS.relative_to(ROOT)), "--json", "run", step.algorithm, "--",
            *(f"{key}={value}" for key, value in step.parameters)]


def tail(text: str, lines: int = TAIL_LINES) -> str:
    kept = [line for line in text.splitlines() if line.strip() and not any(n in line for n in NOISE)]
    return "\n".join(kept[-lines:]) or "(nothing)"


def parse_json_answer(stdout: str) -> dict[str, Any]:
    """qgis_process --json prints one JSON object; skip anything a library printed before it."""
    start = stdout.find("{")
    if start < 0:
        raise ValueError("no JSON object on standard output")
    return json.loads(stdout[start:])


def run_step(step: Step, logs: Path) -> Run:
    command = command_of(step)
    started = time.monotonic()
    try:
        done = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, encoding="utf-8",
                              errors="replace", timeout=STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise StepFailed(step, command, time.monotonic() - started,
                         f"no answer within {STEP_TIMEOUT_S} s", tail(err)) from None
    seconds = time.monotonic() - started
    (logs / f"{step.key}.stderr.txt").write_text(done.stderr, encoding="utf-8")
    if done.returncode != 0:
        raise StepFailed(step, command, seconds, f"exit status {done.returncode}",
                         tail(done.stderr + "\n" + done.stdout))
    try:
        answer = parse_json_answer(done.stdout)
    except ValueError as exc:
        raise StepFailed(step, command, seconds, f"unreadable answer ({exc})",
                         tail(done.stdout + done.stderr)) from None
    (logs / f"{step.key}.json").write_text(strict_dumps(answer, indent=2) + "\n", encoding="utf-8")
    missing = [str(p) for p in step.outputs if not p.exists()]
    if missing:
        raise StepFailed(step, command, seconds, f"finished but did not write {', '.join(missing)}",
                         tail(done.stderr))
    return Run(step, command, seconds, answer.get("results", {}), answer.get("log", {}))


def prepare_output(out: Path) -> None:
    if out.exists():
        if out != DEFAULT_OUTPUT and not (out / MARKER).exists() and any(out.iterdir()):
            sys.exit(f"demo: {out} exists and was not made by the demo; choose another --output.")
        shutil.rmtree(out)
    (out / "logs").mkdir(parents=True)
    (out / "patches").mkdir()
    (out / MARKER).write_text("made by scripts/demo.py; deleted on the next run\n", encoding="utf-8")


def preflight(data: Path) -> None:
    needed = [data / IMAGE, data / POLYGONS, data / INDEPENDENT]
    absent = [str(p) for p in needed if not p.exists()]
    if absent:
        sys.exit(f"demo: demo data missing ({', '.join(absent)}). Run 'make data' (or 'make demo').")
    if shutil.which("qgis_process.bin") is None and shutil.which("qgis_process") is None:
        sys.exit("demo: qgis_process not found. Run 'make setup' (Debian packages qgis, python3-qgis).")


# ---- reporting --------------------------------------------------------------------------------


def shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def class_rows(columns: dict[str, list[ClassCount]]) -> list[tuple[ClassCount, list[int]]]:
    """One row per class id across columns: (the class, its count in each column)."""
    first: dict[int, ClassCount] = {}
    for counts in columns.values():
        for c in counts:
            first.setdefault(c.id, c)
    rows = []
    for class_id in sorted(first):
        per_column = [next((c.count for c in counts if c.id == class_id), 0) for counts in columns.values()]
        rows.append((first[class_id], per_column))
    return rows


def text_step(index: int, total: int, run: Run) -> str:
    s = run.summary
    lines = [f"[{index}/{total}] {run.step.title} ({run.step.algorithm}): {run.seconds:.1f} s",
             f"      $ {shlex.join(run.command)}"]
    if s.facts:
        lines.append("      " + ", ".join(f"{k} {v}" for k, v in s.facts))
    if s.dropped:
        lines.append("      dropped: " + ", ".join(f"{n} ({why})" for why, n in s.dropped.items()))
    if s.classes:
        columns = list(s.classes)
        lines.append("      " + f"{'class':<18}" + "".join(f"{c:>9}" for c in columns))
        for info, counts in class_rows(s.classes):
            lines.append("      " + f"{f'{info.id} {info.name}':<18}" + "".join(f"{n:>9}" for n in counts))
    for warning in run.log.get("warning", []):
        lines.append(f"      warning: {warning}")
    for note in s.notes:
        lines.append(f"      note: {note}")
    return "\n".join(lines)


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 64em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ccc; }
code, pre { font-family: ui-monospace, monospace; font-size: 0.85em; }
pre { background: #f5f5f5; padding: 0.7em; white-space: pre-wrap; word-break: break-all; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.4em; vertical-align: middle;
          border: 1px solid #888; }
.failed { color: #b00; } .muted { color: #666; }
"""


def html_step(index: int, run: Run, out: Path) -> str:
    s, e = run.summary, html.escape
    parts = [(f"<h2>{index}. {e(run.step.title)} <span class='muted'>({e(run.step.algorithm)}, "
              f"{run.seconds:.1f} s)</span></h2>"),
             f"<pre>{e(shlex.join(run.command))}</pre>"]
    if s.facts:
        parts.append("<p>" + "; ".join(f"{e(k)}: <b>{e(v)}</b>" for k, v in s.facts) + "</p>")
    if s.dropped:
        parts.append("<p>Dropped: " + "; ".join(f"<b>{n}</b> ({e(why)})" for why, n in s.dropped.items()) + "</p>")
    if s.classes:
        head = "".join(f"<th>{e(c)}</th>" for c in s.classes)
        rows = "".join(
            f"<tr><td><span class='swatch' style='background:{e(info.color or '#fff')}'></span>"
            f"{info.id} {e(info.name)}</td>" + "".join(f"<td>{n}</td>" for n in counts) + "</tr>"
            for info, counts in class_rows(s.classes))
        totals = "".join(f"<td><b>{sum(c.count for c in counts)}</b></td>" for counts in s.classes.values())
        parts.append(f"<table><tr><th>class</th>{head}</tr>{rows}<tr><td><b>total</b></td>{totals}</tr></table>")
    for warning in run.log.get("warning", []):
        parts.append(f"<p>Warning: {e(warning)}</p>")
    for note in s.notes:
        parts.append(f"<p>Note: {e(note)}</p>")
    styles = dict(s.styled)
    links = []
    for what, path in s.outputs:
        link = f"<li>{e(what)}: <a href='{e(os.path.relpath(path, out))}'>{e(shown(path))}</a>"
        if path in styles:
            link += (f", styled by <a href='{e(os.path.relpath(styles[path], out))}'>{e(styles[path].name)}</a> "
                     "(QGIS loads it as the layer's default style)")
        links.append(link + "</li>")
    log_file = out / "logs" / f"{run.step.key}.json"
    links.append(f"<li>qgis_process answer: <a href='{e(os.path.relpath(log_file, out))}'>"
                 f"{e(shown(log_file))}</a></li>")
    parts.append("<ul>" + "".join(links) + "</ul>")
    info = run.log.get("info", [])
    if info:
        parts.append("<details><summary>log</summary><pre>" + e("\n".join(info)) + "</pre></details>")
    return "\n".join(parts)


def all_scores(runs: list[Run]) -> list[Score]:
    return [score for run in runs for score in run.summary.scores]


def text_comparison(runs: list[Run]) -> str:
    scores = all_scores(runs)
    if not scores:
        return ""
    width = max(len(s.what) for s in scores)
    lines = [f"  {'':<{width}}     OA  kappa  evaluated on"]
    lines += [f"  {s.what:<{width}}  {s.oa:.3f}  {s.kappa:.3f}  {s.evaluated_on}" for s in scores]
    return "\n".join(lines)


def html_comparison(runs: list[Run], out: Path) -> str:
    e = html.escape
    scores = all_scores(runs)
    key_outputs = [pair for run in runs for pair in run.summary.key_outputs]
    if not scores and not key_outputs:
        return ""
    parts = ["<h2>Results</h2>"]
    if scores:
        rows = "".join(
            f"<tr><td>{e(s.what)}</td><td>{s.oa:.3f}</td><td>{s.kappa:.3f}</td><td>{e(s.evaluated_on)}</td>"
            f"<td><a href='{e(os.path.relpath(s.evidence, out))}'>{e(s.evidence.name)}</a></td></tr>"
            for s in scores)
        parts.append("<table><tr><th>model / map</th><th>overall accuracy</th><th>kappa</th><th>evaluated on</th>"
                     f"<th>details</th></tr>{rows}</table>")
    styles = dict(pair for run in runs for pair in run.summary.styled)
    links = []
    for what, path in key_outputs:
        link = f"<li>{e(what)}: <a href='{e(os.path.relpath(path, out))}'>{e(shown(path))}</a>"
        if path in styles:
            link += f" + <a href='{e(os.path.relpath(styles[path], out))}'>{e(styles[path].name)}</a>"
        links.append(link + "</li>")
    if links:
        parts.append("<ul>" + "".join(links) + "</ul>")
    return "\n".join(parts)


def write_report(out: Path, data: Path, runs: list[Run], failure: StepFailed | None, total_s: float) -> Path:
    e = html.escape
    status = (f"<p class='failed'>Failed at {e(failure.step.title)}: {e(failure.reason)}</p>" if failure
              else f"<p>All {len(runs)} steps succeeded in {total_s:.1f} s.</p>")
    body = [(f"<h1>PatchFlow demo</h1><p class='muted'>{e(time.strftime('%Y-%m-%d %H:%M:%S'))}; data: "
             f"{e(shown(data))}; every step is one headless <code>qgis_process</code> run "
             f"(<code>scripts/qgis_process.sh</code>).</p>"), status, html_comparison(runs, out),
            f"<p>{e(WHY_TWO_FIGURES)}</p>" if all_scores(runs) else ""]
    body += [html_step(i, run, out) for i, run in enumerate(runs, start=1)]
    if failure:
        body.append(f"<h2 class='failed'>{len(runs) + 1}. {e(failure.step.title)}: failed after "
                    f"{failure.seconds:.1f} s</h2><pre>{e(shlex.join(failure.command))}</pre>"
                    f"<p>{e(failure.reason)}</p><pre>{e(failure.tail)}</pre>")
    body.append("<p class='muted'>Next in the chain (a later release): super-resolution.</p>")
    report = out / "report.html"
    report.write_text("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>PatchFlow demo</title>"
                      f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n",
                      encoding="utf-8")
    summary = {
        "ok": failure is None, "seconds": round(total_s, 2),
        "scores": [{"what": s.what, "oa": s.oa, "kappa": s.kappa, "evaluated_on": s.evaluated_on,
                    "details": str(s.evidence)} for s in all_scores(runs)],
        "steps": [{"key": r.step.key, "algorithm": r.step.algorithm, "command": r.command,
                   "seconds": round(r.seconds, 2), "results": r.results,
                   "classes": {col: [c.__dict__ for c in cs] for col, cs in r.summary.classes.items()},
                   "dropped": r.summary.dropped} for r in runs],
    }
    (out / "summary.json").write_text(strict_dumps(summary, indent=2) + "\n", encoding="utf-8")
    return report


# ---- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of the NC demo data (make data)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="recreated on every run")
    args = parser.parse_args(argv)
    data, out = args.data.resolve(), args.output.resolve()
    preflight(data)
    prepare_output(out)
    steps = build_steps(data, out)
    runs: dict[str, Run] = {}
    failure: StepFailed | None = None
    started = time.monotonic()
    print(f"PatchFlow demo: {len(steps)} qgis_process runs on {shown(data)}, outputs in {shown(out)}/", flush=True)
    for index, step in enumerate(steps, start=1):
        try:
            run = run_step(step, out / "logs")
            run.summary = step.summarize(step, run, runs)
        except StepFailed as exc:
            failure = exc
            break
        runs[step.key] = run
        print(text_step(index, len(steps), run), flush=True)
    total_s = time.monotonic() - started
    report = write_report(out, data, list(runs.values()), failure, total_s)
    if failure is not None:
        print(f"\ndemo: step {len(runs) + 1}/{len(steps)} '{failure.step.title}' failed ({failure.reason}) "
              f"after {failure.seconds:.1f} s.\ncommand: {shlex.join(failure.command)}\n"
              f"its last lines:\n{failure.tail}\n\npartial report: {shown(report)}", file=sys.stderr)
        return 1
    print_done(list(runs.values()), out, report, total_s)
    return 0


def print_done(runs: list[Run], out: Path, report: Path, total_s: float) -> None:
    """The comparison and where everything is; the steps' closing lines (the CNN map, its reports,
    its kappa) come last."""
    closing = [line for run in runs for line in run.summary.closing]
    said = {path for _, _, path in closing if path is not None}
    print(f"\nDone: {len(runs)} steps in {total_s:.1f} s.")
    comparison = text_comparison(runs)
    if comparison:
        print(comparison)
        print("\n".join("  " + line for line in textwrap.wrap(WHY_TWO_FIGURES, 100)))
    print(f"  {'outputs:':<17} {shown(out)}/")
    for layer, qml in (pair for run in runs for pair in run.summary.styled):
        if layer not in said:
            print(f"  {'styled layer:':<17} {shown(layer)} + {qml.name} (QGIS applies the .qml on opening the layer)")
    for run in runs:
        for what, path in run.summary.outputs:
            if what == "manifest":
                print(f"  {'manifest:':<17} {shown(path)}")
        for what, path in run.summary.key_outputs:
            if path not in said:
                print(f"  {what + ':':<17} {shown(path)}")
    print(f"  {'demo report:':<17} {shown(report)}")
    if closing:
        width = max(len(label) for label, _, _ in closing) + 1
        print()
        for label, text, _ in closing:
            print(f"{label + ':':<{width}} {text}")


if __name__ == "__main__":
    sys.exit(main())
