"""Models and classifiers that would run code or touch files if PatchFlow loaded them, for the
model-gate tests (tests/engine/test_model_gate.py, tests/qgis/test_malicious_models.py).

Each network takes ``x1`` (n, rows, cols, 5 bands: the NC Landsat scene) and gives per-pixel
``features`` (4), ``probabilities`` (7 classes) and ``class`` (ids 1-7), with a PatchFlow card, so
that every operation would get as far as running it without the gate. What it does besides: reads
a file (ReadFile), writes ``marker`` (WriteFile), or calls Python that writes ``marker`` (PyFunc,
EagerPyFunc, a Keras Lambda layer); the pickle classifier writes ``marker`` when unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

BANDS, PATCH, FEATURES = 5, 16, 4
CLASSES = [{"id": i, "name": f"class {i}", "color": "#000000"} for i in range(1, 8)]
SAVED_MODEL_KINDS = ("ReadFile", "WriteFile", "PyFunc", "EagerPyFunc")
NETWORK_KINDS = (*SAVED_MODEL_KINDS, "Lambda")
# what the refusal names for each kind
FOUND = {"ReadFile": "ReadFile", "WriteFile": "WriteFile", "PyFunc": "PyFunc", "EagerPyFunc": "EagerPyFunc",
         "Lambda": "Lambda layer"}


def _card():
    from patchflow.plugin.engine.models.modelcard import InputSpec
    from patchflow.plugin.engine.models.zoo import build_model

    _, card = build_model("fcnn", [InputSpec("x1", BANDS, PATCH, "source1")], CLASSES, width=1, seed=0)
    return card


def _write_marker(marker: str):
    def write(values):
        with open(marker, "w", encoding="utf-8") as handle:
            handle.write("ran")
        return values

    return write


def malicious_saved_model(path: Path, kind: str, marker: Path) -> str:
    """A SavedModel (with a PatchFlow card copied in) whose serving function does ``kind``."""
    import tensorflow as tf

    module = tf.Module()
    module.w = tf.Variable(np.linspace(-1, 1, BANDS * FEATURES, dtype=np.float32).reshape(BANDS, FEATURES))
    module.v = tf.Variable(np.linspace(-1, 1, FEATURES * len(CLASSES), dtype=np.float32).reshape(FEATURES, -1))
    class_ids = tf.constant([c["id"] for c in CLASSES], tf.int32)

    def side_effect(x):
        if kind == "ReadFile":
            secret = tf.io.read_file(str(Path(marker).parent / "secret.txt"))
            return x + 0.0 * tf.cast(tf.strings.length(secret), tf.float32)
        if kind == "WriteFile":
            with tf.control_dependencies([tf.io.write_file(str(marker), "ran")]):
                return tf.identity(x)
        wrapper = tf.numpy_function if kind == "PyFunc" else tf.py_function
        out = wrapper(_write_marker(str(marker)), [x], tf.float32)
        return tf.reshape(out, tf.shape(x))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, BANDS], tf.float32, name="x1")])
    def serve(x1):
        x = side_effect(x1)
        features = tf.einsum("nhwc,cf->nhwf", x, module.w)
        probabilities = tf.nn.softmax(tf.einsum("nhwf,fk->nhwk", features, module.v))
        index = tf.argmax(probabilities, -1, output_type=tf.int32)
        return {"features": features, "probabilities": probabilities,
                "class": tf.expand_dims(tf.gather(class_ids, index), -1)}

    module.serve = serve
    Path(marker).parent.mkdir(parents=True, exist_ok=True)
    (Path(marker).parent / "secret.txt").write_text("a secret")
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    _card().save(str(path))
    return str(path)


def malicious_keras(path: Path, marker: Path) -> str:
    """A .keras file (its card beside it) with a Lambda layer whose function writes ``marker``."""
    import keras

    inputs = keras.Input((None, None, BANDS), name="x1")
    # the marker's path is a constant of the function's code (Keras stores the code, marshalled)
    writes = eval(f"lambda t: (open({str(marker)!r}, 'w').write('ran'), t)[1]")
    x = keras.layers.Lambda(writes, name="writes_marker")(inputs)
    features = keras.layers.Conv2D(FEATURES, 1, name="features")(x)
    probabilities = keras.layers.Conv2D(len(CLASSES), 1, activation="softmax", name="probabilities")(features)
    keras.Model(inputs, probabilities).save(str(path))
    if os.path.exists(marker):  # building the model ran the lambda here, in the test
        os.remove(marker)
    _card().save(str(path))
    return str(path)


def malicious_network(folder: Path, kind: str, marker: Path) -> str:
    if kind == "Lambda":
        return malicious_keras(folder / "lambda.keras", marker)
    return malicious_saved_model(folder / kind, kind, marker)


class WritesMarker:
    """Unpickled, it writes its marker (any code could run there)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def malicious_pickle(path: Path, marker: Path, description: str) -> str:
    """A .joblib pickle that writes ``marker`` when loaded, with a copy of a real classifier's
    description (``description``) beside it, so only the pickle itself stops classification."""
    import joblib

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(WritesMarker(str(marker)), str(path))
    shutil.copy(description, os.path.splitext(path)[0] + ".json")
    return str(path)


