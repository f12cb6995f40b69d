"""The super-resolution generator of the model zoo (SR4RS-style) and its export.

``sr_generator``: a 9 x 9 convolution, residual blocks (conv 3 x 3, ReLU, conv 3 x 3, added back),
a convolution closing the residual trunk (added to the first features), then x2 upsampling stages
(sub-pixel convolution: a convolution to 4x the channels and depth-to-space) until the scale is
reached, and a 9 x 9 convolution to the output bands. With ``global_skip`` the input, upsampled
bilinearly, is added to the output: the network learns the detail bicubic-like upsampling misses.

The network works on standardised values: its input with the LR source's mean/std (the card's
input normalisation), its output with the HR source's (``card.parameters["output_normalization"]``);
the exported SavedModel turns its output back into the HR image's units, so Apply model writes
radiometric values at the finer resolution.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..errors import PatchFlowError
from .modelcard import InputSpec, ModelCard, Normalization, OutputSpec
from .modelio import save_serving_model

if TYPE_CHECKING:
    import keras

ARCHITECTURE = "sr_generator"
TASK = "super_resolution"
DEFAULT_WIDTH = 64
DEFAULT_BLOCKS = 8


def check_scale(scale: float) -> int:
    """The scale as a power of two (x2 stages), or an error naming SCALE."""
    factor = int(round(scale))
    if abs(scale - factor) > 1e-6 or factor < 2 or factor & (factor - 1):
        raise PatchFlowError(f"the SR generator upsamples by powers of two (2, 4, 8), not {scale:g}. Build the "
                             "dataset with one of these scales.", "SCALE")
    return factor


def build_sr_generator(spec: InputSpec, out_bands: int, scale: float, output_normalization: Normalization,
                       width: int | None = None, blocks: int = DEFAULT_BLOCKS, global_skip: bool = True,
                       seed: int | None = None) -> tuple[keras.Model, ModelCard]:
    import keras
    from keras import layers

    factor = check_scale(scale)
    width = width or DEFAULT_WIDTH
    for norm, bands, what in ((spec.normalization, spec.bands, "input"), (output_normalization, out_bands, "output")):
        if norm.kind == "standard" and (len(norm.mean or []) != bands or len(norm.std or []) != bands):
            raise PatchFlowError(f"the {what} normalisation has {len(norm.mean or [])} band(s) for {bands} band(s).",
                                 "MODEL")
    counter = iter(range(1, 10_000))

    def init():
        return keras.initializers.GlorotUniform(seed=None if seed is None else seed * 1000 + next(counter))

    def conv(x, channels, size, name, activation=None):
        return layers.Conv2D(channels, size, padding="same", activation=activation, name=name,
                             kernel_initializer=init())(x)

    inputs = keras.Input((None, None, spec.bands), name=spec.name, dtype="float32")
    head = conv(inputs, width, 9, "head", "relu")
    x = head
    for index in range(blocks):
        y = conv(x, width, 3, f"block{index + 1}_conv1", "relu")
        y = conv(y, width, 3, f"block{index + 1}_conv2")
        x = layers.Add(name=f"block{index + 1}_add")([x, y])
    x = layers.Add(name="trunk_add")([head, conv(x, width, 3, "trunk")])
    for stage in range(int(math.log2(factor))):
        x = conv(x, width * 4, 3, f"up{stage + 1}_conv")
        x = pixel_shuffle_layer(name=f"up{stage + 1}_shuffle")(x)
        x = layers.ReLU(name=f"up{stage + 1}_relu")(x)
    output = conv(x, out_bands, 9, "image_conv")
    if global_skip and out_bands == spec.bands:
        upsampled = bilinear_layer(factor=factor, name="skip_upsample")(inputs)
        output = layers.Add(name="image")([output, upsampled])
    else:
        output = layers.Identity(name="image")(output)
    model = keras.Model(inputs, output, name=ARCHITECTURE)
    card = ModelCard(
        architecture=ARCHITECTURE, task=TASK, inputs=[spec],
        outputs=[OutputSpec("image", "image", out_bands, scale_factor=float(factor),
                            description=f"the super-resolved image, x{factor}, in the HR image's units")],
        receptive_field=spec.patch_size, expression_field=spec.patch_size * factor, crop_margin=8 * factor,
        scale_factor=float(factor),
        parameters={"width": width, "blocks": blocks, "global_skip": bool(global_skip and out_bands == spec.bands),
                    "seed": seed, "n_parameters": int(model.count_params()),
                    "output_normalization": {"mean": list(output_normalization.mean or []),
                                             "std": list(output_normalization.std or [])}})
    return model, card


_PIXEL_SHUFFLE: list = []


def pixel_shuffle_layer(**kwargs):
    """Depth-to-space by 2 as a registered Keras layer (a .keras file then loads in safe mode)."""
    if not _PIXEL_SHUFFLE:
        import keras

        @keras.saving.register_keras_serializable(package="patchflow")
        class PixelShuffle(keras.layers.Layer):
            def call(self, x):
                import tensorflow as tf

                return tf.nn.depth_to_space(x, 2)

            def compute_output_shape(self, shape):
                rows = None if shape[1] is None else shape[1] * 2
                cols = None if shape[2] is None else shape[2] * 2
                return (shape[0], rows, cols, shape[3] // 4)

        _PIXEL_SHUFFLE.append(PixelShuffle)
    return _PIXEL_SHUFFLE[0](**kwargs)


_BILINEAR: list = []


def bilinear_layer(**kwargs):
    """Bilinear upsampling by an integer factor for images of any size (UpSampling2D needs known
    sizes), as a registered Keras layer."""
    if not _BILINEAR:
        import keras

        @keras.saving.register_keras_serializable(package="patchflow")
        class BilinearUpsample(keras.layers.Layer):
            def __init__(self, factor: int = 2, **options):
                super().__init__(**options)
                self.factor = int(factor)

            def call(self, x):
                import tensorflow as tf

                size = tf.shape(x)[1:3] * self.factor
                return tf.image.resize(x, size, method="bilinear")

            def compute_output_shape(self, shape):
                rows = None if shape[1] is None else shape[1] * self.factor
                cols = None if shape[2] is None else shape[2] * self.factor
                return (shape[0], rows, cols, shape[3])

            def get_config(self):
                return {**super().get_config(), "factor": self.factor}

        _BILINEAR.append(BilinearUpsample)
    return _BILINEAR[0](**kwargs)


def register_layers() -> None:
    """Make the generator's layers known to Keras before a .keras file holding them is loaded."""
    pixel_shuffle_layer()
    bilinear_layer()


