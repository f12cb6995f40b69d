"""The versions' maps scored on the held-out part at the HR label grid: each map is read at the centre of
every labelled held-out HR pixel (a coarser map: the pixel holding that centre); pixels that some map
leaves unclassified (nodata, outside it) are left out of every score, so all versions are scored at the
same pixels. Per version: kappa, OA and macro F1 of each repeat, their mean and sd, and percentile
bootstrap 95 % intervals of the mean kappa and OA over the repeats (evaluate/significance.py: the same
resampled pixels for every map). SR against bicubic and against HR: the interval of the difference of
mean kappas, McNemar's test on the pooled predictions of all repeats (and on each repeat), and a paired
t-test of the repeats' kappas."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from osgeo import gdal

from ..evaluate.metrics import Scores
from ..evaluate.significance import LEVEL, bootstrap, interval, mcnemar
from ..geodata.classes import ClassInfo
from ..geodata.raster import Grid
from .srscene import Scene

MEASURES = (("kappa", "kappa"), ("OA", "overall_accuracy"), ("macro F1", "macro_f1"))
PAIRS = (("sr", "bicubic"), ("sr", "hr"), ("bicubic", "lr"))
MAPS_AT = 0.2  # a mean kappa below this is no map ("slight" agreement, Landis and Koch 1977)


def read_at(path: str, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A class map's value at the points (the pixel holding each), and whether it is a class there."""
    ds = gdal.Open(path)
    grid = Grid.of(ds, "map")
    band = ds.GetRasterBand(1)
    cols = np.floor((xs - grid.x0) / grid.dx).astype(np.int64)
    rows = np.floor((ys - grid.y0) / grid.dy).astype(np.int64)
    inside = (cols >= 0) & (cols < grid.width) & (rows >= 0) & (rows < grid.height)
    values = np.zeros(len(xs), np.int64)
    array = band.ReadAsArray()
    values[inside] = array[rows[inside], cols[inside]]
    valid = inside.copy()
    nodata = band.GetNoDataValue()
    if nodata is not None:
        valid &= values != nodata
    return values, valid


@dataclass
class Assessed:
    """The held-out pixels scored (their classes) and each version's predictions there, per repeat."""

    reference: np.ndarray
    predicted: dict[str, list[np.ndarray]]
    classes: list[ClassInfo]
    labelled: int  # labelled held-out pixels
    xs: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    ys: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))

    @property
    def pixels(self) -> int:
        return int(len(self.reference))


def assess(scene: Scene, maps: dict[str, list[str]]) -> Assessed:
    rows, cols, reference = scene.held_out()
    xs, ys = scene.grid.pixel_centres(cols, rows)
    read = {key: [read_at(path, xs, ys) for path in paths] for key, paths in maps.items()}
    common = np.ones(len(reference), bool)
    for results in read.values():
        for _, valid in results:
            common &= valid
    predicted = {key: [values[common] for values, _ in results] for key, results in read.items()}
    return Assessed(reference[common], predicted, scene.classes, int(len(reference)), xs[common], ys[common])


def sd(values: list[float]) -> float | None:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def version_scores(assessed: Assessed, key: str) -> dict:
    """Each repeat's kappa, OA and macro F1 on the held-out pixels, their mean and sd."""
    scores = [Scores.from_pairs(assessed.reference, p, assessed.classes) for p in assessed.predicted[key]]
    out: dict = {}
    for name, attribute in MEASURES:
        values = [float(getattr(s, attribute)) for s in scores]
        out[name] = {"repeats": values, "mean": float(np.mean(values)), "sd": sd(values)}
    return out


