"""Fusion models of the zoo: one input per image source of a multi-source dataset, each at its own
resolution and patch size (the OTBTF / M3Fusion idea), registered in zoo's ARCHITECTURES.

* ``fusion_cnn``: a patch classifier with one CNN branch per source, each sized to its own patch (16 px at
  28.5 m and 8 px at 57 m, or 20 px at 1.5 m and 3 px at 10 m: any ratio; convolutions with batch norm)
  and ending in its last feature map flattened, which keeps where in the patch each feature is (the centre
  pixel is the one classified; a global pooling would throw that away), so each input takes its card's
  patch size only; the branches' features are concatenated, then a dense layer ``features`` (the deep
  features), then dense to the classes and softmax: (n, classes). Served patch by patch.
* ``fusion_unet``: fully convolutional; each coarser source is upsampled inside the network (bilinear, by the
  integer ratio k_i of its pixel size to source 1's: srmodel's registered BilinearUpsample, as UpSampling2D's
  bilinear mode cannot be traced for images of unknown size) to source 1's grid, concatenated with source 1, then the
  zoo's U-Net: one class per pixel of source 1. Source 1 is the finest, and p_i * k_i = p_1 (the patches
  cover the same ground).

Keras is imported inside functions; zoo imports this module, which imports zoo only inside functions.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..errors import PatchFlowError
from .modelcard import InputSpec, ModelCard, Normalization, OutputSpec

if TYPE_CHECKING:
    import keras

    from .zoo import Architecture

FUSION = ("fusion_cnn", "fusion_unet")
RATIO_TOLERANCE = 0.01  # a resolution ratio within 1 % of an integer is that integer


def source_pixel_size(source: dict) -> float | None:
    """|dx| of a dataset manifest's source entry (None when the manifest does not record it)."""
    size = source.get("pixel_size")
    return abs(float(size[0])) if size and size[0] is not None else None


def spec_of(name: str, source: dict) -> InputSpec:
    """The model input ``name`` fed by the manifest's ``source`` (bands, patch size, stats, pixel size)."""
    return InputSpec(name, len(source["bands"]), int(source["patch_size"]), source["name"],
                     Normalization.from_stats(source["bands"]), source_pixel_size(source))


def fusion_specs(manifest: dict, inputs_text: str | None = None) -> list[InputSpec]:
    """One input per image source (x1, x2, ... in the manifest's order), or those INPUTS names ('x1=a;x2=b')."""
    sources = manifest.get("sources") or []
    if not inputs_text:
        images = [s for s in sources if s.get("role", "image") == "image"]
        return [spec_of(f"x{index}", source) for index, source in enumerate(images, start=1)]
    by_name = {s["name"]: s for s in sources}
    specs = []
    for item in inputs_text.replace(",", ";").split(";"):
        name, _, source = (part.strip() for part in item.partition("="))
        if not name:
            continue
        if source not in by_name:
            raise PatchFlowError(f"the dataset has no source '{source}' (INPUTS {name}={source}); it has: "
                                 f"{', '.join(by_name)}.", "INPUTS")
        specs.append(spec_of(name, by_name[source]))
    return specs


def describe_inputs(inputs: list[InputSpec]) -> str:
    """'x1 <- source1 16x16x6 at 28.5 m; x2 <- source2 8x8x6 at 57 m'."""
    return "; ".join(f"{s.name} <- {s.source} {s.patch_size}x{s.patch_size}x{s.bands}"
                     + (f" at {s.pixel_size:g} m" if s.pixel_size else "") for s in inputs)


def ratios(inputs: list[InputSpec]) -> list[float | None]:
    """pixel_size_i / pixel_size_1 for each input (None where a pixel size is unknown)."""
    first = inputs[0].pixel_size
    return [spec.pixel_size / first if spec.pixel_size and first else None for spec in inputs]


