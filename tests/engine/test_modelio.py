"""Loading models for training and inference: PatchFlow SavedModels, a user's .keras file, a
foreign SavedModel (made here with tf.Module), and everything that is not a model."""

from __future__ import annotations

import os

import numpy as np
import pytest

from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.models.modelcard import InputSpec
from patchflow.plugin.engine.models.modelio import EXPECTED, InferenceModel, load_trainable
from patchflow.plugin.engine.models.zoo import build_model, export_model

CLASSES = [{"id": i, "name": f"c{i}", "color": "#000000"} for i in (3, 5, 9)]


def images(n: int, size: int, bands: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, size, size, bands)).astype(np.float32)


@pytest.fixture(scope="module")
def patchflow_model(tmp_path_factory):
    model, card = build_model("fcnn", [InputSpec("source1", 2, 32)], CLASSES, width=2, seed=4)
    path = str(tmp_path_factory.mktemp("pf") / "model")
    export_model(model, card, path)
    return model, card, path


@pytest.fixture(scope="module")
def user_keras(tmp_path_factory):
    """A user's own Keras model: input 'image', 3 bands, a 'features' layer, softmax over 2."""
    import keras

    inputs = keras.Input((None, None, 3), name="image")
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="features")(inputs)
    outputs = keras.layers.Conv2D(2, 1, activation="softmax", name="probabilities")(features)
    model = keras.Model(inputs, outputs)
    path = str(tmp_path_factory.mktemp("user") / "mine.keras")
    model.save(path)
    return model, path


class Foreign:
    """A SavedModel written with tf.Module (no Keras): y = softmax(x @ w + b) per pixel."""

    @staticmethod
    def make(path: str) -> None:
        import tensorflow as tf

        module = tf.Module()
        module.w = tf.Variable(np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32))
        module.b = tf.Variable(np.zeros(3, np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 4], tf.float32, name="pixels")])
        def serve(pixels):
            logits = tf.einsum("nhwc,ck->nhwk", pixels, module.w) + module.b
            return {"scores": tf.nn.softmax(logits), "label": tf.argmax(logits, -1)}

        module.serve = serve
        tf.saved_model.save(module, path, signatures={"serving_default": serve})


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("foreign") / "saved")
    Foreign.make(path)
    return path


def test_patchflow_savedmodel_loads_for_training(patchflow_model):
    model, card, path = patchflow_model
    trainable, loaded_card = load_trainable(path)
    assert loaded_card.to_dict() == card.to_dict()
    assert trainable.output_names == ["probabilities"] and trainable.get_layer("features") is not None
    image = images(2, 32, 2)
    assert np.allclose(np.asarray(trainable(image)), np.asarray(model(image)), atol=1e-6)
    assert len(trainable.trainable_weights) == len(model.trainable_weights)


def test_inference_runs_in_batches(patchflow_model):
    _, card, path = patchflow_model
    served = InferenceModel.load(path)
    assert served.card.class_ids == [3, 5, 9]
    image = images(7, 32, 2, seed=3)
    whole = served.predict({"source1": image}, ["class", "probabilities"])
    batched = served.predict({"source1": image}, ["class", "probabilities"], batch_size=3)
    assert set(whole) == {"class", "probabilities"}
    assert np.array_equal(whole["class"], batched["class"])
    assert np.allclose(whole["probabilities"], batched["probabilities"], atol=1e-6)
    assert set(np.unique(whole["class"])) <= {3, 5, 9}


def test_inference_errors_name_the_parameter(patchflow_model):
    served = InferenceModel.load(patchflow_model[2], parameter="DEEP_MODEL")
    image = images(1, 32, 2)
    with pytest.raises(PatchFlowError) as caught:
        served.predict({"source1": image}, ["logits"])
    assert caught.value.parameter == "DEEP_MODEL"
    assert "logits" in caught.value.message and "class_crop16" in caught.value.message
    with pytest.raises(PatchFlowError, match="source1"):
        served.predict({"other": image})
    with pytest.raises(PatchFlowError, match="2"):
        served.predict({"source1": images(1, 32, 5)})


def test_user_keras_file_for_training_and_inference(user_keras, tmp_path):
    model, path = user_keras
    trainable, card = load_trainable(path)
    assert card is None
    image = images(3, 8, 3)
    assert np.allclose(np.asarray(trainable(image)), np.asarray(model(image)), atol=1e-6)
    served = InferenceModel.load(path)
    assert served.input_names == ["image"] and served.input_bands == {"image": 3}
    assert set(served.output_names) == {"probabilities", "features", "class"}
    out = served.predict({"image": image})
    assert out["features"].shape == (3, 8, 8, 4)
    assert np.array_equal(out["class"][..., 0], np.asarray(model(image)).argmax(-1))  # no card: indices


