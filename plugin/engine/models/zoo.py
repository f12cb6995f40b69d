"""The model zoo: ready-to-train networks built from a few parameters, each with its model card,
and their export as a TensorFlow SavedModel whose ``serving_default`` signature gives classes,
probabilities and deep features (and OTBTF-style cropped outputs for seamless serving).

* ``patch_cnn``: the small patch-based CNN of OTBTF's tutorial (16 × 16 patch → one class);
  fully convolutional, so on a larger image it gives one value per 4 pixels.
* ``fcnn``: the U-Net-like FCNN of OTBTF's API tutorial (4 strided convolutions, 4 transposed
  convolutions with additive skips, softmax) → one class per pixel.
* ``unet``: a U-Net with batch normalisation (4 levels, concatenated skips) → one class per pixel.
* ``fusion_cnn``, ``fusion_unet``: one input per image source of a multi-source dataset (models/fusion.py).

Keras and TensorFlow are imported inside functions: importing this module costs nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..data.manifest import load_manifest
from ..errors import Cancelled, PatchFlowError
from ..geodata.classes import complete
from ..ownership import check_replaceable
from ..params import Params, RunContext
from ..reporting import Reporter
from .fusion import FUSION, build_fusion, check_fusion, describe_inputs, fusion_specs, spec_of
from .modelcard import InputSpec, ModelCard, Normalization, OutputSpec, card_path
from .modelio import import_tensorflow, save_serving_model

if TYPE_CHECKING:
    import keras

CROPS = (16, 32)  # OTBTF ModelBase's <name>_crop16 / _crop32 outputs


@dataclass(frozen=True)
class Architecture:
    name: str
    task: str  # "classification" (one class per patch) or "segmentation" (one class per pixel)
    default_width: int
    patch_size: int | None = None  # the only training patch size allowed, if any
    patch_multiple: int = 1  # else: training patch sizes must be a multiple of this
    min_segmentation_patch: int = 0  # the least label patch it learns from (smaller: little but padding inside)

    def patch_size_problem(self, size: int) -> str | None:
        """Why ``size`` cannot be this architecture's training patch size, or None."""
        if self.patch_size is not None and size != self.patch_size:
            return (f"{self.name} is trained on {self.patch_size} × {self.patch_size} patches, not {size}; "
                    f"extract {self.patch_size} × {self.patch_size} patches or choose fcnn or unet.")
        if size < self.patch_multiple or size % self.patch_multiple:
            return f"{self.name} needs a patch size that is a multiple of {self.patch_multiple}, not {size}; " \
                   f"use a multiple of {self.patch_multiple} (e.g. {max(1, round(size / 16)) * 16})."
        return None

    def segmentation_patch_problem(self, size: int) -> str | None:
        """Why ``size`` px patches are too small to train this architecture on label patches, or None."""
        if size >= self.min_segmentation_patch:
            return None
        depth = self.patch_multiple.bit_length() - 1
        return (f"{self.name} learns from patches of {self.min_segmentation_patch} px or more: its {depth} "
                f"poolings leave {max(1, size // self.patch_multiple)} px of a {size} px patch at its bottom, where "
                "its 3 x 3 convolutions see mostly padding, and Apply model serves it with far more context than it "
                f"was trained on. Extract the patches again with PATCH_SIZE1 {self.min_segmentation_patch} and "
                f"LABEL_PATCH_SIZE {self.min_segmentation_patch} (or more), or choose fcnn")


ARCHITECTURES: dict[str, Architecture] = {
    # small CNN: conv 5×5, max-pool, conv 3×3, max-pool, conv 2×2, dense, softmax; trained on 16 × 16 patches
    # (one class each); fully convolutional, it then classifies any image with one value per 4 pixels
    "patch_cnn": Architecture("patch_cnn", "classification", 16, patch_size=16),
    # fully convolutional: 4 strided 3×3 convolutions, 4 transposed convolutions with additive skips, softmax
    "fcnn": Architecture("fcnn", "segmentation", 16, patch_multiple=16),
    # U-Net: 4 levels of (conv 3×3, batch norm, ReLU) × 2 with max-pooling, transposed convolutions and
    # concatenated skips, softmax; 4 poolings: at 64 px its bottom level still has 4 x 4 px
    "unet": Architecture("unet", "segmentation", 32, patch_multiple=16, min_segmentation_patch=64),
    # 9×9 convolution, 8 residual blocks, ×2 sub-pixel upsampling stages to the dataset's scale, 9×9
    # convolution, plus the input upsampled bilinearly (global skip); LR → HR
    "sr_generator": Architecture("sr_generator", "super_resolution", 64),
    # one branch per image source, each to its own (fixed) patch, flattened, fused dense features (fusion.py)
    "fusion_cnn": Architecture("fusion_cnn", "classification", 16),
    # coarser sources upsampled (bilinear, integer ratio) to source 1's grid, concatenated, then unet
    "fusion_unet": Architecture("fusion_unet", "segmentation", 32, patch_multiple=16, min_segmentation_patch=64),
}