def output_normalization(card: ModelCard) -> Normalization:
    values = (card.parameters or {}).get("output_normalization") or {}
    if not values.get("mean"):
        return Normalization()
    return Normalization("standard", [float(v) for v in values["mean"]], [float(v) for v in values["std"]])


def record_target_range(card: ModelCard, bands: list[dict]) -> ModelCard:
    """The training target's per-band [min, max] (a dataset manifest's statistics) on the card's image
    outputs, so Apply model can clip what the model writes to the range it was trained on (CLIP)."""
    if any(b.get("min") is None or b.get("max") is None for b in bands):
        return card  # a band without data: no range known
    value_range = [[float(b["min"]), float(b["max"])] for b in bands]
    for spec in card.outputs_of_kind("image"):
        if spec.channels in (0, len(bands)):
            spec.value_range = value_range
    return card


def export_sr_model(model: keras.Model, card: ModelCard, path: str) -> None:
    """SavedModel serving "image" in the HR image's units (the output de-standardised), plus
    model.keras and the card."""
    import tensorflow as tf

    spec = card.inputs[0]
    norm = output_normalization(card)
    mean = np.asarray(norm.mean or [0.0], np.float32)
    std = np.asarray(norm.std or [1.0], np.float32)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    signature = {spec.name: tf.TensorSpec([None, None, None, spec.bands], tf.float32, name=spec.name)}

    def serve(inputs):
        return {"image": model(inputs[spec.name], training=False) * std + mean}

    save_serving_model(path, serve, signature, model, model, card)
