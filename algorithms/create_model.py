"""Build a ready-to-train model from the zoo: a SavedModel folder with its model card."""

from __future__ import annotations

from ..plugin.declarations import ARCHITECTURES as CHOICES
from .base import PatchFlowAlgorithm

# the engine's names (plugin/engine/models/zoo.py ARCHITECTURES), in the order the enum shows them
ARCHITECTURES = tuple(value for value, _ in CHOICES)
ARCHITECTURE_LABELS = tuple(label for _, label in CHOICES)


class CreateModel(PatchFlowAlgorithm):
    NAME = "createmodel"
    DISPLAY_NAME = "Create model"
    GROUP_ID = "models"
    OPERATION = "create_model"
    SHORT = "A ready-to-train network from the zoo (patch CNN, FCNN, U-Net, fusion, super-resolution)."
    TAGS = ("tensorflow", "keras", "cnn", "neural network", "u-net", "fcnn", "segmentation", "super-resolution",
            "fusion", "model zoo")
    HELP = (
        "Builds a ready-to-train network and writes it as a TensorFlow SavedModel folder with its model "
        "card (patchflow_card.json: inputs, bands, patch size, normalisation, outputs, receptive and "
        "expression fields, classes).<br><br>"
        "<b>Architectures</b>: <i>Patch CNN</i>, the small CNN of OTBTF's tutorial (trained on 16×16 "
        "patches, one class each; it then classifies whole images with one value per 4 pixels); "
        "<i>FCNN</i>, the U-Net-like network of OTBTF's API tutorial, and <i>U-Net</i> with batch "
        "normalisation, both one class per pixel, with a patch size that is a multiple of 16 and cropped "
        "outputs (class_crop16, probabilities_crop32, ...) for seamless serving.<br><br>"
        "With a <b>dataset manifest</b> (from Extract patches), the bands, patch size, classes and "
        "per-band normalisation come from it; otherwise give the number of bands, the patch size and the "
        "number of classes. <b>Width</b> scales the number of filters (empty: the architecture's default). "
        "An existing model folder is replaced only when <b>Overwrite</b> is ticked."
    )
