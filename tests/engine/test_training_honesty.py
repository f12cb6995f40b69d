"""Train model's honest figures on the real North Carolina data: a TEST set scored once and never
used to choose, the weights saved (RESTORE_BEST) named and checked against the history, training
scores beside validation and test with the optimistic and overfitting notes, no validation scores
without VALID, REPEATS with mean and sd over seeds; and train_classifier's TEST scores."""

from __future__ import annotations

import json
import re
import threading

import numpy as np
import pytest

from patchflow.plugin import protocol
from patchflow.plugin.engine.errors import Cancelled
from patchflow.plugin.engine.reporting import Reporter
from patchflow.plugin.engine.worker import run_job

OPTIMISTIC = "The validation scores are optimistic"
OVERFITTING = "Overfitting: the training-set kappa"


def run(operation: str, reporter: Reporter | None = None, **parameters):
    return run_job(protocol.Job(operation, parameters, "test"), reporter or Reporter())


@pytest.fixture(scope="module")
def sets(nc, tmp_path_factory):
    """Train/valid/test manifests (16x16 patches of the 5-band scene around the polygons' pixels),
    from one grid split on 4-patch blocks: three spatially disjoint sets."""
    folder = tmp_path_factory.mktemp("honest_sets")
    image = str(nc / "landsat_multiband.tif")
    run("sample_vector", INPUT=str(nc / "landsat96_polygons.shp"), FIELD="id", RASTER=image, STRATEGY="all",
        PATCH_SIZE=16, OUTPUT=str(folder / "samples.gpkg"))
    run("grid_split", INPUT=image, SAMPLES=str(folder / "samples.gpkg"), CLASS_FIELD="class", PATCH_SIZE=16,
        BLOCK_SIZE=4, TRAIN=0.6, VALID=0.2, TEST=0.2, SEED=1, OUTPUT_TRAIN=str(folder / "train.gpkg"),
        OUTPUT_VALID=str(folder / "valid.gpkg"), OUTPUT_TEST=str(folder / "test.gpkg"))
    for name in ("train", "valid", "test"):
        run("extract_patches", INPUT=str(folder / f"{name}.gpkg"), SOURCE1=[image], PATCH_SIZE1=16,
            CLASS_FIELD="class", OUTPUT=str(folder / f"{name}.json"))
    return {**{name: str(folder / f"{name}.json") for name in ("train", "valid", "test")}, "folder": folder}


def predicted_and_truth(model_folder, manifest: str):
    """The saved model's classes for every patch of ``manifest``, and the labels."""
    from patchflow.plugin.engine.data.datasets import PatchDataset
    from patchflow.plugin.engine.models.modelio import InferenceModel

    model = InferenceModel.load(str(model_folder))
    dataset = PatchDataset(manifest, "VALID")
    try:
        patches, labels = dataset.image("source1").read(), dataset.labels()
    finally:
        dataset.close()
    normalised = model.card.inputs[0].normalization.apply(patches)
    return model.predict({"x1": normalised}, ["class"])["class"].reshape(-1), labels


def kappa_of(model_folder, manifest: str) -> float:
    from sklearn.metrics import cohen_kappa_score

    predicted, labels = predicted_and_truth(model_folder, manifest)
    return float(cohen_kappa_score(labels, predicted))


def report_text(folder) -> str:
    return re.sub(r"\s+", " ", (folder / "report.html").read_text())


def weights_of(folder):
    import keras

    return keras.models.load_model(str(folder / "model.keras")).get_weights()


def history_of(folder) -> dict[str, list[float]]:
    import csv

    with open(folder / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) for row in rows] for key in rows[0] if key != "epoch"}


