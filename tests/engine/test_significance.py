"""McNemar's test and the bootstrap intervals of Compare accuracy, checked against a direct
computation (scipy's binomial test, the chi-square statistic by hand, a plain numpy loop with
scikit-learn's scores), and the pairing of two assessments' samples by their coordinates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk

from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.evaluate import significance
from patchflow.plugin.engine.evaluate.pairs import NO_CLASS, Pairs, match, read_pairs, write_pairs


def correctness(right_only_first: int, right_only_second: int, both: int = 30, neither: int = 10):
    first = np.array([True] * right_only_first + [False] * right_only_second + [True] * both + [False] * neither)
    second = np.array([False] * right_only_first + [True] * right_only_second + [True] * both + [False] * neither)
    order = np.random.default_rng(0).permutation(len(first))
    return first[order], second[order]


@pytest.mark.parametrize("b, c", [(3, 9), (0, 6), (12, 12), (1, 0)])
def test_mcnemar_with_few_discordant_samples_is_scipys_exact_binomial_test(b, c):
    test = significance.mcnemar(*correctness(b, c))
    assert (test.first_only, test.second_only) == (b, c)
    assert test.method == "exact binomial"
    assert test.p == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-12)


@pytest.mark.parametrize("b, c", [(40, 20), (20, 40), (13, 12), (100, 61)])
def test_mcnemar_with_many_discordant_samples_is_the_corrected_chi_square(b, c):
    test = significance.mcnemar(*correctness(b, c))
    assert test.method == "chi-square, continuity-corrected"
    statistic = max(abs(b - c) - 1, 0) ** 2 / (b + c)
    assert test.p == pytest.approx(stats.chi2.sf(statistic, df=1), rel=1e-12)
    assert test.p == pytest.approx(2 * stats.norm.sf(np.sqrt(statistic)), rel=1e-9)  # chi-square(1) = z squared


def test_mcnemar_without_discordant_samples_finds_no_difference():
    assert significance.mcnemar(*correctness(0, 0)).p == 1.0


def random_maps(seed: int, n: int):
    rng = np.random.default_rng(seed)
    reference = rng.integers(1, 5, n)
    first = np.where(rng.random(n) < 0.6, reference, rng.integers(1, 5, n))
    second = np.where(rng.random(n) < 0.7, reference, rng.integers(1, 6, n))
    return reference, first, second


@pytest.mark.parametrize("chunk", [significance.CHUNK, 1000])  # one pass, and resamples drawn 3 at a time
def test_bootstrap_is_a_plain_loop_resampling_the_samples_with_the_same_seed(chunk, monkeypatch):
    monkeypatch.setattr(significance, "CHUNK", chunk)
    reference, first, second = random_maps(1, 301)
    results = significance.bootstrap(reference, [first, second], resamples=150, seed=7)
    rng = np.random.default_rng(7)
    expected = {name: ([], []) for name in ("first", "second")}
    for _ in range(150):
        drawn = rng.integers(0, len(reference), len(reference))
        for name, predicted in (("first", first), ("second", second)):
            expected[name][0].append(sk.accuracy_score(reference[drawn], predicted[drawn]))
            expected[name][1].append(sk.cohen_kappa_score(reference[drawn], predicted[drawn]))
    for (oa, kappa), name in zip(results, ("first", "second")):
        np.testing.assert_allclose(oa, expected[name][0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(kappa, expected[name][1], rtol=0, atol=1e-12)
    intervals = significance.map_intervals(reference, first, resamples=150, seed=7)
    assert (intervals["kappa low"], intervals["kappa high"]) == pytest.approx(
        tuple(np.percentile(expected["first"][1], [2.5, 97.5])), abs=1e-12)
    assert intervals["kappa"] == pytest.approx(sk.cohen_kappa_score(reference, first), abs=1e-12)
    assert intervals["OA low"] < intervals["OA"] < intervals["OA high"]


def test_two_maps_compared_in_words():
    reference, first, second = random_maps(2, 600)
    test = significance.compare_maps(("map A", "map B"), reference, first, second, resamples=300)
    assert test.kappa == pytest.approx((sk.cohen_kappa_score(reference, first),
                                        sk.cohen_kappa_score(reference, second)))
    assert test.difference > 0 and test.significant and test.test.p < 0.05
    low, high = test.difference_interval
    assert 0 < low < test.difference < high
    assert test.sentence().startswith(f"map B's kappa is {test.difference:.3f} higher than map A's")
    assert "the difference is significant at 5 %" in test.sentence()
    reversed_test = significance.compare_maps(("map B", "map A"), reference, second, first, resamples=300)
    assert reversed_test.test.p == test.test.p
    assert reversed_test.sentence().startswith(f"map B's kappa is {test.difference:.3f} higher than map A's")
    assert f"{low:+.3f} to {high:+.3f}" in reversed_test.sentence()  # told as higher - lower either way
    same = significance.compare_maps(("map A", "map A again"), reference, first, first.copy(), resamples=100)
    assert same.test.p == 1.0 and "not significant" in same.sentence()


def pairs_of(xs, ys, reference, predicted) -> Pairs:
    return Pairs(*(np.asarray(v, dtype) for v, dtype in ((xs, float), (ys, float), (reference, np.int64),
                                                           (predicted, np.int64))))


def test_pairs_match_by_coordinates_in_any_order_and_survive_a_round_trip(tmp_path):
    a = pairs_of([0.5, 1.5, 1.5, 2.5], [0.5, 0.5, 0.5, 7.25], [1, 2, 3, 1], [1, 2, NO_CLASS, 2])
    write_pairs(a, str(tmp_path / "a.csv"))
    back = read_pairs(str(tmp_path / "a.csv"), "PAIRS")
    for name in ("xs", "ys", "reference", "predicted"):
        assert np.array_equal(getattr(back, name), getattr(a, name))
    # the same samples in another order, a duplicated place kept in its order; the map has no class at one
    b = pairs_of([2.5, 1.5, 0.5, 1.5], [7.25, 0.5, 0.5, 0.5], [1, 2, 1, 3], [NO_CLASS, 1, 1, 3])
    matched = match(back, b, ("A", "B"), "REPORTS")
    assert (matched.first_only, matched.second_only) == (1, 1)
    assert matched.reference.tolist() == [1, 2] and matched.first.tolist() == [1, 2]
    assert matched.second.tolist() == [1, 1]


def test_pairs_at_other_places_or_with_other_references_are_refused():
    a = pairs_of([0.5, 1.5], [0.5, 0.5], [1, 2], [1, 2])
    with pytest.raises(PatchFlowError, match="different places") as caught:
        match(a, pairs_of([0.5, 9.5], [0.5, 0.5], [1, 2], [1, 2]), ("A", "B"), "REPORTS")
    assert caught.value.parameter == "REPORTS"
    with pytest.raises(PatchFlowError, match="different places"):
        match(a, pairs_of([0.5], [0.5], [1], [1]), ("A", "B"), "REPORTS")
    with pytest.raises(PatchFlowError, match="different reference classes") as caught:
        match(a, pairs_of([0.5, 1.5], [0.5, 0.5], [1, 3], [1, 2]), ("A", "B"), "PAIRS")
    assert caught.value.parameter == "PAIRS"


def test_the_sentence_says_when_mcnemar_and_the_kappa_interval_disagree():
    def told(p: float, interval: tuple[float, float]) -> str:
        return significance.PairTest("A", "B", 700, (0.56, 0.60), (0.37, 0.39), interval,
                                     significance.McNemar(50, 80, p, "chi-square, continuity-corrected")).sentence()

    assert "significant at 5 % (McNemar's test compares" in told(0.03, (-0.03, 0.05))
    assert "includes 0" in told(0.03, (-0.03, 0.05))
    assert "not significant at 5 % (McNemar's test" in told(0.2, (0.001, 0.05))
    assert "excludes 0" in told(0.2, (0.001, 0.05))
    assert told(0.01, (0.002, 0.05)).endswith("the difference is significant at 5 %.")
    assert told(0.4, (-0.01, 0.05)).endswith("the difference is not significant at 5 %.")
