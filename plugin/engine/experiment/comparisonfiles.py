"""The comparison of a "does super-resolution help?" run, in one folder: comparison.json (strict JSON:
every figure), comparison.csv (a row per version: the means, sds and intervals) and comparison.html (the
answer, the tables, the tests, the SR's image quality and the thumbnails of one zoomed area, embedded)."""

from __future__ import annotations

import os

from ...protocol import strict_dump
from ..report import htmlreport as h
from ..report.tables import write_csv
from .srscores import p_is
from .srversions import KEYS, NAMES, WORDS

COLUMNS = ["version", "image", "pixel size", "repeats", "kappa mean", "kappa sd", "kappa low", "kappa high",
           "OA mean", "OA sd", "OA low", "OA high", "macro F1 mean", "macro F1 sd"]
QUALITY = (("PSNR", "PSNR (dB)"), ("SSIM", "SSIM"), ("SAM", "SAM (degrees)"), ("ERGAS", "ERGAS"))
BASELINES = (("", "SR image"), ("BASELINE_", "bicubic"), ("LANCZOS_", "Lanczos"),
             ("SHARPENED_", "sharpened bicubic"))


def rows(comparison: dict) -> list[dict]:
    out = []
    for key in KEYS:
        v = comparison["versions"][key]
        out.append({"version": NAMES[key], "image": WORDS[key], "pixel size": v["pixel_size"],
                    "repeats": len(v["kappa"]["repeats"]),
                    **{f"{name} {part}": v[name][part] for name in ("kappa", "OA", "macro F1")
                       for part in ("mean", "sd")},
                    **{f"{name} {side}": v["intervals"][name][index] for name in ("kappa", "OA")
                       for index, side in enumerate(("low", "high"))}})
    return out


def write_json(path: str, comparison: dict) -> str:
    with open(path, "w", encoding="utf-8") as stream:
        strict_dump(comparison, stream, indent=2)
    return path


def write_table(path: str, comparison: dict) -> str:
    write_csv(path, rows(comparison), COLUMNS, lambda value: f"{value:.6f}")
    return path


def _test_rows(comparison: dict) -> list[dict]:
    out = []
    for test in comparison["tests"]:
        low, high = test["kappa_difference_interval"]
        out.append({"comparison": f"{NAMES[test['first']]} − {NAMES[test['second']]}",
                    "kappa difference": test["kappa_difference"], "95 % interval": f"{low:+.3f} to {high:+.3f}",
                    "OA difference": test["OA_difference"], "McNemar p (pooled)": test["mcnemar_p"],
                    "right only in first / second": f"{test['right_only_first']} / {test['right_only_second']}",
                    "McNemar p per repeat": ", ".join(p_is(p).removeprefix("= ") for p in test["mcnemar_p_per_repeat"]),
                    "paired t-test p": test["paired_t_p"]})
    return out


def _quality_rows(quality: dict) -> list[dict]:
    return [{"image": label, **{text: quality.get(f"{prefix}{name}") for name, text in QUALITY}}
            for prefix, label in BASELINES]


def _figures(pngs: dict[str, str], title: str) -> h.Html:
    cells = "".join(f"<td>{h.image_tag(pngs[key], f'{title}: {NAMES[key]}')}<br>{h.escape(NAMES[key])}</td>"
                    for key in KEYS if key in pngs)
    return h.Html(f"<table><tr>{cells}</tr></table>")


def write_html(path: str, comparison: dict, images: dict[str, str], maps: dict[str, str]) -> str:
    settings = comparison["settings"]
    legend = " ".join(str(h.swatch(c["color"], c["name"])) for c in comparison["classes"])
    notes = (f"The same {settings['classifier_text']} trained on each version's training part "
             f"({comparison['split']}), seeds 0 to {settings['repeats'] - 1}, and assessed at the "
             f"{comparison['pixels']} labelled held-out HR pixels every map classifies (of "
             f"{comparison['labelled_held_out']}; a coarser map is read at the HR pixels' centres). Intervals: "
             f"percentile bootstrap 95 % of the mean over the repeats ({settings['resamples']} resamples of the "
             "pixels). McNemar's test pools the predictions of every repeat (nearby pixels are not independent: "
             "its p-values are optimistic); the paired t-test compares the repeats' kappas. SR: "
             f"{comparison['sr']['text']}.")
    sections = [
        ("", h.paragraph(comparison["answer"])),
        ("Accuracy on the held-out part", h.table(rows(comparison), COLUMNS)),
        ("Tests", h.table(_test_rows(comparison))),
        ("The SR image's quality on the held-out part", h.table(_quality_rows(comparison["quality"]))
         + h.paragraph(comparison["quality"].get("COMPARISON") or "")),
        ("One zoomed area of the held-out part", _figures(images, "image") + _figures(maps, "map")
         + h.Html(f"<p>{legend}</p>")),
        ("How it was made", h.paragraph(notes)),
    ]
    h.write(path, h.page("Does super-resolution help?", sections))
    return path


def relative(path: str, folder: str) -> str:
    return os.path.relpath(path, folder)