@pytest.mark.slow
def test_the_test_set_is_scored_once_and_never_chooses_the_epoch(sets, tmp_path):
    job = {"TRAIN": sets["train"], "VALID": sets["valid"], "EPOCHS": 12, "PATIENCE": 3, "SEED": 0}
    with_test = run("train_model", **job, TEST=sets["test"], OUTPUT=str(tmp_path / "with"))
    without = run("train_model", **job, OUTPUT=str(tmp_path / "without"))
    for key in ("EPOCHS_RUN", "BEST_EPOCH", "SAVED_EPOCH", "OA", "KAPPA", "TRAIN_KAPPA"):
        assert with_test[key] == without[key], key
    assert all(np.array_equal(a, b) for a, b in zip(weights_of(tmp_path / "with"), weights_of(tmp_path / "without")))
    assert with_test["SAVED_EPOCH"] == with_test["BEST_EPOCH"]  # auto with PATIENCE: the best epoch's weights
    assert without["TEST_KAPPA"] is None and without["TEST_OA"] is None
    assert with_test["TEST_KAPPA"] == pytest.approx(kappa_of(tmp_path / "with", sets["test"]), abs=1e-9)
    assert with_test["KAPPA"] == pytest.approx(kappa_of(tmp_path / "with", sets["valid"]), abs=1e-9)
    predicted, labels = predicted_and_truth(tmp_path / "with", sets["test"])
    assert with_test["TEST_OA"] == pytest.approx(float(np.mean(predicted == labels)), abs=1e-9)
    card = json.loads((tmp_path / "with" / "patchflow_card.json").read_text())
    assert card["training"]["scores"]["test"]["kappa"] == with_test["TEST_KAPPA"]
    assert card["training"]["saved_epoch"] == with_test["SAVED_EPOCH"]
    assert (tmp_path / "with" / "test.csv").exists() and not (tmp_path / "without" / "test.csv").exists()
    # VALID chose the epoch: said in words where no TEST gives an unbiased figure
    assert OPTIMISTIC in report_text(tmp_path / "without")
    assert OPTIMISTIC not in report_text(tmp_path / "with")
    assert "the test set chose nothing" in report_text(tmp_path / "with")
    assert f"epoch {with_test['SAVED_EPOCH']} (best on validation loss)" in report_text(tmp_path / "with")


@pytest.mark.slow
def test_restore_best_saves_the_epoch_it_names(sets, tmp_path):
    """No PATIENCE: 'best' holds the lowest-validation-loss epoch, 'last' and 'auto' the last one; the
    saved model's validation accuracy is the history's at SAVED_EPOCH (the weights are that epoch's)."""
    job = {"TRAIN": sets["train"], "VALID": sets["valid"], "EPOCHS": 8, "SEED": 0}
    results = {choice: run("train_model", **job, RESTORE_BEST=choice, OUTPUT=str(tmp_path / choice))
               for choice in ("best", "last", "auto")}
    history = history_of(tmp_path / "best")
    best = int(np.argmin(history["val_loss"])) + 1
    assert best < 8, "the measured run peaks before its last epoch (else this test could not tell)"
    assert results["best"]["BEST_EPOCH"] == best == results["best"]["SAVED_EPOCH"]
    assert results["last"]["SAVED_EPOCH"] == 8 == results["auto"]["SAVED_EPOCH"]
    assert results["last"]["BEST_EPOCH"] == best  # still said, but not what the model holds
    for choice, result in results.items():
        predicted, labels = predicted_and_truth(tmp_path / choice, sets["valid"])
        accuracy = float(np.mean(predicted == labels))
        assert accuracy == pytest.approx(history["val_accuracy"][result["SAVED_EPOCH"] - 1], abs=1e-6), choice
        assert result["OA"] == pytest.approx(accuracy, abs=1e-9)
        card = json.loads((tmp_path / choice / "patchflow_card.json").read_text())
        assert card["training"]["saved_epoch"] == result["SAVED_EPOCH"]
    assert all(np.array_equal(a, b) for a, b in zip(weights_of(tmp_path / "last"), weights_of(tmp_path / "auto")))
    assert f"epoch {best} (best on validation loss)" in report_text(tmp_path / "best")
    assert "epoch 8 (last epoch)" in report_text(tmp_path / "last")
    # VALID chose the epoch for 'best' only
    assert OPTIMISTIC in report_text(tmp_path / "best") and OPTIMISTIC not in report_text(tmp_path / "last")
    # the run overfits (measured: training kappa about 0.85, validation 0.33): said in words
    assert results["last"]["TRAIN_KAPPA"] - results["last"]["KAPPA"] > 0.1
    assert OVERFITTING in report_text(tmp_path / "last")