def bootstrap_means(assessed: Assessed, resamples: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Per version, the mean over the repeats of kappa and OA on each bootstrap resample of the pixels."""
    keys = list(assessed.predicted)
    maps = [p for key in keys for p in assessed.predicted[key]]
    drawn = bootstrap(assessed.reference, maps, resamples, seed)
    out, start = {}, 0
    for key in keys:
        count = len(assessed.predicted[key])
        part = drawn[start:start + count]
        start += count
        out[key] = {"OA": np.mean([oa for oa, _ in part], axis=0), "kappa": np.mean([k for _, k in part], axis=0)}
    return out


def intervals(means: dict[str, dict[str, np.ndarray]], key: str) -> dict[str, list[float]]:
    return {name: list(interval(means[key][name])) for name in ("kappa", "OA")}


def paired_t(first: list[float], second: list[float]) -> float | None:
    """Two-sided paired t-test of the repeats' kappas (None under 2 repeats, or when every difference is the same)."""
    from scipy import stats

    differences = np.asarray(second) - np.asarray(first)
    if len(differences) < 2 or np.allclose(differences, differences[0]):
        return None
    p = float(stats.ttest_rel(second, first).pvalue)
    return p if math.isfinite(p) else None


def pair_test(assessed: Assessed, scores: dict[str, dict], means: dict, first: str, second: str) -> dict:
    """``first`` (SR) against ``second``: the difference of mean kappas with its bootstrap interval,
    McNemar's test on the pooled predictions of the repeats and on each, the paired t-test of the kappas."""
    reference = assessed.reference
    a, b = assessed.predicted[first], assessed.predicted[second]
    pooled = mcnemar(np.concatenate([p == reference for p in a]), np.concatenate([p == reference for p in b]))
    per_repeat = [mcnemar(x == reference, y == reference) for x, y in zip(a, b)]
    difference = scores[first]["kappa"]["mean"] - scores[second]["kappa"]["mean"]
    low, high = interval(means[first]["kappa"] - means[second]["kappa"])
    return {
        "first": first, "second": second, "kappa_difference": float(difference),
        "kappa_difference_interval": [low, high],
        "OA_difference": float(scores[first]["OA"]["mean"] - scores[second]["OA"]["mean"]),
        "mcnemar_p": pooled.p, "mcnemar_method": pooled.method, "right_only_first": pooled.first_only,
        "right_only_second": pooled.second_only, "mcnemar_p_per_repeat": [t.p for t in per_repeat],
        "paired_t_p": paired_t(scores[second]["kappa"]["repeats"], scores[first]["kappa"]["repeats"]),
    }


def p_is(value: float | None) -> str:
    """A p-value as the text after "p": "= 0.000561" (3 significant digits), "< 1e-300" when it underflows
    (never "= 0"), "= n/a" when there is none."""
    if value is None:
        return "= n/a"
    return "< 1e-300" if value < 1e-300 else f"= {value:.3g}"


def answer(classifier: str, test: dict, repeats: int, best_kappa: float | None = None) -> str:
    """ONE sentence answering "does SR help?" from SR against bicubic. It helps (hurts) when the interval
    of the kappa gain over bicubic is above (below) 0, McNemar's test is significant and the repeats
    agree (the paired t-test significant, or no spread to test); "may help (hurt)" when the pixels say so
    but the repeats do not, or there is one repeat only; else there is no evidence that it helps. When no
    version maps the classes (``best_kappa``, the best mean kappa, below MAPS_AT), the sentence says that a
    difference between maps that all fail says nothing about mapping."""
    sentence = _verdict(classifier, test, repeats)
    if best_kappa is not None and best_kappa < MAPS_AT:
        sentence = (sentence[:-1] + f"; but no version maps the classes (the best mean kappa is {best_kappa:.3f}, "
                    f"below {MAPS_AT:.2f}), so this says nothing about mapping with SR.")
    return sentence


def _verdict(classifier: str, test: dict, repeats: int) -> str:
    gain, (low, high), p = test["kappa_difference"], test["kappa_difference_interval"], test["mcnemar_p"]
    paired = test["paired_t_p"]
    word = "against" if gain < 0 else "over"
    figures = (f"{gain:+.3f} kappa {word} bicubic (95 % interval {low:+.3f} to {high:+.3f}, McNemar p {p_is(p)}, "
               f"paired t-test over {repeats} repeats p {p_is(paired)})")
    direction = "helps" if low > 0 and p < LEVEL else "hurts" if high < 0 and p < LEVEL else ""
    if not direction:
        return f"No evidence that SR helps the {classifier}: {figures}."
    if repeats < 2:  # McNemar's pixels are neighbours, not independent: without a second seed, no verdict
        return (f"SR may {direction[:-1]} the {classifier}, but with one repeat how much a seed moves the result is "
                f"unknown (set REPEATS to 3 or more): {figures}.")
    if paired is None or paired < LEVEL:
        return f"SR {direction} the {classifier}: {figures}."
    return (f"SR may {direction[:-1]} the {classifier}, but not consistently across the seeds: {figures}.")
