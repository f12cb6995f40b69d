"""The model-loading gate (modelsafety.open_model) and classifiers that cannot run code.

Every operation that loads a network or a classifier refuses one that could run code or touch
files unless TRUST_MODEL is ticked, and the refusal comes before anything is loaded: the marker
file the malicious models write never appears. Trusted, the same models do run (the markers
appear), which shows the refusals are what stops them. The .keras check reads config.json only
(Keras is not imported); classifiers are skops files loading only known types."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from malicious_models import (
    BANDS,
    CLASSES,
    FOUND,
    NETWORK_KINDS,
    WritesMarker,
    build_world,
    malicious_keras,
)
from osgeo import gdal

from patchflow.plugin.engine.classify import deepfeatures as df
from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.models import modelio
from patchflow.plugin.engine.models.modelcard import InputSpec
from patchflow.plugin.engine.models.modelio import InferenceModel, load_trainable
from patchflow.plugin.engine.models.modelsafety import (
    PATCHFLOW_OBJECTS,
    _keras_objects,
    check_model,
    findings,
    keras_config,
    keras_findings,
)
from patchflow.plugin.engine.models.zoo import build_model, export_model

ENGINE = Path(__file__).resolve().parents[2] / "plugin" / "engine"


@pytest.fixture(scope="module")
def world(nc, tmp_path_factory) -> SimpleNamespace:
    return build_world(nc, tmp_path_factory.mktemp("gate"), 50)


def error_of(call) -> PatchFlowError:
    with pytest.raises(PatchFlowError) as caught:
        call()
    return caught.value


NETWORK_OPERATIONS = {
    "train_model": lambda w, model, out: {"TRAIN": w.train, "MODEL": model, "EPOCHS": 1, "OUTPUT": str(out / "m")},
    "train_classifier": lambda w, model, out: {"DATASET": w.train, "MODEL": model, "OUTPUT": str(out / "c.skops")},
    "apply_model": lambda w, model, out: {"MODEL": model, "SOURCE1": [w.window], "OUTPUT": str(out / "map.tif")},
}


# ---- refused without TRUST_MODEL, before anything runs --------------------------------------------------


@pytest.mark.parametrize("kind", NETWORK_KINDS)
@pytest.mark.parametrize("operation", NETWORK_OPERATIONS)
def test_every_operation_refuses_a_network_that_runs_code(world, run_op, operation, kind, tmp_path):
    marker = world.markers[kind]
    assert not marker.exists()
    error = error_of(lambda: run_op(operation, **NETWORK_OPERATIONS[operation](world, world.networks[kind],
                                                                              tmp_path / "out")))
    assert error.parameter == "MODEL"
    assert FOUND[kind] in error.message and "TRUST_MODEL" in error.message and world.networks[kind] in error.message
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", NETWORK_KINDS)
def test_classify_refuses_a_classifier_whose_network_runs_code(world, run_op, kind, tmp_path):
    marker = world.markers[kind]
    assert not marker.exists()
    error = error_of(lambda: run_op("classify", INPUT=[world.window], CLASSIFIER=world.on_network[kind],
                                    OUTPUT=str(tmp_path / "out" / "map.tif")))
    assert error.parameter == "CLASSIFIER"
    assert error.message.startswith("the classifier's network: ") and world.networks[kind] in error.message
    assert FOUND[kind] in error.message and "TRUST_MODEL" in error.message
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["evil.joblib", "evil.skops"])
def test_classify_refuses_a_pickle_whatever_its_name(world, run_op, name, tmp_path):
    """The format is read from the file (a skops zip or not), not from its extension."""
    path = tmp_path / name
    shutil.copy(world.pickle, path)
    shutil.copy(os.path.splitext(world.pickle)[0] + ".json", tmp_path / "evil.json")
    error = error_of(lambda: run_op("classify", INPUT=[world.window], CLASSIFIER=str(path),
                                    OUTPUT=str(tmp_path / "out" / "map.tif")))
    assert error.parameter == "CLASSIFIER"
    assert "pickle" in error.message and "could run any code" in error.message
    assert "Train the classifier again" in error.message and "TRUST_MODEL" in error.message
    assert not world.markers["pickle"].exists() and not (tmp_path / "out").exists()


def test_a_skops_file_with_a_foreign_type_is_refused_naming_it(world, run_op, tmp_path):
    import skops.io

    path = tmp_path / "foreign.skops"
    skops.io.dump(WritesMarker(str(world.markers["pickle"])), str(path))
    shutil.copy(world.rf["DESCRIPTION"], tmp_path / "foreign.json")
    error = error_of(lambda: run_op("classify", INPUT=[world.window], CLASSIFIER=str(path),
                                    OUTPUT=str(tmp_path / "out" / "map.tif")))
    assert error.parameter == "CLASSIFIER" and "malicious_models.WritesMarker" in error.message
    assert "TRUST_MODEL" in error.message
    assert not world.markers["pickle"].exists() and not (tmp_path / "out").exists()


def test_the_gate_checks_before_any_loader_runs(world, monkeypatch):
    """With TensorFlow's and Keras's loaders replaced by a tripwire, malicious models are still
    refused (the check needs no loading); a safe model reaches the tripwire (so it is the loader)."""
    def tripwire(*args, **kwargs):
        raise AssertionError("a loader ran")

    for name in ("_load_keras", "_load_saved_model", "_wrap_saved_model"):
        monkeypatch.setattr(modelio, name, tripwire)
    for kind, network in world.networks.items():
        for load in (load_trainable, InferenceModel.load):
            error = error_of(lambda load=load, network=network: load(network, "MODEL"))
            assert FOUND[kind] in error.message, (kind, load)
    model, card = build_model("fcnn", [InputSpec("x1", BANDS, 16, "source1")], CLASSES, width=1, seed=0)
    safe = str(world.folder / "safe_fcnn")
    if not os.path.exists(safe):
        export_model(model, card, safe)
    with pytest.raises(AssertionError, match="a loader ran"):
        InferenceModel.load(safe)
    with pytest.raises(AssertionError, match="a loader ran"):
        load_trainable(safe)


# ---- trusted: the same models run (so the refusals above are what stopped them) -------------------


@pytest.mark.parametrize("kind", NETWORK_KINDS)
def test_trusted_networks_run_with_a_warning_naming_what_they_hold(world, run_op, kind, tmp_path):
    marker = world.markers[kind]
    try:
        outputs, reporter = run_op("apply_model", MODEL=world.networks[kind], SOURCE1=[world.window],
                                   TRUST_MODEL=True, OUTPUT=str(tmp_path / "map.tif"))
        assert os.path.exists(outputs["OUTPUT"])
        warnings = [w for w in reporter.warnings if "TRUST_MODEL" in w]
        assert len(warnings) == 1 and FOUND[kind] in warnings[0]
        assert ("safe mode off" in warnings[0]) == (kind == "Lambda")
        assert marker.exists() == (kind != "ReadFile")  # ReadFile only reads
    finally:
        marker.unlink(missing_ok=True)


def test_trusted_deep_features_run_the_network(world, run_op, tmp_path):
    """The reported bug: trainclassifier ran a network that writes a file, rc 0. Trusted, it still
    does (and says so); untrusted it is refused (above)."""
    marker = world.markers["WriteFile"]
    try:
        outputs, reporter = run_op("train_classifier", DATASET=world.train, MODEL=world.networks["WriteFile"],
                                   N_TREES=3, TRUST_MODEL=True, OUTPUT=str(tmp_path / "deep.skops"))
        assert marker.exists() and outputs["N_FEATURES"] == 4
        assert any("WriteFile" in w and "TRUST_MODEL" in w for w in reporter.warnings)
    finally:
        marker.unlink(missing_ok=True)


def test_a_trusted_pickle_is_unpickled_with_a_warning(world, run_op, tmp_path):
    marker = world.markers["pickle"]
    try:
        error = error_of(lambda: run_op("classify", INPUT=[world.window], CLASSIFIER=world.pickle, TRUST_MODEL=True,
                                        OUTPUT=str(tmp_path / "map.tif")))
        assert marker.exists()  # unpickling ran its code: what the refusal prevents
        assert error.parameter == "CLASSIFIER" and "not a classifier" in error.message
    finally:
        marker.unlink(missing_ok=True)


# ---- skops classifiers ------------------------------------------------------------------------------


def test_classifiers_are_skops_files_holding_only_the_listed_types(world, run_op, tmp_path):
    import skops.io

    svm, _ = run_op("train_classifier", DATASET=world.train, CLASSIFIER="svm", OUTPUT=str(tmp_path / "svm"))
    assert svm["OUTPUT"] == str(tmp_path / "svm.skops")
    untrusted = set()
    for path in (world.rf["OUTPUT"], svm["OUTPUT"]):
        assert df.is_skops(path)
        untrusted |= set(skops.io.get_untrusted_types(file=path))
    assert untrusted == set(df.SKOPS_TYPES)  # every listed type is needed, none is missing


def test_a_legacy_output_name_is_written_as_skops(world, run_op, tmp_path):
    outputs, reporter = run_op("train_classifier", DATASET=world.train, N_TREES=2, OUTPUT=str(tmp_path / "rf.joblib"))
    assert outputs["OUTPUT"] == str(tmp_path / "rf.skops") and df.is_skops(outputs["OUTPUT"])
    assert not (tmp_path / "rf.joblib").exists() and (tmp_path / "rf.json").exists()
    assert any("rf.joblib" in w and ".skops" in w for w in reporter.warnings)


def test_skops_round_trip_gives_the_map_the_pickle_gave(world, run_op, tmp_path):
    """train classifier -> classify from the .skops file equals classify from the same estimator
    pickled as PatchFlow used to (.joblib, trusted), pixel for pixel, confidence too."""
    import joblib

    skops_map, _ = run_op("classify", INPUT=[world.raster], CLASSIFIER=world.rf["OUTPUT"],
                          OUTPUT=str(tmp_path / "skops.tif"), OUTPUT_CONFIDENCE=str(tmp_path / "skops_c.tif"))
    legacy = tmp_path / "legacy" / "pixels.joblib"
    legacy.parent.mkdir()
    joblib.dump(df.load_estimator(world.rf["OUTPUT"]), legacy)
    shutil.copy(world.rf["DESCRIPTION"], legacy.with_suffix(".json"))
    error = error_of(lambda: run_op("classify", INPUT=[world.raster], CLASSIFIER=str(legacy),
                                    OUTPUT=str(tmp_path / "refused.tif")))
    assert error.parameter == "CLASSIFIER" and "pickle" in error.message
    pickle_map, reporter = run_op("classify", INPUT=[world.raster], CLASSIFIER=str(legacy), TRUST_MODEL=True,
                                  OUTPUT=str(tmp_path / "pickle.tif"), OUTPUT_CONFIDENCE=str(tmp_path / "pickle_c.tif"))
    assert any("pickle" in w and "TRUST_MODEL" in w for w in reporter.warnings)
    for a, b in ((skops_map["OUTPUT"], pickle_map["OUTPUT"]),
                 (skops_map["OUTPUT_CONFIDENCE"], pickle_map["OUTPUT_CONFIDENCE"])):
        first, second = gdal.Open(a).ReadAsArray(), gdal.Open(b).ReadAsArray()
        assert first.shape == (443, 489) and np.array_equal(first, second)
    assert len(np.unique(gdal.Open(skops_map["OUTPUT"]).ReadAsArray())) > 2


# ---- the .keras check reads config.json, without Keras --------------------------------------------------


def keras_file(path: Path, config) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", "{}")
    return str(path)


def model_config(*layers) -> dict:
    return {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
            "config": {"name": "m", "layers": list(layers)}}


def layer(class_name, module="keras.layers", registered=None, **config) -> dict:
    return {"module": module, "class_name": class_name, "registered_name": registered,
            "config": {"name": class_name.lower(), **config}}


@pytest.mark.parametrize("bad, found", [
    (layer("TFSMLayer", filepath="/elsewhere/model"),
     "TFSMLayer 'tfsmlayer' (loads the external SavedModel /elsewhere/model)"),
    (layer("Lambda", function={"module": "builtins", "class_name": "function", "config": "f",
                               "registered_name": "function"}), "Lambda layer 'lambda' (runs Python code)"),
    (layer("Dense", activation={"class_name": "__lambda__", "config": {"code": "AA=="}}), "__lambda__"),
    (layer("Dense", activation={"module": "os", "class_name": "function", "config": "system",
                                "registered_name": "function"}), "the function system of module os"),
    (layer("Popen", module="subprocess"), "the class subprocess.Popen"),
    (layer("Dense", registered="other>Dense"), "registered as other>Dense"),
    (layer("Nope", module="patchflow.plugin.engine.models.srmodel", registered="patchflow>Nope"), "patchflow>Nope"),
    (layer("StringLookup", vocabulary="/etc/passwd"), "vocabulary file /etc/passwd"),
    (layer("TorchModuleWrapper", module="keras.src.utils.torch_utils", module_data="gASV"), "unpickles a PyTorch"),
])
def test_keras_config_objects_that_are_refused(tmp_path, bad, found):
    path = keras_file(tmp_path / "m.keras", model_config(layer("Dense", units=2), bad))
    reasons = keras_findings(path)
    assert len(reasons) == 1 and found in reasons[0], reasons
    error = error_of(lambda: check_model(path, trusted=False, parameter="MODEL"))
    assert error.parameter == "MODEL" and found in error.message


def test_keras_own_and_patchflow_objects_pass(tmp_path):
    dtype = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
    path = keras_file(tmp_path / "m.keras", model_config(
        layer("Dense", units=2, dtype=dtype, activation="relu",
              kernel_initializer={"module": "keras.initializers", "class_name": "GlorotUniform", "config": {},
                                  "registered_name": None}),
        layer("PixelShuffle", module="patchflow.plugin.engine.models.srmodel", registered="patchflow>PixelShuffle"),
        layer("Softmax", module="keras.layers"),
        {"class_name": "__keras_tensor__", "config": {"shape": [None, 2], "keras_history": ["dense", 0, 0]}},
        {"module": "builtins", "class_name": "function", "config": "relu", "registered_name": "function"},
        {"module": "builtins", "class_name": "function", "config": "patchflow>psnr", "registered_name": "function"}))
    assert keras_findings(path) == []


@pytest.mark.parametrize("content, why", [
    (b"not a zip at all", "not a zip archive"),
    ("zip without config", "no config.json inside"),
    ("zip with broken json", "config.json cannot be read"),
])
def test_a_corrupt_keras_file_is_not_a_valid_keras_file(world, run_op, tmp_path, content, why):
    path = tmp_path / "broken.keras"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("metadata.json", "{}")
            if "json" in content:
                archive.writestr("config.json", "{not json")
    for load in (load_trainable, InferenceModel.load):
        error = error_of(lambda load=load: load(str(path), "PRETRAINED"))
        assert error.parameter == "PRETRAINED" and "not a valid .keras file" in error.message and why in error.message
    error = error_of(lambda: run_op("apply_model", MODEL=str(path), SOURCE1=[world.window],
                                    OUTPUT=str(tmp_path / "out.tif")))
    assert error.parameter == "MODEL" and "not a valid .keras file" in error.message
    assert "File not found" not in error.message


def test_the_keras_check_imports_neither_keras_nor_tensorflow(tmp_path):
    marker = tmp_path / "marker.txt"
    path = malicious_keras(tmp_path / "lambda.keras", marker)
    code = (f"import sys\nfrom patchflow.plugin.engine.models.modelsafety import findings\n"
            f"print(findings({path!r}))\n"
            "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))\n")
    plugins = Path(__file__).resolve().parents[2] / ".cache" / "plugins"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(plugins)})
    found, imported = result.stdout.strip().splitlines()
    assert "Lambda layer 'writes_marker'" in found and imported == "[]"
    assert not marker.exists()


def test_patchflow_objects_are_what_patchflow_registers():
    import keras

    from patchflow.plugin.engine.models import adversarial, imageloss  # noqa: F401 - they register on import
    from patchflow.plugin.engine.models.srmodel import register_layers

    register_layers()
    modelio._signature_layer_class()
    registered = {name.split(">", 1)[1] for name in keras.saving.get_custom_objects() if name.startswith("patchflow>")}
    assert registered == set(PATCHFLOW_OBJECTS)


def test_zoo_and_super_resolution_models_pass(tmp_path):
    from patchflow.plugin.engine.models.modelcard import Normalization
    from patchflow.plugin.engine.models.srmodel import build_sr_generator

    for architecture in ("patch_cnn", "fcnn", "unet"):
        model, card = build_model(architecture, [InputSpec("x1", 3, 16, "source1")], CLASSES[:3], width=2, seed=0)
        export_model(model, card, str(tmp_path / architecture))
        assert findings(str(tmp_path / architecture)) == [], architecture
    stats = Normalization("standard", [1.0, 2.0], [1.0, 1.0])
    model, card = build_sr_generator(InputSpec("x1", 2, 8, "lr", stats), 2, 2, stats, width=4, blocks=1, seed=0)
    export_model(model, card, str(tmp_path / "sr"))
    assert findings(str(tmp_path / "sr")) == []
    objects = _keras_objects(keras_config(str(tmp_path / "sr" / "model.keras")))
    assert {o.get("registered_name") for o in objects} >= {"patchflow>PixelShuffle"}  # PatchFlow's own layers pass


def test_a_patchflow_folder_is_checked_for_what_fine_tuning_loads(world, run_op, tmp_path):
    """A PatchFlow SavedModel folder whose saved_model.pb is safe but whose model.keras (what
    training loads) has a Lambda layer is refused."""
    model, card = build_model("fcnn", [InputSpec("x1", BANDS, 16, "source1")], CLASSES, width=1, seed=0)
    folder = tmp_path / "tampered"
    export_model(model, card, str(folder))
    assert findings(str(folder)) == []
    marker = tmp_path / "marker.txt"
    shutil.copy(malicious_keras(tmp_path / "lambda.keras", marker), folder / "model.keras")
    assert findings(str(folder)) == ["model.keras: Lambda layer 'writes_marker' (runs Python code)",
                                     "model.keras: a Python function stored as code (__lambda__)"]
    error = error_of(lambda: run_op("train_model", TRAIN=world.train, MODEL=str(folder), EPOCHS=1,
                                    OUTPUT=str(tmp_path / "out")))
    assert error.parameter == "MODEL" and "model.keras: Lambda layer" in error.message
    assert not marker.exists() and not (tmp_path / "out").exists()


def foreign_savedmodel(path: Path, body=None) -> str:
    import tensorflow as tf

    module = tf.Module()
    module.w = tf.Variable(np.eye(2, 3, dtype=np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 2], tf.float32, name="source1")])
    def serve(source1):
        x = body(source1) if body else source1
        return {"probabilities": tf.nn.softmax(tf.einsum("nhwc,ck->nhwk", x, module.w))}

    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return str(path)


def test_a_fine_tuned_foreign_savedmodel_loads_again_when_what_it_calls_is_safe(tmp_path):
    """Training a user's SavedModel wraps it (PatchFlow's SignatureLayer, a TFSMLayer): the
    exported model.keras loads again untrusted when that SavedModel passes the check, and is
    refused, naming it, when it does not."""
    import tensorflow as tf

    _, card = build_model("fcnn", [InputSpec("source1", 2, 16)], CLASSES[:3], width=1)
    card.outputs = [o for o in card.outputs if o.kind != "features"]
    image = np.random.default_rng(0).normal(size=(2, 16, 16, 2)).astype(np.float32)
    def reads(x):
        return x + 0.0 * tf.cast(tf.strings.length(tf.io.read_file(__file__)), tf.float32)

    for name, body in (("safe", None), ("reads", reads)):
        foreign = foreign_savedmodel(tmp_path / f"foreign_{name}", body)
        model, _ = load_trainable(foreign, trusted=name != "safe")
        export_model(model, card, str(tmp_path / f"tuned_{name}"))
        if name == "safe":
            again, _ = load_trainable(str(tmp_path / "tuned_safe"))
            assert np.allclose(np.asarray(again(image)), np.asarray(model(image)), atol=1e-6)
        else:
            error = error_of(lambda: load_trainable(str(tmp_path / "tuned_reads")))
            assert "SignatureLayer" in error.message and foreign in error.message and "ReadFile" in error.message


# ---- one gate: nothing else in the engine loads a model or unpickles ----------------------------------

RAW_LOADERS = ("models.load_model", "saving.load_model", "saved_model.load", "joblib.load", "pickle.load",
               "pickle.loads", "skops.io.load", "skops.io.loads", "TFSMLayer", "_signature_layer_class()",
               "open_trainable", "InferenceModel.open", "_load_keras", "_load_saved_model", "_wrap_saved_model")
ALLOWED = {
    ("modelio.py", "_load_keras", "models.load_model"), ("modelio.py", "_load_saved_model", "saved_model.load"),
    ("modelio.py", "_wrap_saved_model", "_load_saved_model"),
    ("modelio.py", "_wrap_saved_model", "_signature_layer_class()"),
    ("modelio.py", "open_trainable", "_load_keras"), ("modelio.py", "open_trainable", "_wrap_saved_model"),
    ("modelio.py", "open", "_load_keras"), ("modelio.py", "_from_saved_model", "_load_saved_model"),
    ("modelsafety.py", "open_model", "open_trainable"), ("modelsafety.py", "open_model", "InferenceModel.open"),
    ("classifierfile.py", "load_estimator", "skops.io.load"), ("classifierfile.py", "load_estimator", "joblib.load"),
}


def _called(node: ast.Call) -> str:
    func, parts = node.func, []
    if isinstance(func, ast.Call):
        return _called(func) + "()"
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def test_only_the_gate_reaches_the_loaders():
    found = set()
    for path in sorted(ENGINE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Call):
                    name = _called(node)
                    loader = next((r for r in RAW_LOADERS if name == r or name.endswith("." + r)), None)
                    if loader:
                        found.add((path.name, function.name, loader))
    assert found == ALLOWED, (sorted(found - ALLOWED), sorted(ALLOWED - found))
