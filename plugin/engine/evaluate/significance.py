"""Is one map really more accurate than another? Two maps assessed at the same reference samples
(pairs.py) are compared with McNemar's test on the samples one map got right and the other wrong
(exact two-sided binomial test when there are fewer than ``EXACT_BELOW`` such samples, else
chi-square with continuity correction, one degree of freedom), and with percentile bootstrap 95 %
intervals of overall accuracy, kappa and the kappa difference, resampling the samples
(``RESAMPLES`` resamples, seed ``SEED``: the same samples drawn for both maps)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
SEED = 0
LEVEL = 0.05  # significance level, and 1 - the intervals' coverage
EXACT_BELOW = 25  # discordant samples under which McNemar's test is the exact binomial one
CHUNK = 4_000_000  # sample draws held at once


@dataclass(frozen=True)
class McNemar:
    first_only: int  # samples the first map got right and the second wrong
    second_only: int
    p: float
    method: str


def mcnemar(first_correct: np.ndarray, second_correct: np.ndarray) -> McNemar:
    """McNemar's test of two maps' correctness at the same samples (two-sided)."""
    from scipy import stats

    first_correct, second_correct = np.asarray(first_correct, bool), np.asarray(second_correct, bool)
    b = int((first_correct & ~second_correct).sum())
    c = int((~first_correct & second_correct).sum())
    if b + c == 0:
        return McNemar(b, c, 1.0, "no discordant sample")
    if b + c < EXACT_BELOW:
        return McNemar(b, c, float(stats.binomtest(b, b + c, 0.5).pvalue), "exact binomial")
    statistic = max(abs(b - c) - 1, 0) ** 2 / (b + c)
    return McNemar(b, c, float(stats.chi2.sf(statistic, 1)), "chi-square, continuity-corrected")


def scores_of_matrices(matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Overall accuracy and Cohen's kappa of confusion matrices (..., K, K), as metrics.Scores
    computes them (kappa 1 when chance agreement is 1)."""
    matrices = np.asarray(matrices, dtype=np.float64)
    n = matrices.sum(axis=(-2, -1))
    safe = np.where(n > 0, n, 1.0)
    observed = np.trace(matrices, axis1=-2, axis2=-1) / safe
    expected = (matrices.sum(axis=-1) * matrices.sum(axis=-2)).sum(axis=-1) / safe**2
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(expected >= 1.0, 1.0, (observed - expected) / (1.0 - expected))
    return np.where(n > 0, observed, 0.0), np.where(n > 0, kappa, 0.0)