def _upsampling_factors(arch: Architecture, inputs: list[InputSpec]) -> list[int]:
    """fusion_unet's integer upsampling factor of each input, after checking the sources fit it."""
    first = inputs[0]
    factors = [1]
    for spec, ratio in zip(inputs[1:], ratios(inputs)[1:]):
        if ratio is None:
            unknown = spec.source if first.pixel_size else first.source
            raise PatchFlowError(
                f"{arch.name} upsamples each coarser source to source 1's grid by the ratio of their pixel sizes, "
                f"but the dataset does not record the pixel size of {unknown} "
                "(patches-images described without their rasters). Extract the patches with Extract patches, or "
                "choose fusion_cnn.", "DATASET")
        factor = round(ratio)
        if ratio < 1 - RATIO_TOLERANCE:
            raise PatchFlowError(
                f"{arch.name} upsamples the coarser sources to source 1's grid, so source 1 must be the finest, but "
                f"{spec.source} has {spec.pixel_size:g} m pixels and {first.source} {first.pixel_size:g} m. Extract "
                f"the patches again with the finest raster as SOURCE1, or choose fusion_cnn.", "DATASET")
        if abs(ratio / factor - 1) > RATIO_TOLERANCE:
            raise PatchFlowError(
                f"{arch.name} upsamples {spec.source} ({spec.pixel_size:g} m) to {first.source}'s grid "
                f"({first.pixel_size:g} m) by an integer factor, but their ratio is {ratio:.3g}. Resample "
                f"{spec.source} to k x {first.pixel_size:g} m (e.g. {math.ceil(ratio) * (first.pixel_size or 0):g} m, "
                "gdal.Warp or Warp (reproject)) and extract the patches again, or choose fusion_cnn (any ratio).",
                "DATASET")
        if spec.patch_size * factor != first.patch_size:
            index, step = len(factors) + 1, math.lcm(arch.patch_multiple, factor)
            fits = [f"PATCH_SIZE{index} {first.patch_size // factor}"] if first.patch_size % factor == 0 else []
            size1 = spec.patch_size * factor if spec.patch_size * factor % arch.patch_multiple == 0 else \
                max(step, math.ceil(first.patch_size / step) * step)
            if size1 != first.patch_size:
                fits.append(f"PATCH_SIZE1 {size1} with PATCH_SIZE{index} {size1 // factor}")
            raise PatchFlowError(
                f"{arch.name}: {spec.source}'s {spec.patch_size} px patches at {factor} x source 1's pixel size cover "
                f"{spec.patch_size * factor} px of {first.source}, whose patches are {first.patch_size} px: the "
                f"patches must cover the same ground (p_i x k_i = p_1). Extract the patches with "
                f"{' or '.join(fits)}.", "PATCH_SIZE")
        factors.append(factor)
    return factors


def check_fusion(arch: Architecture, inputs: list[InputSpec]) -> None:
    """``arch`` (fusion_cnn or fusion_unet) can be built for these inputs; errors name the parameter to change."""
    if len(inputs) < 2:
        raise PatchFlowError(
            f"{arch.name} fuses 2 or more image sources (one input each), but is given {len(inputs)} (the dataset's "
            "image sources, or those INPUTS names). "
            "Extract patches from 2 sources or more (SOURCE1, SOURCE2), or choose patch_cnn, fcnn or unet for one "
            "source.", "ARCHITECTURE")
    for spec in inputs:
        if spec.bands < 1:
            raise PatchFlowError(f"input {spec.name} has {spec.bands} bands; a model needs 1 band or more.", "BANDS")
        if spec.patch_size < 1:
            raise PatchFlowError(f"input {spec.name} has {spec.patch_size} px patches.", "PATCH_SIZE")
    if arch.name == "fusion_unet":
        problem = arch.patch_size_problem(inputs[0].patch_size)
        if problem:
            raise PatchFlowError(f"{problem} (source 1's patches; the others follow the resolution ratio)",
                                 "PATCH_SIZE")
        _upsampling_factors(arch, inputs)


# ---- building ------------------------------------------------------------------------------------