def test_without_valid_there_are_no_validation_scores_and_no_overfitting_note_on_one_set(sets, tmp_path):
    """No VALID: OA/KAPPA are None (training-set scores have their own outputs); a model scored on the
    same patches as training and test shows no gap, so no overfitting note."""
    outputs = run("train_model", TRAIN=sets["valid"], TEST=sets["valid"], EPOCHS=2, SEED=0,
                  OUTPUT=str(tmp_path / "m"))
    assert outputs["OA"] is None and outputs["KAPPA"] is None and outputs["MACRO_F1"] is None
    assert outputs["TRAIN_KAPPA"] == pytest.approx(kappa_of(tmp_path / "m", sets["valid"]), abs=1e-9)
    assert outputs["TRAIN_KAPPA"] == outputs["TEST_KAPPA"] and outputs["SAVED_EPOCH"] == 2
    card = json.loads((tmp_path / "m" / "patchflow_card.json").read_text())
    assert card["training"]["validation"] is None and card["training"]["best_chosen_on"] == "training loss"
    assert not (tmp_path / "m" / "validation.csv").exists() and (tmp_path / "m" / "training.csv").exists()
    text = report_text(tmp_path / "m")
    assert "No validation set (VALID)" in text and OVERFITTING not in text and OPTIMISTIC not in text


class CancelAtRepeat(Reporter):
    def __init__(self, event, repeat: int) -> None:
        super().__init__()
        self.event, self.repeat = event, repeat

    def log(self, text: str) -> None:
        super().log(text)
        if text.startswith(f"repeat {self.repeat}/"):
            self.event.set()


