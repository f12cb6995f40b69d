"""Loading models: for training (a Keras model, fine-tunable) and for inference (named inputs
in, named outputs out, in batches), whether PatchFlow wrote them or the user brings their own.

What is a model here:
* a Keras ``.keras`` file (its card, if any, beside it as ``<stem>.card.json``);
* a PatchFlow SavedModel directory (``saved_model.pb`` + ``model.keras`` + ``patchflow_card.json``);
* any other TensorFlow SavedModel directory; its ``serving_default`` signature is the model.

Every load goes through ``modelsafety.open_model`` (``load_trainable`` and ``InferenceModel.load``
call it): the safety check runs before TensorFlow or Keras read the model. ``open_trainable`` and
``InferenceModel.open`` are what the gate calls once the check has passed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..errors import PatchFlowError
from ..reporting import Reporter
from .modelcard import ModelCard, load_card

if TYPE_CHECKING:
    import keras

EXPECTED = "a Keras .keras file or a SavedModel directory (with saved_model.pb)"
SIGNATURE = "serving_default"
TRAINING_MODEL = "model.keras"


def import_tensorflow(reporter: Reporter, percent: float | None = None, until: float | None = None) -> None:
    """Import TensorFlow (seconds, the first time in a process), a stage of the run when it is not yet."""
    if "tensorflow" not in sys.modules:
        reporter.stage("importing TensorFlow", percent, until)
    import tensorflow  # noqa: F401


def model_kind(path: str, parameter: str = "MODEL") -> str:
    """"keras" (a .keras file), "patchflow" (a SavedModel PatchFlow wrote) or "savedmodel"."""
    if not path or not os.path.exists(path):
        raise PatchFlowError(f"model not found: {path}. Expected {EXPECTED}.", parameter)
    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise PatchFlowError(f"{path} is a folder without saved_model.pb. Expected {EXPECTED}.", parameter)
        return "patchflow" if os.path.isfile(os.path.join(path, TRAINING_MODEL)) else "savedmodel"
    if path.lower().endswith(".keras"):
        return "keras"
    raise PatchFlowError(f"{path} is not a model. Expected {EXPECTED}.", parameter)


def _load_keras(path: str, parameter: str, safe_mode: bool = True, compile: bool = False) -> keras.Model:
    import keras

    from .srmodel import register_layers

    _signature_layer_class()  # so a fine-tuned wrapped SavedModel (.keras) loads again
    register_layers()  # the SR generator's layers
    try:
        return keras.models.load_model(path, compile=compile, safe_mode=safe_mode)
    except Exception as exc:  # a corrupt file or unknown layers: Keras raises many kinds
        raise PatchFlowError(f"{path} cannot be read as a Keras model ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}). Expected {EXPECTED}.",
                             parameter) from None


def _load_saved_model(path: str, parameter: str):
    """The loaded SavedModel and its serving signature."""
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(path)
    except Exception as exc:  # noqa: BLE001 - TensorFlow raises many kinds for a broken SavedModel
        raise PatchFlowError(f"{path} cannot be read as a SavedModel ({type(exc).__name__}). Expected {EXPECTED}.",
                             parameter) from None
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    if SIGNATURE not in signatures:
        raise PatchFlowError(f"{path} has no '{SIGNATURE}' signature (it has: {', '.join(signatures) or 'none'}). "
                             "Export the model with a serving_default signature.", parameter)
    return loaded, signatures[SIGNATURE]


def _signature_inputs(signature) -> dict:
    args, kwargs = signature.structured_input_signature
    return dict(kwargs)


_SIGNATURE_LAYER: list = []


def _signature_layer_class():
    """TFSMLayer calling a signature with keyword arguments (signatures take no positional ones)."""
    if not _SIGNATURE_LAYER:
        import keras

        @keras.saving.register_keras_serializable(package="patchflow")
        class SignatureLayer(keras.layers.TFSMLayer):
            def call(self, inputs, training=False):
                return self.call_endpoint_fn(**inputs)

            @classmethod
            def from_config(cls, config, custom_objects=None, safe_mode=None):
                # Keras refuses every TFSMLayer in safe mode; the gate (modelsafety.open_model) has
                # checked the SavedModel this one calls before Keras read the file
                return cls(**config)

        _SIGNATURE_LAYER.append(SignatureLayer)
    return _SIGNATURE_LAYER[0]


def _wrap_saved_model(path: str, parameter: str) -> keras.Model:
    """A functional Keras model around a foreign SavedModel's serving signature, its variables
    trainable. Its output: "probabilities" if the signature has it, else its only output, else
    every output (a dict)."""
    import keras

    _, signature = _load_saved_model(path, parameter)
    specs = _signature_inputs(signature)
    inputs = {name: keras.Input(tuple(spec.shape[1:]), name=name, dtype=spec.dtype.name)
              for name, spec in specs.items()}
    layer = _signature_layer_class()(path, call_endpoint=SIGNATURE, trainable=True, name="saved_model")
    outputs = layer(inputs)
    if "probabilities" in outputs or len(outputs) == 1:
        name = "probabilities" if "probabilities" in outputs else next(iter(outputs))
        outputs = keras.layers.Identity(name=name)(outputs[name])
    model_inputs = next(iter(inputs.values())) if len(inputs) == 1 else list(inputs.values())
    return keras.Model(model_inputs, outputs, name=os.path.basename(os.path.normpath(path)) or "saved_model")


def load_trainable(path: str, parameter: str = "MODEL", trusted: bool = False, reporter: Reporter | None = None,
                   compile: bool = False) -> tuple[keras.Model, ModelCard | None]:
    """A Keras model to train or fine-tune, and its card (None for a model without one), through
    the safety gate (``modelsafety.open_model``)."""
    from .modelsafety import open_model

    return open_model(path, trusted, parameter, reporter, trainable=True, compile=compile)


def open_trainable(path: str, parameter: str, safe_mode: bool, compile: bool = False
                   ) -> tuple[keras.Model, ModelCard | None]:
    """``load_trainable`` once the gate has checked the model: call ``load_trainable`` instead."""
    kind = model_kind(path, parameter)
    card = load_card(path, parameter)
    if kind == "keras":
        return _load_keras(path, parameter, safe_mode, compile), card
    if kind == "patchflow":
        return _load_keras(os.path.join(path, TRAINING_MODEL), parameter, safe_mode, compile), card
    return _wrap_saved_model(path, parameter), card


# ---- inference -----------------------------------------------------------------------------------


Runner = Callable[[dict[str, np.ndarray], list[str]], dict[str, np.ndarray]]


def static_side(shape) -> int | None:
    """The side of a (n, side, side, bands) input of fixed square size, else None."""
    dims = list(shape) if getattr(shape, "rank", len(shape)) is not None else []
    if len(dims) != 4 or dims[1] is None or dims[1] != dims[2]:
        return None
    return int(dims[1])


class InferenceModel:
    """Named inputs (normalised float32 arrays, (n, h, w, bands)) in, named outputs out."""

    _loaded: object  # a loaded SavedModel, kept alive while its signature runs (set by ``open``)

    def __init__(self, path: str, card: ModelCard | None, input_names: list[str], output_names: list[str],
                 input_bands: dict[str, int | None], runner: Runner, parameter: str = "MODEL") -> None:
        self.path, self.card, self.parameter = path, card, parameter
        self.input_names, self.output_names, self.input_bands = input_names, output_names, input_bands
        self._runner = runner
        self.input_sizes: dict[str, int | None] = {}  # a static square input side (rows == columns), else None

    @classmethod
    def load(cls, path: str, parameter: str = "MODEL", trusted: bool = False,
             reporter: Reporter | None = None) -> InferenceModel:
        """The model at ``path``, through the safety gate (``modelsafety.open_model``): refused if it
        can run code or touch files unless ``trusted`` (then a .keras file loads with safe mode off)."""
        from .modelsafety import open_model

        return open_model(path, trusted, parameter, reporter)

    @classmethod
    def open(cls, path: str, parameter: str, safe_mode: bool) -> InferenceModel:
        """``load`` once the gate has checked the model: call ``load`` instead."""
        kind = model_kind(path, parameter)
        card = load_card(path, parameter)
        if kind == "keras":
            return cls._from_keras(path, card, _load_keras(path, parameter, safe_mode), parameter)
        return cls._from_saved_model(path, card, parameter)

    @classmethod
    def of_keras(cls, model: keras.Model, card: ModelCard | None, parameter: str = "MODEL") -> InferenceModel:
        """A Keras model in memory (one being trained), served as a .keras file of it would be."""
        return cls._from_keras("", card, model, parameter)

    @classmethod
    def _from_saved_model(cls, path: str, card: ModelCard | None, parameter: str) -> InferenceModel:
        import tensorflow as tf

        loaded, signature = _load_saved_model(path, parameter)
        specs = _signature_inputs(signature)
        names = list(specs)
        bands = {name: spec.shape[-1] if spec.shape.rank else None for name, spec in specs.items()}
        outputs = list(signature.structured_outputs)

        def run(batch: dict[str, np.ndarray], wanted: list[str]) -> dict[str, np.ndarray]:
            values = signature(**{name: tf.constant(batch[name]) for name in names})
            return {name: values[name].numpy() for name in wanted}

        model = cls(path, card, names, outputs, bands, run, parameter)
        model._loaded = loaded  # keeps the signature's variables alive
        model.input_sizes = {name: static_side(spec.shape) for name, spec in specs.items()}
        return model

    @classmethod
    def _from_keras(cls, path: str, card: ModelCard | None, model: keras.Model, parameter: str) -> InferenceModel:
        """The model's own outputs, plus "features" (a layer of that name) and "class" (argmax of
        "probabilities", as the card's class ids) when the model does not give them itself."""
        import keras

        names = [tensor.name for tensor in model.inputs]
        bands = {tensor.name: tensor.shape[-1] for tensor in model.inputs}
        output = model.output
        heads = dict(output) if isinstance(output, dict) else dict(
            zip(model.output_names, output if isinstance(output, (list, tuple)) else [output]))
        if "features" not in heads and "features" in {layer.name for layer in model.layers}:
            heads["features"] = model.get_layer("features").output
        runner = keras.Model(model.inputs, heads)
        derive_class = "probabilities" in heads and "class" not in heads
        class_ids = np.asarray(card.class_ids if card and card.classes else [], dtype=np.int32)

        def run(batch: dict[str, np.ndarray], wanted: list[str]) -> dict[str, np.ndarray]:
            values = runner([batch[name] for name in names], training=False)
            result = {name: np.asarray(values[name]) for name in wanted if name in values}
            if "class" in wanted and derive_class:
                index = np.argmax(np.asarray(values["probabilities"]), axis=-1)
                result["class"] = (class_ids[index] if class_ids.size else index.astype(np.int32))[..., None]
            return result

        outputs = list(heads) + (["class"] if derive_class else [])
        served = cls(path, card, names, outputs, bands, run, parameter)
        served.input_sizes = {tensor.name: static_side(tensor.shape) for tensor in model.inputs}
        return served

    def _check(self, inputs: dict[str, np.ndarray], outputs: list[str]) -> int:
        unknown = [name for name in outputs if name not in self.output_names]
        if unknown:
            raise PatchFlowError(f"the model has no output {', '.join(unknown)}; its outputs: "
                                 f"{', '.join(self.output_names)}.", self.parameter)
        counts = set()
        for name in self.input_names:
            if name not in inputs:
                raise PatchFlowError(f"no values for the model's input '{name}' (inputs: "
                                     f"{', '.join(self.input_names)}).", self.parameter)
            array = inputs[name]
            expected = self.input_bands.get(name)
            if array.ndim != 4 or (expected is not None and array.shape[-1] != expected):
                raise PatchFlowError(f"input '{name}' takes (n, rows, columns, {expected}) arrays, not "
                                     f"{tuple(array.shape)}.", self.parameter)
            counts.add(array.shape[0])
        if len(counts) > 1:
            raise PatchFlowError(f"the inputs hold different numbers of patches: {sorted(counts)}.", self.parameter)
        return counts.pop()

    def predict(self, inputs: dict[str, np.ndarray], outputs: list[str] | None = None,
                batch_size: int = 256) -> dict[str, np.ndarray]:
        """The outputs (all when None) for every patch of ``inputs``, run ``batch_size`` at a time."""
        wanted = list(outputs) if outputs is not None else list(self.output_names)
        count = self._check(inputs, wanted)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
        for start in range(0, max(count, 1), max(1, batch_size)):
            batch = {name: np.ascontiguousarray(inputs[name][start:start + batch_size], dtype=np.float32)
                     for name in self.input_names}
            for name, value in self._runner(batch, wanted).items():
                parts[name].append(value)
        return {name: np.concatenate(values, axis=0) for name, values in parts.items()}


def save_serving_model(path: str, serve: Callable, signature: dict, tracked: keras.Model, model: keras.Model,
                       card: ModelCard) -> None:
    """PatchFlow's SavedModel directory at ``path``: ``serve`` (inputs named as in ``signature``, a dict
    of ``tf.TensorSpec``) as its serving signature, over the variables of ``tracked``; beside it the
    training model (``model.keras``, for fine-tuning) and the card."""
    import tensorflow as tf

    module = tf.Module()
    module.model = tracked
    module.serve = tf.function(serve, input_signature=[signature])
    tf.saved_model.save(module, path, signatures={SIGNATURE: module.serve.get_concrete_function()})
    model.save(os.path.join(path, TRAINING_MODEL))
    card.save(path)