def _branch(x, index: int, size: int, width: int, init):
    """(Conv 3x3, batch norm, ReLU), with a max-pooling while the patch keeps 4 px or more (at most 3), then
    the same with 2 x width, flattened: the branch keeps where in the patch each feature is (the patch's
    centre pixel is the one classified), so the input's patch size is fixed (``size`` px, the card's). Batch
    norm: on NC it gave a higher test kappa than without (and than global pooling), over 3 seeds
    (scripts/fusion_experiment.py)."""
    from keras import layers

    def conv(tensor, depth: int, level: int):
        tensor = layers.Conv2D(depth, 3, padding="same", use_bias=False, name=f"b{index}_conv{level}",
                               kernel_initializer=init())(tensor)
        tensor = layers.BatchNormalization(name=f"b{index}_bn{level}")(tensor)
        return layers.ReLU(name=f"b{index}_relu{level}")(tensor)

    pools = 0
    while pools < 3 and size // 2 ** (pools + 1) >= 4:
        pools += 1
    for level in range(1, pools + 1):
        x = layers.MaxPooling2D(2, name=f"b{index}_pool{level}")(conv(x, width, level))
    return layers.Flatten(name=f"b{index}_flat")(conv(x, 2 * width, pools + 1))


def _outputs(n_classes: int, features: int, stride: int) -> list[OutputSpec]:
    return [
        OutputSpec("probabilities", "probabilities", n_classes, stride=stride,
                   description="softmax probability of each class, in the card's class order"),
        OutputSpec("class", "class", 1, stride=stride, description="class id (argmax of the probabilities)"),
        OutputSpec("features", "features", features, stride=stride,
                   description="deep features of the last layer before the classifier"),
    ]


def build_fusion(arch: Architecture, inputs: list[InputSpec], classes: list[dict], width: int,
                 seed: int | None) -> tuple[keras.Model, ModelCard]:
    """The training model (inputs x1..xn at their own sizes, output "probabilities") and its card."""
    import keras
    from keras import layers

    from . import zoo

    check_fusion(arch, inputs)
    init = zoo._Initializers(seed)
    fixed = arch.name == "fusion_cnn"  # flattened branches: each input at its own (the card's) patch size
    tensors = [keras.Input((spec.patch_size if fixed else None, spec.patch_size if fixed else None, spec.bands),
                           name=spec.name, dtype="float32") for spec in inputs]
    card_classes = [{"id": int(c["id"]), "name": str(c["name"]), "color": str(c["color"])} for c in classes]
    parameters = {"width": width, "seed": seed, "n_parameters": 0,
                  "resolution_ratios": [None if r is None else round(r, 6) for r in ratios(inputs)]}
    if arch.name == "fusion_cnn":
        branches = [_branch(t, i, s.patch_size, width, init) for i, (t, s) in enumerate(zip(tensors, inputs), 1)]
        fused = layers.Concatenate(name="fused")(branches)
        features = layers.Dense(4 * width, activation="relu", name="features", kernel_initializer=init())(fused)
        logits = layers.Dense(len(classes), name="classifier", kernel_initializer=init())(features)
        card = ModelCard(arch.name, arch.task, inputs, _outputs(len(classes), 4 * width, 1),
                         receptive_field=inputs[0].patch_size, expression_field=1, classes=card_classes,
                         parameters=parameters)
    else:
        from .srmodel import bilinear_layer  # UpSampling2D's bilinear needs known sizes; this one does not

        stacked = [tensors[0]] + [
            bilinear_layer(factor=factor, name=f"upsample{index}")(tensor) if factor > 1 else tensor
            for index, (tensor, factor) in enumerate(zip(tensors[1:], _upsampling_factors(arch, inputs)[1:]), 2)]
        logits = zoo._unet(layers.Concatenate(name="fused")(stacked), len(classes), width, init)
        card = zoo._card(arch, inputs, classes, width, seed)
        card.parameters.update(parameters)
    probabilities = layers.Softmax(name="probabilities")(logits)
    model = keras.Model(tensors, probabilities, name=arch.name)
    card.parameters["n_parameters"] = int(model.count_params())
    return model, card