def _codes(reference: np.ndarray, predicted: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    ids = np.unique(np.concatenate([reference, *predicted]))
    k = len(ids)
    ref = np.searchsorted(ids, reference)
    return [ref * k + np.searchsorted(ids, p) for p in predicted], k


def bootstrap(reference: np.ndarray, predicted: list[np.ndarray], resamples: int = RESAMPLES,
              seed: int = SEED, done: Callable[[int], None] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(OA, kappa) of each map on ``resamples`` bootstrap resamples of the samples: resample r
    draws ``rng.integers(0, n, n)`` (rng = numpy's default_rng(seed), one call per resample),
    the same samples for every map. ``done`` is told the resamples made so far after each chunk."""
    reference = np.asarray(reference, np.int64)
    n = len(reference)
    codes, k = _codes(reference, [np.asarray(p, np.int64) for p in predicted])
    rng = np.random.default_rng(seed)
    results = [(np.empty(resamples), np.empty(resamples)) for _ in predicted]
    step = max(1, CHUNK // max(1, n))
    for start in range(0, resamples, step):
        count = min(step, resamples - start)
        drawn = np.stack([rng.integers(0, n, n) for _ in range(count)]) if n else np.empty((count, 0), np.int64)
        offsets = (np.arange(count) * k * k)[:, None]
        for code, (oa, kappa) in zip(codes, results):
            cells = np.bincount((code[drawn] + offsets).ravel(), minlength=count * k * k)
            oa[start:start + count], kappa[start:start + count] = scores_of_matrices(cells.reshape(count, k, k))
        if done is not None:
            done(start + count)
    return results


def interval(values: np.ndarray) -> tuple[float, float]:
    """The percentile bootstrap interval of coverage 1 - LEVEL."""
    low, high = np.percentile(values, [100 * LEVEL / 2, 100 * (1 - LEVEL / 2)])
    return float(low), float(high)


def map_intervals(reference: np.ndarray, predicted: np.ndarray, resamples: int = RESAMPLES,
                  seed: int = SEED, done: Callable[[int], None] | None = None) -> dict[str, float]:
    """One map's OA and kappa at its samples, with their bootstrap 95 % intervals."""
    (oa, kappa), = bootstrap(reference, [predicted], resamples, seed, done)
    (point_oa,), (point_kappa,) = scores_of_matrices(_matrix(reference, predicted)[None])
    (oa_low, oa_high), (kappa_low, kappa_high) = interval(oa), interval(kappa)
    return {"OA": float(point_oa), "OA low": oa_low, "OA high": oa_high, "kappa": float(point_kappa),
            "kappa low": kappa_low, "kappa high": kappa_high}


def _matrix(reference: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    (code,), k = _codes(np.asarray(reference, np.int64), [np.asarray(predicted, np.int64)])
    return np.bincount(code, minlength=k * k).reshape(k, k)


@dataclass(frozen=True)
class PairTest:
    """Map ``second`` against map ``first`` at the samples both scored."""

    first: str
    second: str
    n: int
    oa: tuple[float, float]
    kappa: tuple[float, float]
    difference_interval: tuple[float, float]  # of kappa(second) - kappa(first)
    test: McNemar

    @property
    def difference(self) -> float:
        return self.kappa[1] - self.kappa[0]

    @property
    def significant(self) -> bool:
        return self.test.p < LEVEL

    def sentence(self) -> str:
        """In words: which kappa is higher, by how much, and whether McNemar's test finds the maps'
        accuracies different at LEVEL."""
        swap = self.difference < 0  # told as higher - lower
        higher, lower = (self.first, self.second) if swap else (self.second, self.first)
        (k_low, k_high), (oa_low, oa_high) = (self.kappa, self.oa) if not swap else (self.kappa[::-1], self.oa[::-1])
        low, high = (-self.difference_interval[1], -self.difference_interval[0]) if swap else self.difference_interval
        verdict = "significant" if self.significant else "not significant"
        return (f"{higher}'s kappa is {abs(self.difference):.3f} higher than {lower}'s ({k_high:.3f} against "
                f"{k_low:.3f}, 95 % interval of the difference {low:+.3f} to {high:+.3f}; OA {oa_high:.3f} against "
                f"{oa_low:.3f}) at the {self.n} samples both scored; McNemar p = {self.test.p:.3g} "
                f"({self.test.method}; {self.test.first_only} samples right only in {self.first}, "
                f"{self.test.second_only} only in {self.second}): the difference is {verdict} at "
                f"{100 * LEVEL:g} %{self._caveat(low, high)}.")

    def _caveat(self, low: float, high: float) -> str:
        """When McNemar's test (on correctness: OA) and the kappa interval disagree, say so."""
        if self.significant and low <= 0 <= high:
            return (" (McNemar's test compares the samples each map got right, i.e. their OA; the kappa difference's "
                    "95 % interval includes 0)")
        if not self.significant and not low <= 0 <= high:
            return (" (McNemar's test compares the samples each map got right, i.e. their OA; the kappa difference's "
                    "95 % interval excludes 0)")
        return ""


def compare_maps(names: tuple[str, str], reference: np.ndarray, first: np.ndarray, second: np.ndarray,
                 resamples: int = RESAMPLES, seed: int = SEED, done: Callable[[int], None] | None = None) -> PairTest:
    """McNemar's test and the bootstrap interval of the kappa difference, two maps at the same samples."""
    (_, kappa_a), (_, kappa_b) = bootstrap(reference, [first, second], resamples, seed, done)
    codes, k = _codes(np.asarray(reference, np.int64), [np.asarray(first, np.int64), np.asarray(second, np.int64)])
    (oa_a, oa_b), (point_a, point_b) = scores_of_matrices(
        np.stack([np.bincount(code, minlength=k * k).reshape(k, k) for code in codes]))
    return PairTest(names[0], names[1], int(len(reference)), (float(oa_a), float(oa_b)),
                    (float(point_a), float(point_b)), interval(kappa_b - kappa_a),
                    mcnemar(np.asarray(first) == reference, np.asarray(second) == reference))
