"""Accuracy metrics: every number against scikit-learn's on the same pairs; CSV, HTML and plot."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from sklearn import metrics as sk

from patchflow.plugin.engine.evaluate.metrics import PairCounter, Scores, confusion_matrix, plot_confusion
from patchflow.plugin.engine.report import htmlreport


def classes_of(ids) -> list[dict]:
    return [{"id": int(i), "name": f"name {i}", "color": "#102030"} for i in ids]


def random_pairs(seed: int, n: int, ids, p_correct: float, weights=None):
    rng = np.random.default_rng(seed)
    reference = rng.choice(ids, size=n, p=weights)
    wrong = rng.choice(ids, size=n)
    predicted = np.where(rng.random(n) < p_correct, reference, wrong)
    return reference, predicted


CASES = {
    "random": random_pairs(0, 500, [1, 2, 3, 4, 5], 0.6),
    "imbalanced": random_pairs(1, 2000, [0, 3, 7, 9], 0.8, [0.9, 0.07, 0.02, 0.01]),
    "perfect": (np.array([2, 2, 5, 5, 8, 1]), np.array([2, 2, 5, 5, 8, 1])),
    "all_wrong": (np.array([1, 1, 2, 2, 3, 3]), np.array([2, 3, 3, 1, 1, 2])),
    "small": random_pairs(2, 7, [1, 2, 3], 0.5),
}


def check_against_sklearn(scores: Scores, reference, predicted, labels) -> None:
    assert scores.class_ids == list(labels)
    np.testing.assert_array_equal(scores.matrix, sk.confusion_matrix(reference, predicted, labels=labels))
    assert scores.overall_accuracy == pytest.approx(sk.accuracy_score(reference, predicted), abs=1e-12)
    assert scores.kappa == pytest.approx(sk.cohen_kappa_score(reference, predicted, labels=labels), abs=1e-12)
    p, r, f, s = sk.precision_recall_fscore_support(reference, predicted, labels=labels, zero_division=0)
    np.testing.assert_allclose(scores.precision, p, atol=1e-12)
    np.testing.assert_allclose(scores.recall, r, atol=1e-12)
    np.testing.assert_allclose(scores.f1, f, atol=1e-12)
    np.testing.assert_array_equal(scores.support, s)
    np.testing.assert_array_equal(scores.predicted_counts, [np.sum(predicted == c) for c in labels])
    for average in ("macro", "weighted"):
        p, r, f, _ = sk.precision_recall_fscore_support(reference, predicted, average=average, zero_division=0)
        assert getattr(scores, f"{average}_precision") == pytest.approx(p, abs=1e-12)
        assert getattr(scores, f"{average}_recall") == pytest.approx(r, abs=1e-12)
        assert getattr(scores, f"{average}_f1") == pytest.approx(f, abs=1e-12)
        assert getattr(scores, f"{average}_f1") == pytest.approx(
            sk.f1_score(reference, predicted, average=average, zero_division=0), abs=1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
def test_scores_match_sklearn(case):
    reference, predicted = CASES[case]
    labels = sorted(set(reference) | set(predicted))
    scores = Scores.from_pairs(reference, predicted, classes_of(labels))
    check_against_sklearn(scores, reference, predicted, labels)


def test_absent_classes_score_zero_and_are_left_out_of_macro_averages():
    """Class 4 is in the class list but in neither array; class 6 is only predicted."""
    reference = np.array([1, 1, 2, 2, 2, 3])
    predicted = np.array([1, 6, 2, 2, 3, 3])
    scores = Scores.from_pairs(reference, predicted, classes_of([1, 2, 3, 4, 6]))
    i4, i6 = scores.class_ids.index(4), scores.class_ids.index(6)
    assert scores.precision[i4] == scores.recall[i4] == scores.f1[i4] == 0
    assert scores.precision[i6] == 0 and scores.predicted_counts[i6] == 1 and scores.support[i6] == 0
    assert list(scores.present) == [True, True, True, False, True]
    np.testing.assert_array_equal(scores.matrix, sk.confusion_matrix(reference, predicted, labels=[1, 2, 3, 4, 6]))
    assert scores.macro_f1 == pytest.approx(sk.f1_score(reference, predicted, average="macro", zero_division=0))
    assert scores.kappa == pytest.approx(sk.cohen_kappa_score(reference, predicted))


def test_unlisted_references_are_ignored_and_unlisted_predictions_become_classes():
    reference = np.array([0, 0, 1, 1, 2, 2])  # 0 = no label: not a class
    predicted = np.array([1, 2, 1, 9, 2, 2])
    scores = Scores.from_pairs(reference, predicted, classes_of([1, 2]))
    assert scores.class_ids == [1, 2, 9] and scores.names[-1] == "class 9"
    kept = reference != 0
    check_against_sklearn(scores, reference[kept], predicted[kept], [1, 2, 9])
    # the plain matrix drops pairs outside the ids, as scikit-learn does
    np.testing.assert_array_equal(confusion_matrix(reference, predicted, [1, 2]),
                                  sk.confusion_matrix(reference, predicted, labels=[1, 2]))


def test_class_order_follows_the_list_like_sklearn_labels():
    reference, predicted = CASES["random"]
    labels = [5, 3, 1, 4, 2]
    np.testing.assert_array_equal(confusion_matrix(reference, predicted, labels),
                                  sk.confusion_matrix(reference, predicted, labels=labels))


def test_from_matrix_of_block_sums_equals_from_pairs():
    reference, predicted = CASES["imbalanced"]
    classes = classes_of([0, 3, 7, 9])
    ids = [c["id"] for c in classes]
    total = sum(confusion_matrix(reference[i:i + 300], predicted[i:i + 300], ids) for i in range(0, 2000, 300))
    counter = PairCounter()
    for i in range(0, 2000, 300):
        counter.add(reference[i:i + 300], predicted[i:i + 300])
    whole = Scores.from_pairs(reference, predicted, classes)
    for scores in (Scores.from_matrix(total, classes), Scores.from_matrix(counter.matrix(ids), classes)):
        assert scores.as_dict() == whole.as_dict()
    assert counter.total == 2000 and counter.class_ids == ids


def test_single_class_kappa_is_one_and_empty_scores_are_zero():
    same = Scores.from_pairs(np.array([4, 4, 4]), np.array([4, 4, 4]), classes_of([4]))
    assert same.kappa == 1.0 and same.overall_accuracy == 1.0
    assert sk.cohen_kappa_score([4, 4, 4], [4, 4, 4], replace_undefined_by=1.0) == 1.0
    empty = Scores.from_pairs(np.array([], int), np.array([], int), classes_of([1, 2]))
    assert empty.total == 0 and empty.overall_accuracy == 0 and empty.kappa == 0 and empty.macro_f1 == 0


def test_rows_summary_and_as_dict_are_plain_json():
    import json

    reference, predicted = CASES["random"]
    scores = Scores.from_pairs(reference, predicted, classes_of([1, 2, 3, 4, 5]))
    data = json.loads(json.dumps(scores.as_dict()))
    assert data["matrix"] == scores.matrix.tolist() and data["n"] == 500
    row = data["classes"][2]
    assert row["id"] == 3 and row["name"] == "name 3"
    assert row["reference"] == int(np.sum(reference == 3)) and row["correct"] == int(scores.matrix[2, 2])
    assert row["f1"] == pytest.approx(scores.f1[2])


def test_csv_holds_the_numbers(tmp_path):
    reference, predicted = CASES["random"]
    scores = Scores.from_pairs(reference, predicted, classes_of([1, 2, 3, 4, 5]))
    path = tmp_path / "scores.csv"
    scores.write_csv(str(path))
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    by_name = {row["name"]: row for row in rows}
    assert int(rows[0]["id"]) == 1 and int(rows[0]["reference"]) == int(np.sum(reference == 1))
    assert float(rows[1]["recall"]) == pytest.approx(scores.recall[1], abs=1e-6)
    assert [int(rows[3][f"pred_{c}"]) for c in (1, 2, 3, 4, 5)] == scores.matrix[3].tolist()
    oa = sk.accuracy_score(reference, predicted)
    assert float(by_name["overall accuracy"]["value"]) == pytest.approx(oa, abs=1e-6)
    assert float(by_name["kappa"]["value"]) == pytest.approx(sk.cohen_kappa_score(reference, predicted), abs=1e-6)
    assert float(by_name["macro F1"]["value"]) == pytest.approx(
        sk.f1_score(reference, predicted, average="macro"), abs=1e-6)


def test_html_table_and_report_page(tmp_path):
    reference, predicted = CASES["all_wrong"]
    classes = [{"id": 1, "name": "water <deep>", "color": "#0000ff"}, {"id": 2, "name": "forest", "color": "#00ff00"},
               {"id": 3, "name": "urban", "color": "#ff0000"}]
    scores = Scores.from_pairs(reference, predicted, classes)
    fragment = scores.html_table()
    assert "water &lt;deep&gt;" in fragment and "#0000ff" in fragment
    assert "0.0000" in fragment and "kappa" in fragment
    assert f"{scores.kappa:.4f}" in fragment
    png = tmp_path / "cm.png"
    plot_confusion(scores, str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plot_confusion(scores, str(tmp_path / "raw.png"), normalize=False)
    page = htmlreport.page("Report <1>", [("Scores", fragment), ("Matrix", htmlreport.image_tag(str(png), "cm"))])
    assert page.startswith("<!DOCTYPE html>") and "Report &lt;1&gt;" in page
    assert "data:image/png;base64," in page and "http" not in page.lower().replace("<!doctype html>", "")
    out = tmp_path / "r.html"
    htmlreport.write(str(out), page)
    assert out.read_text(encoding="utf-8") == page


def test_html_table_formats_numbers():
    text = htmlreport.table([{"n": 12345, "ratio": 0.123456, "name": "a&b", "none": None}], ["name", "n", "ratio"])
    assert "12,345" in text and "0.1235" in text and "a&amp;b" in text and "none" not in text
    assert text.count("<th>") == 3 and '<td class="num">12,345</td>' in text
    assert htmlreport.image_tag("/x/y.png", "alt", embed=False) == '<img src="y.png" alt="alt">'
