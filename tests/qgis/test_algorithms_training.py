"""Train model through Processing: outputs, the OVERWRITE guard, and cancel keeping the last epoch."""

from __future__ import annotations

import json
import time

import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback


@pytest.fixture(scope="module")
def nc_datasets(nc, tmp_path_factory):
    """Train/valid manifests of the NC polygons' pixels (16x16 patches, 5 bands), made by the engine."""
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    folder = tmp_path_factory.mktemp("datasets")
    image = str(nc / "landsat_multiband.tif")

    def run(operation, **parameters):
        return run_job(protocol.Job(operation, parameters, "t"), Reporter())

    run("sample_vector", INPUT=str(nc / "landsat96_polygons.shp"), FIELD="label", RASTER=image, STRATEGY="all",
        PATCH_SIZE=16, OUTPUT=str(folder / "samples.gpkg"))
    run("grid_split", INPUT=image, SAMPLES=str(folder / "samples.gpkg"), CLASS_FIELD="class", PATCH_SIZE=16,
        BLOCK_SIZE=4, TRAIN=0.7, VALID=0.3, TEST=0, OUTPUT_TRAIN=str(folder / "train.gpkg"),
        OUTPUT_VALID=str(folder / "valid.gpkg"))
    for name in ("train", "valid"):
        run("extract_patches", INPUT=str(folder / f"{name}.gpkg"), SOURCE1=[image], PATCH_SIZE1=16,
            CLASS_FIELD="class", OUTPUT=str(folder / f"{name}.json"))
    return folder


def test_train_model_writes_the_model_folder_and_report(run_alg, nc_datasets, tmp_path):
    result = run_alg("trainmodel", TRAIN=str(nc_datasets / "train.json"), VALID=str(nc_datasets / "valid.json"),
                     EPOCHS=3, OUTPUT=str(tmp_path / "model"))
    assert result["MODEL_FOLDER"] == str(tmp_path / "model") and (tmp_path / "model" / "saved_model.pb").exists()
    assert result["REPORT"].endswith("report.html") and result["EPOCHS_RUN"] == 3
    card = json.loads((tmp_path / "model" / "patchflow_card.json").read_text())
    assert card["architecture"] == "patch_cnn" and card["training"]["validation"]["kappa"] == result["KAPPA"]
    assert {c["name"] for c in card["classes"]} <= {"agriculture", "developed", "forest", "herbaceous", "sediment",
                                                   "shrubland", "water"}


def test_train_model_scores_training_validation_and_test_sets(run_alg, nc_datasets, tmp_path):
    """TEST (here the validation manifest again: the same figures) in its own outputs, training-set
    scores beside them, and the epoch whose weights were saved; without VALID, no validation scores."""
    result = run_alg("trainmodel", TRAIN=str(nc_datasets / "train.json"), VALID=str(nc_datasets / "valid.json"),
                     TEST=str(nc_datasets / "valid.json"), EPOCHS=2, RESTORE_BEST=1, OUTPUT=str(tmp_path / "model"))
    assert result["TEST_KAPPA"] == result["KAPPA"] and result["TEST_OA"] == result["OA"]
    assert result["SAVED_EPOCH"] == result["BEST_EPOCH"] and 0 <= result["TRAIN_KAPPA"] <= 1
    assert result["KAPPA_SD"] is None and result["KEPT_SEED"] == 0
    alone = run_alg("trainmodel", TRAIN=str(nc_datasets / "train.json"), EPOCHS=1, OUTPUT=str(tmp_path / "alone"))
    assert alone["OA"] is None and alone["KAPPA"] is None and alone["TRAIN_OA"] is not None
    assert alone["SAVED_EPOCH"] == 1


def test_train_model_output_names_say_which_set_each_score_is_on(provider):
    """OA/KAPPA/MACRO_F1 are the validation set's; the training set's scores (all there is without VALID) have
    their own outputs, named so in the dialog's outputs and the modeler."""
    from qgis.core import QgsApplication

    algorithm = QgsApplication.processingRegistry().algorithmById("patchflow:trainmodel")
    for suffix in ("OA", "KAPPA", "MACRO_F1"):
        assert algorithm.outputDefinition(suffix).description().endswith("(validation)")
        assert algorithm.outputDefinition(f"TRAIN_{suffix}").description().endswith("(training)")
        assert algorithm.outputDefinition(f"TEST_{suffix}").description().endswith("(test)")


def test_an_existing_model_folder_needs_overwrite(run_alg, nc_datasets, tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(QgsProcessingException, match=r"\(OUTPUT\).*OVERWRITE"):
        run_alg("trainmodel", TRAIN=str(nc_datasets / "train.json"), EPOCHS=1, OUTPUT=str(tmp_path / "model"))


class CancelAfterEpoch(QgsProcessingFeedback):
    """Cancels when the log reports the end of epoch ``epoch``; remembers when."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch, self.cancelled_at = epoch, None

    def pushInfo(self, info: str) -> None:  # noqa: N802
        super().pushInfo(info)
        if info.startswith(f"epoch {self.epoch}/") and self.cancelled_at is None:
            self.cancelled_at = time.monotonic()
            self.cancel()


@pytest.mark.slow
def test_cancel_stops_within_seconds_and_keeps_the_last_epoch_for_resume(run_alg, nc_datasets, tmp_path):
    feedback = CancelAfterEpoch(2)
    job = {"TRAIN": str(nc_datasets / "train.json"), "EPOCHS": 400, "OUTPUT": str(tmp_path / "model")}
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run_alg("trainmodel", feedback=feedback, **job)
    assert feedback.cancelled_at is not None
    print(f"cancel time, training: {time.monotonic() - feedback.cancelled_at:.2f} s")
    assert time.monotonic() - feedback.cancelled_at < 2.0
    assert not (tmp_path / "model").exists()
    state = json.loads((tmp_path / "model.training" / "state.json").read_text())
    assert state["epoch"] >= 2
    resumed = run_alg("trainmodel", **dict(job, EPOCHS=state["epoch"] + 1))
    assert resumed["EPOCHS_RUN"] == state["epoch"] + 1 and not (tmp_path / "model.training").exists()