# ---- building ------------------------------------------------------------------------------------


class _Initializers:
    """A distinct seeded Glorot initializer per layer, so the same seed gives the same weights
    without touching the process's global random state."""

    def __init__(self, seed: int | None) -> None:
        self.seed, self.count = seed, 0

    def __call__(self):
        import keras

        self.count += 1
        return keras.initializers.GlorotUniform(seed=None if self.seed is None else self.seed * 1000 + self.count)


def _input_tensors(inputs: list[InputSpec]):
    import keras

    tensors = [keras.Input((None, None, spec.bands), name=spec.name, dtype="float32") for spec in inputs]
    if len(tensors) == 1:
        return tensors, tensors[0]
    return tensors, keras.layers.Concatenate(name="inputs")(tensors)


def _patch_cnn(x, n_classes: int, width: int, init: _Initializers):
    from keras import layers

    x = layers.Conv2D(width, 5, activation="relu", name="conv1", kernel_initializer=init())(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(width, 3, activation="relu", name="conv2", kernel_initializer=init())(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Conv2D(2 * width, 2, activation="relu", name="features", kernel_initializer=init())(x)
    return layers.Conv2D(n_classes, 1, name="dense", kernel_initializer=init())(x)


def _fcnn(x, n_classes: int, width: int, init: _Initializers):
    from keras import layers

    def conv(inp, depth, name):
        return layers.Conv2D(depth, 3, strides=2, activation="relu", padding="same", name=name,
                             kernel_initializer=init())(inp)

    def tconv(inp, depth, name, activation="relu"):
        return layers.Conv2DTranspose(depth, 3, strides=2, activation=activation, padding="same", name=name,
                                      kernel_initializer=init())(inp)

    conv1 = conv(x, width, "conv1")
    conv2 = conv(conv1, 2 * width, "conv2")
    conv3 = conv(conv2, 4 * width, "conv3")
    conv4 = conv(conv3, 4 * width, "conv4")
    up1 = layers.Add(name="skip1")([tconv(conv4, 4 * width, "tconv1"), conv3])
    up2 = layers.Add(name="skip2")([tconv(up1, 2 * width, "tconv2"), conv2])
    features = layers.Add(name="features")([tconv(up2, width, "tconv3"), conv1])
    return tconv(features, n_classes, "classifier", None)


def _unet(x, n_classes: int, width: int, init: _Initializers):
    from keras import layers

    def block(inp, depth, name, last_name=None):
        for index in (1, 2):
            inp = layers.Conv2D(depth, 3, padding="same", use_bias=False, name=f"{name}_conv{index}",
                                kernel_initializer=init())(inp)
            inp = layers.BatchNormalization(name=f"{name}_bn{index}")(inp)
            inp = layers.ReLU(name=last_name if index == 2 and last_name else f"{name}_relu{index}")(inp)
        return inp

    depths = [width, 2 * width, 4 * width, 8 * width]
    skips = []
    for level, depth in enumerate(depths, start=1):
        x = block(x, depth, f"enc{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = block(x, 16 * width, "bottom")
    for level in range(len(depths), 0, -1):
        depth = depths[level - 1]
        x = layers.Conv2DTranspose(depth, 2, strides=2, name=f"up{level}", kernel_initializer=init())(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level - 1]])
        x = block(x, depth, f"dec{level}", last_name="features" if level == 1 else None)
    return layers.Conv2D(n_classes, 1, name="classifier", kernel_initializer=init())(x)


_BUILDERS = {"patch_cnn": _patch_cnn, "fcnn": _fcnn, "unet": _unet}


def crops_for(patch_size: int) -> list[int]:
    """The OTBTF crops worth serving for a model trained on ``patch_size``: a margin of at most
    half the training patch (OTBTF's tutorial trains on 64 and serves ``_crop32``)."""
    return [crop for crop in CROPS if crop <= patch_size // 2]


def _card(arch: Architecture, inputs: list[InputSpec], classes: list[dict], width: int,
          seed: int | None) -> ModelCard:
    n_classes, patch = len(classes), inputs[0].patch_size
    if arch.name == "patch_cnn":
        stride, feature_channels, feature_stride, crops = 4, 2 * width, 4, []
        receptive, expression = patch, 1
    else:
        stride, feature_channels, feature_stride, crops = 1, width, 2 if arch.name == "fcnn" else 1, crops_for(patch)
        receptive = expression = patch
    outputs = [
        OutputSpec("probabilities", "probabilities", n_classes, stride=stride,
                   description="softmax probability of each class, in the card's class order"),
        OutputSpec("class", "class", 1, stride=stride, description="class id (argmax of the probabilities)"),
        OutputSpec("features", "features", feature_channels, stride=feature_stride,
                   description="deep features of the last layer before the classifier"),
    ]
    for crop in crops:
        outputs.append(OutputSpec(f"probabilities_crop{crop}", "probabilities", n_classes, crop=crop, stride=stride,
                                  description=f"probabilities without {crop} px on each side"))
        outputs.append(OutputSpec(f"class_crop{crop}", "class", 1, crop=crop, stride=stride,
                                  description=f"class ids without {crop} px on each side"))
    return ModelCard(
        architecture=arch.name, task=arch.task, inputs=inputs, outputs=outputs,
        receptive_field=receptive, expression_field=expression, crop_margin=16 if 16 in crops else 0,
        classes=[{"id": int(c["id"]), "name": str(c["name"]), "color": str(c["color"])} for c in classes],
        parameters={"width": width, "seed": seed, "n_parameters": 0})


def check_build(architecture: str, inputs: list[InputSpec], classes: list[dict]) -> Architecture:
    """The architecture, after checking it can be built for these inputs and classes."""
    arch = ARCHITECTURES.get(architecture)
    if arch is None:
        raise PatchFlowError(f"unknown architecture '{architecture}'; choose one of: {', '.join(ARCHITECTURES)}.",
                             "ARCHITECTURE")
    if not inputs:
        raise PatchFlowError("a model needs at least one input.", "BANDS")
    if arch.name in FUSION:
        check_fusion(arch, inputs)
    for spec in inputs if arch.name not in FUSION else []:
        if spec.bands < 1:
            raise PatchFlowError(f"input {spec.name} has {spec.bands} bands; a model needs 1 band or more.", "BANDS")
        problem = arch.patch_size_problem(spec.patch_size)
        if problem:
            raise PatchFlowError(problem, "PATCH_SIZE")
    if len({spec.patch_size for spec in inputs}) > 1 and arch.name not in FUSION:
        raise PatchFlowError(f"{arch.name} stacks its inputs, so they need the same patch size; got "
                             f"{[spec.patch_size for spec in inputs]}.", "PATCH_SIZE")
    if len(classes) < 2:
        raise PatchFlowError(f"a classifier needs 2 classes or more, not {len(classes)}.", "N_CLASSES")
    return arch


def build_model(architecture: str, inputs: list[InputSpec], classes: list[dict], width: int | None = None,
                seed: int | None = None) -> tuple[keras.Model, ModelCard]:
    """The training model (one output "probabilities", softmax channels last) and its card."""
    import keras

    arch = check_build(architecture, inputs, classes)
    width = width or arch.default_width
    if width < 1:
        raise PatchFlowError(f"the width must be 1 or more, not {width}.", "WIDTH")
    if arch.name in FUSION:
        return build_fusion(arch, inputs, classes, width, seed)
    tensors, stacked = _input_tensors(inputs)
    logits = _BUILDERS[arch.name](stacked, len(classes), width, _Initializers(seed))
    probabilities = keras.layers.Softmax(name="probabilities")(logits)
    model = keras.Model(tensors if len(tensors) > 1 else tensors[0], probabilities, name=arch.name)
    card = _card(arch, inputs, classes, width, seed)
    card.parameters["n_parameters"] = int(model.count_params())
    return model, card


# ---- export --------------------------------------------------------------------------------------


def _heads(model: keras.Model, card: ModelCard) -> tuple[keras.Model, bool]:
    """A model giving [probabilities, features] (features when the card lists a features
    output), sharing ``model``'s layers; and whether it gives features."""
    import keras

    output = model.output
    if isinstance(output, dict):
        output = output.get("probabilities", next(iter(output.values())) if len(output) == 1 else None)
    elif isinstance(output, (list, tuple)):
        output = output[0] if len(output) == 1 else None
    if output is None:
        raise PatchFlowError("the model has several outputs and none is named 'probabilities'; "
                             "give it one softmax output.", "MODEL")
    channels = output.shape[-1]
    if card.classes and channels not in (None, len(card.classes)):
        raise PatchFlowError(f"the model gives {channels} channels but the card lists {len(card.classes)} "
                             "classes.", "MODEL")
    wants_features = bool(card.outputs_of_kind("features"))
    names = {layer.name for layer in model.layers}
    if wants_features and "features" not in names:
        raise PatchFlowError("the card lists a features output but the model has no layer named 'features'.",
                             "MODEL")
    heads = [output, model.get_layer("features").output] if wants_features else [output]
    return keras.Model(model.inputs, heads), wants_features


def _input_order(model: keras.Model, card: ModelCard) -> list[str]:
    """Card input names in the order the model takes its inputs."""
    model_names = [tensor.name for tensor in model.inputs]
    card_names = [spec.name for spec in card.inputs]
    if sorted(model_names) == sorted(card_names):
        return model_names
    if len(model_names) == len(card_names) == 1:
        return card_names
    raise PatchFlowError(f"the model's inputs {model_names} are not the card's inputs {card_names}.", "MODEL")


def _cropped(tensor, crop: int):
    return tensor[:, crop:-crop, crop:-crop, :] if crop else tensor


def export_model(model: keras.Model, card: ModelCard, path: str) -> None:
    """A SavedModel directory at ``path`` serving every output the card lists, plus the training
    model (``model.keras``, for fine-tuning) and the card."""
    import tensorflow as tf

    from .srmodel import TASK, export_sr_model

    if card.task == TASK or (card.outputs and all(spec.kind == "image" for spec in card.outputs)):
        export_sr_model(model, card, path)
        return

    heads, with_features = _heads(model, card)
    order = _input_order(model, card)
    bands = {spec.name: spec.bands for spec in card.inputs}
    n_classes = card.n_classes or int(heads.outputs[0].shape[-1])
    class_ids = tf.constant(card.class_ids or list(range(n_classes)), tf.int32)
    specs = {name: tf.TensorSpec([None, None, None, bands[name]], tf.float32, name=name) for name in order}
    for spec in card.outputs:
        if spec.kind not in ("probabilities", "class", "features"):
            raise PatchFlowError(f"the card's output {spec.name} is of kind '{spec.kind}', which a classifier "
                                 "cannot serve.", "MODEL")

    def serve(inputs):
        values = heads([inputs[name] for name in order], training=False)
        values = values if isinstance(values, (list, tuple)) else [values]
        probabilities = values[0]
        base = {"probabilities": probabilities,
                "class": tf.expand_dims(tf.gather(class_ids, tf.argmax(probabilities, -1, output_type=tf.int32)), -1)}
        if with_features:
            base["features"] = values[1]
        return {spec.name: _cropped(base[spec.kind], spec.crop) for spec in card.outputs}

    save_serving_model(path, serve, specs, heads, model, card)


# ---- the operation -------------------------------------------------------------------------------


def _default_classes(count: int) -> list[dict]:
    return [{"id": c.id, "name": c.name, "color": c.color} for c in complete(list(range(count)), {})]


def _from_dataset(params: Params, path: str, architecture: str, reporter: Reporter) -> tuple[list[InputSpec],
                                                                                            list[dict]]:
    manifest = load_manifest(path, "DATASET")
    if ARCHITECTURES[architecture].task == "segmentation" and not any(
            s.get("role") == "label" for s in manifest["sources"]):
        reporter.warning(f"{path} has no label patches (one class per pixel), which {architecture} learns "
                         "from; extract patches with a LABEL_RASTER to train it.")
    images = [s for s in manifest["sources"] if s.get("role", "image") == "image"]
    if not images:
        raise PatchFlowError(f"{path} has no image source to feed a model.", "DATASET")
    specs = fusion_specs(manifest) if architecture in FUSION else [spec_of(images[0]["name"], images[0])]
    for name, value in (("BANDS", specs[0].bands), ("PATCH_SIZE", specs[0].patch_size)):
        given = params.integer(name)
        if given is not None and given != value:
            raise PatchFlowError(f"{given} differs from the dataset's {value}; leave it empty or choose another "
                                 "dataset.", name)
    classes = [{"id": c["id"], "name": c["name"], "color": c["color"]} for c in manifest.get("classes") or []]
    if len(classes) < 2:
        raise PatchFlowError(f"the dataset has {len(classes)} classes; a classifier needs 2 or more (extract "
                             "patches with a class field or a label raster).", "DATASET")
    return specs, classes


def _check_output(path: str, overwrite: bool) -> None:
    check_replaceable(path, overwrite, "OUTPUT", "SavedModel folder")


def _create_sr(params: Params, context: RunContext, dataset: str | None) -> dict[str, Any]:
    """The SR generator for a super-resolution dataset (its LR input, HR bands and scale)."""
    from .srmodel import build_sr_generator

    if not dataset:
        raise PatchFlowError("the super-resolution generator is built for a dataset: give the DATASET made by "
                             "'Build super-resolution dataset'.", "DATASET")
    manifest = load_manifest(dataset, "DATASET")
    targets = [s for s in manifest["sources"] if s.get("role") == "target"]
    images = [s for s in manifest["sources"] if s.get("role", "image") == "image"]
    if not targets or not images:
        raise PatchFlowError(f"{dataset} is not a super-resolution dataset (no low-resolution image and "
                             "high-resolution target sources).", "DATASET")
    low, high = images[0], targets[0]
    spec = InputSpec("x1", len(low["bands"]), int(low["patch_size"]), low["name"],
                     Normalization.from_stats(low["bands"]))
    output = os.path.abspath(params.string("OUTPUT"))
    _check_output(output, params.boolean("OVERWRITE"))
    import_tensorflow(context.reporter, 2, 30)
    context.reporter.stage("building the sr_generator model", 30, 45)
    model, card = build_sr_generator(spec, len(high["bands"]), int(high["patch_size"]) / int(low["patch_size"]),
                                     Normalization.from_stats(high["bands"]), params.integer("WIDTH"),
                                     seed=params.integer("SEED"))
    staged = context.staging.stage(output, "OUTPUT")
    card.parameters["dataset"] = dataset
    context.reporter.stage("exporting the SavedModel, model.keras and the model card", 45, 98)
    export_model(model, card, staged)
    context.reporter.log(f"sr_generator: {card.parameters['n_parameters']:,} parameters, x{card.scale_factor:g}, "
                         f"input {spec.patch_size}×{spec.patch_size}×{spec.bands}")
    context.reporter.progress(100)
    return {"OUTPUT": output, "CARD": card_path(output), "PARAMETERS": card.parameters["n_parameters"]}


def run_create_model(params: Params, context: RunContext) -> dict[str, Any]:
    """Build a zoo model (from a dataset manifest or from BANDS/PATCH_SIZE/N_CLASSES) and write
    it as a SavedModel directory with its card."""
    from .. import checks

    checks.writable(params, "OUTPUT")
    architecture = params.choice("ARCHITECTURE")
    dataset = params.string("DATASET")
    if ARCHITECTURES[architecture].task == "super_resolution":
        return _create_sr(params, context, dataset)
    if dataset:
        specs, classes = _from_dataset(params, dataset, architecture, context.reporter)
    elif architecture in FUSION:
        raise PatchFlowError(f"{architecture} takes one input per image source of a dataset: give the DATASET (patches "
                             "extracted from 2 sources or more); BANDS and PATCH_SIZE describe one source.", "DATASET")
    else:
        specs = [InputSpec("source1", params.integer("BANDS", required=True),
                           params.integer("PATCH_SIZE", required=True))]
        n_classes = params.integer("N_CLASSES", required=True)
        if n_classes < 2:
            raise PatchFlowError(f"a classifier needs 2 classes or more, not {n_classes}.", "N_CLASSES")
        classes = _default_classes(n_classes)
    width = params.integer("WIDTH")
    seed = params.integer("SEED")
    output = os.path.abspath(params.string("OUTPUT"))
    _check_output(output, params.boolean("OVERWRITE"))
    check_build(architecture, specs, classes)

    staged = context.staging.stage(output, "OUTPUT")
    import_tensorflow(context.reporter, 2, 30)
    context.reporter.stage(f"building the {architecture} model", 30, 45)
    model, card = build_model(architecture, specs, classes, width, seed)
    if context.cancelled():
        raise Cancelled()
    card.parameters["dataset"] = dataset
    context.reporter.stage("exporting the SavedModel, model.keras and the model card", 45, 98)
    export_model(model, card, staged)
    n_parameters = card.parameters["n_parameters"]
    context.reporter.log(
        f"{architecture}: {n_parameters:,} parameters, input {describe_inputs(specs)}, {len(classes)} classes, "
        f"receptive field {card.receptive_field} px, expression field "
        f"{card.expression_field} px, outputs {', '.join(o.name for o in card.outputs)}")
    context.reporter.progress(100)
    return {"OUTPUT": output, "CARD": card_path(output), "PARAMETERS": n_parameters}