def test_user_keras_file_with_a_card_beside_it(user_keras, tmp_path):
    import shutil

    _, path = user_keras
    copy = str(tmp_path / "mine.keras")
    shutil.copy(path, copy)
    _, card = build_model("patch_cnn", [InputSpec("image", 3, 16)], CLASSES[:2], width=2)
    card.save(copy)
    assert os.path.exists(str(tmp_path / "mine.card.json"))
    served = InferenceModel.load(copy)
    assert served.card.class_ids == [3, 5]
    assert set(np.unique(served.predict({"image": images(2, 8, 3)}, ["class"])["class"])) <= {3, 5}


def test_foreign_savedmodel_for_inference(foreign):
    import tensorflow as tf

    served = InferenceModel.load(foreign)
    assert served.card is None
    assert served.input_names == ["pixels"] and served.input_bands == {"pixels": 4}
    assert set(served.output_names) == {"scores", "label"}
    image = images(5, 6, 4)
    out = served.predict({"pixels": image}, batch_size=2)
    direct = tf.saved_model.load(foreign).signatures["serving_default"](pixels=tf.constant(image))
    assert np.allclose(out["scores"], direct["scores"].numpy(), atol=1e-6)
    assert np.array_equal(out["label"], direct["label"].numpy())


def test_foreign_savedmodel_is_trainable(foreign):
    """Two outputs, none named probabilities: the wrapped model gives both (a dict), and
    training moves the SavedModel's own variables."""
    import keras
    import tensorflow as tf

    model, card = load_trainable(foreign)
    assert card is None
    assert [t.name for t in model.inputs] == ["pixels"]
    assert set(model.output) == {"scores", "label"}
    image = images(4, 6, 4)
    before = np.asarray(model(image)["scores"])
    assert len(model.trainable_weights) == 2
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(image)["scores"][..., 0])
    grads = tape.gradient(loss, model.trainable_weights)
    keras.optimizers.SGD(1.0).apply_gradients(zip(grads, model.trainable_weights))
    assert not np.allclose(before, np.asarray(model(image)["scores"]))


def test_foreign_savedmodel_with_probabilities_exports_with_a_card(tmp_path):
    """The training path for a user's SavedModel: wrap it, then export it as PatchFlow does."""
    import tensorflow as tf

    module = tf.Module()
    module.w = tf.Variable(np.eye(2, 3, dtype=np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 2], tf.float32, name="source1")])
    def serve(source1):
        return {"probabilities": tf.nn.softmax(tf.einsum("nhwc,ck->nhwk", source1, module.w))}

    module.serve = serve
    foreign = str(tmp_path / "foreign")
    tf.saved_model.save(module, foreign, signatures={"serving_default": serve})
    model, _ = load_trainable(foreign)
    assert model.output_names == ["probabilities"]
    _, card = build_model("fcnn", [InputSpec("source1", 2, 16)], CLASSES, width=1)
    card.outputs = [o for o in card.outputs if o.kind != "features"]
    exported = str(tmp_path / "exported")
    export_model(model, card, exported)
    image = images(2, 16, 2)
    out = InferenceModel.load(exported).predict({"source1": image}, ["class", "probabilities"])
    expected = tf.nn.softmax(tf.einsum("nhwc,ck->nhwk", image, module.w)).numpy()
    assert np.allclose(out["probabilities"], expected, atol=1e-6)
    assert np.array_equal(out["class"][..., 0], np.asarray([3, 5, 9])[expected.argmax(-1)])


def not_models(folder) -> dict[str, str]:
    text = folder / "notes.txt"
    text.write_text("not a model")
    empty = folder / "empty_dir"
    empty.mkdir()
    corrupt = folder / "broken.keras"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip")
    return {"missing": str(folder / "nothing.keras"), "text": str(text), "folder": str(empty),
            "corrupt": str(corrupt)}


@pytest.mark.parametrize("case", ["missing", "text", "folder", "corrupt"])
def test_not_a_model(tmp_path, case):
    path = not_models(tmp_path)[case]
    for load in (load_trainable, InferenceModel.load):
        with pytest.raises(PatchFlowError) as caught:
            load(path, parameter="PRETRAINED")
        assert caught.value.parameter == "PRETRAINED"
        assert EXPECTED in caught.value.message and path in caught.value.message


def test_savedmodel_without_serving_signature(tmp_path):
    import tensorflow as tf

    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "nosig"))
    with pytest.raises(PatchFlowError) as caught:
        InferenceModel.load(str(tmp_path / "nosig"))
    assert caught.value.parameter == "MODEL" and "serving_default" in caught.value.message