def classifier_on_network(description: str, network: str, folder: Path) -> str:
    """A classifier (a copy of a real per-pixel one) whose description says its features come from
    ``network``'s ``features`` output, 16 px patches of 5 bands."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / Path(network).stem
    source = os.path.splitext(description)[0]
    classifier_file = next(source + ext for ext in (".skops", ".joblib") if os.path.exists(source + ext))
    shutil.copy(classifier_file, str(stem) + os.path.splitext(classifier_file)[1])
    info = json.loads(Path(description).read_text(encoding="utf-8"))
    info.update(kind="deep_features", model=os.path.abspath(network), feature_output="features", input_name="x1",
                patch_size=PATCH, n_features=FEATURES)
    Path(str(stem) + ".json").write_text(json.dumps(info, allow_nan=False), encoding="utf-8")
    return str(stem) + os.path.splitext(classifier_file)[1]


def crop(raster: str, path: Path, size: int = 48) -> str:
    """A small window of ``raster`` (its top-left size x size pixels after an offset into the scene)."""
    from osgeo import gdal

    gdal.Translate(str(path), raster, srcWin=[200, 200, size, size])
    return str(path)


def build_world(nc, folder: Path, samples: int):
    """A small NC dataset (16 px patches, 5 bands), a per-pixel Random Forest (.skops), a 48 px window
    of the scene, the malicious networks, classifiers whose description names them, and a malicious
    pickle (made by the engine in this process, under ``folder``)."""
    from types import SimpleNamespace

    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    def run(operation, **parameters):
        return run_job(protocol.Job(operation, parameters, "setup"), Reporter())

    raster = str(nc / "landsat_multiband.tif")
    points = run("sample_label_raster", INPUT=str(nc / "landsat96_labelled_pixels.tif"), NUMBER=samples,
                 PATCH_SIZE=16, SEED=0, OUTPUT=str(folder / "points.gpkg"))["OUTPUT"]
    train = run("extract_patches", INPUT=points, SOURCE1=raster, PATCH_SIZE1=16, CLASS_FIELD="class",
                OUTPUT=str(folder / "patches" / "train.json"))["OUTPUT"]
    rf = run("train_classifier", DATASET=train, N_TREES=5, SEED=0, OUTPUT=str(folder / "rf" / "pixels.skops"))
    markers = {kind: folder / "markers" / f"{kind}.txt" for kind in (*NETWORK_KINDS, "pickle")}
    networks = {kind: malicious_network(folder / "networks", kind, markers[kind]) for kind in NETWORK_KINDS}
    return SimpleNamespace(
        folder=folder, raster=raster, train=train, rf=rf, markers=markers, networks=networks,
        window=crop(raster, folder / "window.tif"),
        on_network={kind: classifier_on_network(rf["DESCRIPTION"], networks[kind], folder / "on" / kind)
                    for kind in NETWORK_KINDS},
        pickle=malicious_pickle(folder / "pickled" / "evil.joblib", markers["pickle"], rf["DESCRIPTION"]))
