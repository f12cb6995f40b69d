"""Malicious models and classifiers through processing.run: every algorithm that takes a model or a
classifier refuses one that could run code or touch files unless TRUST_MODEL is ticked, naming the
parameter (its description and key), and the marker file such a model writes never appears.

The models (tests/malicious_models.py) are made in this process: SavedModels whose serving function
reads a file (ReadFile), writes the marker (WriteFile) or calls Python that writes it (PyFunc,
EagerPyFunc), a .keras file with a Lambda layer that writes it, and a pickle classifier (.joblib)
whose __reduce__ writes it; the runs go through the worker as in QGIS."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from malicious_models import (
    FOUND,
    NETWORK_KINDS,
    build_world,
)
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingParameterBoolean

TRUST_LABEL = "I trust this model"
# each run starts a worker that imports TensorFlow to parse the SavedModel: WriteFile and Lambda run
# always, the other kinds (all of them checked in-process by tests/engine/test_model_gate.py) with the slow tests
KINDS = [kind if kind in ("WriteFile", "Lambda") else pytest.param(kind, marks=pytest.mark.slow)
         for kind in NETWORK_KINDS]
MODEL_ALGORITHMS = {"trainmodel", "trainclassifier", "applymodel", "classify"}


@pytest.fixture(scope="module")
def world(nc, tmp_path_factory) -> SimpleNamespace:
    return build_world(nc, tmp_path_factory.mktemp("malicious"), 30)


def picked(network: str) -> str:
    """What the file picker gives for a model: a SavedModel's saved_model.pb, a .keras file itself."""
    return os.path.join(network, "saved_model.pb") if os.path.isdir(network) else network


ALGORITHMS = {
    "trainmodel": ("Model", lambda w, model, out: {
        "TRAIN": w.train, "MODEL": model, "EPOCHS": 1, "OUTPUT": str(out / "trained")}),
    "trainclassifier": ("Model (deep features)", lambda w, model, out: {
        "DATASET": w.train, "MODEL": model, "OUTPUT": str(out / "c.skops")}),
    "applymodel": ("Model", lambda w, model, out: {
        "MODEL": model, "SOURCE1": [w.window], "OUTPUT": str(out / "map.tif")}),
}


def refused(run_alg, name: str, parameter: str, description: str, **parameters) -> str:
    with pytest.raises(QgsProcessingException) as caught:
        run_alg(name, **parameters)
    message = str(caught.value)
    assert f"({parameter}): " in message and message.startswith(description), message
    assert "TRUST_MODEL" in message and TRUST_LABEL in message
    return message


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_refuses_a_network_that_runs_code(run_alg, world, algorithm, kind, tmp_path):
    marker = world.markers[kind]
    description, parameters = ALGORITHMS[algorithm]
    message = refused(run_alg, algorithm, "MODEL", description,
                      **parameters(world, picked(world.networks[kind]), tmp_path / "out"))
    assert FOUND[kind] in message and world.networks[kind] in message
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_classify_refuses_a_classifier_whose_network_runs_code(run_alg, world, kind, tmp_path):
    message = refused(run_alg, "classify", "CLASSIFIER", "Classifier (.skops", INPUT=[world.window],
                      CLASSIFIER=world.on_network[kind], OUTPUT=str(tmp_path / "out" / "map.tif"))
    assert "the classifier's network" in message and FOUND[kind] in message
    assert not world.markers[kind].exists() and not (tmp_path / "out").exists()


def test_classify_refuses_a_pickle_that_would_write_a_file(run_alg, world, tmp_path):
    message = refused(run_alg, "classify", "CLASSIFIER", "Classifier (.skops", INPUT=[world.window],
                      CLASSIFIER=world.pickle, OUTPUT=str(tmp_path / "out" / "map.tif"))
    assert "pickle" in message and "could run any code" in message and "Train the classifier again" in message
    assert not world.markers["pickle"].exists() and not (tmp_path / "out").exists()


def test_every_algorithm_taking_a_model_or_classifier_has_the_same_trust_parameter(provider):
    registry = QgsApplication.processingRegistry()
    taking = set()
    for algorithm in registry.providerById("patchflow").algorithms():
        names = {p.name(): p for p in algorithm.parameterDefinitions()}
        classifier = names.get("CLASSIFIER")
        if "MODEL" in names or (classifier is not None and classifier.type() == "file"):
            taking.add(algorithm.name())
            trust = names.get("TRUST_MODEL")
            assert isinstance(trust, QgsProcessingParameterBoolean), algorithm.name()
            assert trust.description() == TRUST_LABEL and trust.defaultValue() is False, algorithm.name()
            assert "TRUST_MODEL" in algorithm.shortHelpString(), algorithm.name()
    assert taking == MODEL_ALGORITHMS


def test_classifier_files_are_skops(provider):
    registry = QgsApplication.processingRegistry()
    output = registry.algorithmById("patchflow:trainclassifier").parameterDefinition("OUTPUT")
    assert output.fileFilter() == "Classifier files (*.skops)" and output.defaultFileExtension() == "skops"
    classifier = registry.algorithmById("patchflow:classify").parameterDefinition("CLASSIFIER")
    assert classifier.fileFilter().startswith("Classifier files (*.skops)")


def test_a_trusted_legacy_pickle_classifies_as_its_skops_twin(run_alg, world, tmp_path):
    """A real classifier pickled as PatchFlow used to (.joblib) loads with TRUST_MODEL and gives the
    map the .skops file gives."""
    import joblib

    from patchflow.plugin.engine.classify.deepfeatures import load_estimator

    legacy = tmp_path / "legacy.joblib"
    joblib.dump(load_estimator(world.rf["OUTPUT"]), legacy)
    shutil.copy(world.rf["DESCRIPTION"], tmp_path / "legacy.json")
    refused(run_alg, "classify", "CLASSIFIER", "Classifier (.skops", INPUT=[world.window], CLASSIFIER=str(legacy),
            OUTPUT=str(tmp_path / "refused.tif"))
    trusted = run_alg("classify", INPUT=[world.window], CLASSIFIER=str(legacy), TRUST_MODEL=True,
                      OUTPUT=str(tmp_path / "pickle.tif"))
    twin = run_alg("classify", INPUT=[world.window], CLASSIFIER=world.rf["OUTPUT"], OUTPUT=str(tmp_path / "skops.tif"))
    first, second = (gdal.Open(r["OUTPUT"]).ReadAsArray() for r in (trusted, twin))
    assert first.shape == (48, 48) and np.array_equal(first, second)
    assert Path(twin["OUTPUT"]).exists() and len(np.unique(second)) >= 2