@pytest.mark.slow
def test_repeats_give_mean_and_sd_over_seeds_and_keep_the_best_on_validation(sets, tmp_path):
    job = {"TRAIN": sets["train"], "VALID": sets["valid"], "TEST": sets["test"], "EPOCHS": 3, "SEED": 5}
    outputs = run("train_model", **job, REPEATS=3, OUTPUT=str(tmp_path / "m"))
    card = json.loads((tmp_path / "m" / "patchflow_card.json").read_text())
    runs = card["training"]["repeats"]["runs"]
    assert [r["seed"] for r in runs] == [5, 6, 7]
    for key, set_name in (("KAPPA", "validation"), ("TEST_KAPPA", "test"), ("TRAIN_OA", "training"),
                          ("TEST_MACRO_F1", "test")):
        metric = {"KAPPA": "kappa", "OA": "overall_accuracy", "MACRO_F1": "macro_f1"}[
            key.split("_", 1)[1] if key.startswith(("TEST_", "TRAIN_")) else key]
        values = [r["scores"][set_name][metric] for r in runs]
        assert outputs[f"{key}_MEAN"] == pytest.approx(np.mean(values), abs=1e-12)
        assert outputs[f"{key}_SD"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    losses = [r["selection_loss"] for r in runs]
    kept = runs[int(np.argmin(losses))]
    assert outputs["KEPT_SEED"] == kept["seed"] == card["training"]["repeats"]["kept_seed"]
    assert outputs["KAPPA"] == kept["scores"]["validation"]["kappa"]
    assert outputs["TEST_KAPPA"] == kept["scores"]["test"]["kappa"]
    assert outputs["KAPPA"] == pytest.approx(kappa_of(tmp_path / "m", sets["valid"]), abs=1e-9)  # the kept model
    text = report_text(tmp_path / "m")
    assert "Repeats: 3 seeds" in text and all(f'<td class="num">{seed}</td>' in text for seed in (5, 6, 7))
    assert f'<td class="num">{kept["seed"]}</td><td>yes</td>' in text and "<td>mean</td>" in text
    assert "<td>sd</td>" in text
    assert not (tmp_path / "m.training").exists()
    # the first seed alone, as REPEATS=1 trains it: the same figures as the repeat's first row
    single = run("train_model", **job, OUTPUT=str(tmp_path / "single"))
    assert single["KAPPA"] == runs[0]["scores"]["validation"]["kappa"] and single["KAPPA_SD"] is None
    # a cancel during a repeat stops it, leaving no output and no work folder
    event = threading.Event()
    with pytest.raises(Cancelled):
        run_job(protocol.Job("train_model", dict(job, REPEATS=3, OUTPUT=str(tmp_path / "cancelled")), "c"),
                CancelAtRepeat(event, 2), event)
    assert not (tmp_path / "cancelled").exists() and not (tmp_path / "cancelled.training").exists()


def test_train_classifier_scores_the_test_set_beside_validation(sets, tmp_path):
    from sklearn.metrics import accuracy_score, cohen_kappa_score

    from patchflow.plugin.engine.classify import deepfeatures as df

    job = {"DATASET": sets["train"], "VALID": sets["valid"], "N_TREES": 20, "SEED": 0}
    both = run("train_classifier", **job, TEST=sets["test"], OUTPUT=str(tmp_path / "both.skops"))
    alone = run("train_classifier", **job, OUTPUT=str(tmp_path / "alone.skops"))
    assert both["VALID_KAPPA"] == alone["VALID_KAPPA"] and alone["TEST_KAPPA"] is None
    classifier = df.load_estimator(both["OUTPUT"])
    test = df.load_dataset(sets["test"], "TEST")
    predicted = classifier.predict(df.dataset_features(test, df.FeatureExtractor(df.PIXELS, 5), Reporter()))
    assert both["TEST_KAPPA"] == pytest.approx(cohen_kappa_score(test.labels, predicted), abs=1e-12)
    assert both["TEST_OA"] == pytest.approx(accuracy_score(test.labels, predicted), abs=1e-12)
    assert both["TEST_KAPPA"] != both["VALID_KAPPA"]  # scored on its own set
    description = json.loads((tmp_path / "both.json").read_text())
    assert description["test"]["kappa"] == both["TEST_KAPPA"] and both["TEST_CSV"].endswith("both_test.csv")
    assert (tmp_path / "both_test.csv").exists() and not (tmp_path / "alone_test.csv").exists()


def test_a_test_set_from_other_rasters_is_refused_naming_test(nc, sets, tmp_path):
    """A 6-band TEST for a 5-band training set: refused before anything is written, by both trainers."""
    from patchflow.plugin.engine.errors import PatchFlowError

    bands = [str(nc / f"lsat7_2000_{b}.tif") for b in (10, 20, 30, 40, 50, 70)]
    samples = str(sets["folder"] / "test.gpkg")
    run("extract_patches", INPUT=samples, SOURCE1=bands, PATCH_SIZE1=16, CLASS_FIELD="class",
        OUTPUT=str(tmp_path / "six" / "test.json"))
    before = sorted(p.name for p in tmp_path.iterdir())
    for operation, job in (("train_model", {"TRAIN": sets["train"], "EPOCHS": 1, "OUTPUT": str(tmp_path / "m")}),
                           ("train_classifier", {"DATASET": sets["train"], "OUTPUT": str(tmp_path / "rf.skops")})):
        with pytest.raises(PatchFlowError) as error:
            run(operation, **job, TEST=str(tmp_path / "six" / "test.json"))
        assert error.value.parameter == "TEST" and "6 bands" in error.value.message, error.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == before
