"""Apply a model to whole rasters, streamed block by block and seamless (OTBTF TensorflowModelServe)."""

from __future__ import annotations

from .base import TRUST_HELP, PatchFlowAlgorithm, layer_name, tr

# the output's kind (the engine's KIND) -> what its layer is called
KIND_NAMES = {"class": "Class map", "probabilities": "Class probabilities", "features": "Deep features",
              "image": "Image"}


class ApplyModel(PatchFlowAlgorithm):
    NAME = "applymodel"
    DISPLAY_NAME = "Apply model"
    GROUP_ID = "classification"
    OPERATION = "apply_model"
    SHORT = "Apply a deep network to whole rasters, block by block and seamless: a class map or an image."
    TAGS = ("tensorflow", "keras", "cnn", "neural network", "inference", "classification", "class map",
            "segmentation", "super-resolution", "land cover", "otbtf", "serve")
    HELP = (
        "Applies a deep network to whole rasters, block by block, as OTBTF's TensorflowModelServe does: "
        "a model from <i>Train model</i> or <i>Create model</i>, or your own (a Keras <i>.keras</i> file, or "
        "a SavedModel: pick its <i>saved_model.pb</i>). Scenes larger than memory are streamed: reading, "
        "inference and writing overlap, and the output is a tiled, compressed GeoTIFF.<br><br>"
        "<b>Sources</b>: one per model input (up to three), each one raster or several stacked on one grid, "
        "with the bands the model was trained on, in order. Sources 2 and 3 must share SOURCE1's CRS and "
        "overlap it; each is served at its own pixel size (the one the model was trained with, when the card "
        "records it), its patch centred where SOURCE1's is, at the nearest pixel, as Extract patches cuts them. "
        "Their pixel sizes must nest in SOURCE1's (e.g. 6 m or 10 m over 1.5 m). The model card says which "
        "input each source feeds (else INPUT_NAMES, advanced).<br><br>"
        "<b>Modes</b>: <i>patch-based</i> runs the model on the receptive field centred on every STRIDE-th "
        "pixel (a patch CNN's class for each pixel; the output pixel is STRIDE times the input's); "
        "<i>fully convolutional</i> runs it on large blocks and writes its outputs on their own grid (the "
        "patch CNN gives one value per 4×4 input pixels; a U-Net one per pixel). Blocks overlap by a margin "
        "that is cropped, measured from the model itself, so tiles join seamlessly: the result equals one run "
        "on the whole image. <i>Auto</i> picks patch-based for a model that gives one pixel per receptive field "
        "(a patch CNN) or takes no larger blocks, else fully convolutional.<br><br>"
        "<b>Geometry</b>: the receptive field, expression field and scale factor come from the model card "
        "(patchflow_card.json beside the model). A model without a card needs RECEPTIVE_FIELD, and "
        "SCALE_FACTOR when its output is not on the input's grid (advanced parameters); the expression field "
        "is measured. MARGIN overrides the measured overlap.<br><br>"
        "<b>Outputs</b>: OUTPUTS names the model outputs to write (<i>class</i> by default; several, "
        "separated by <i>;</i>, are stacked as bands); <i>&lt;output&gt;:argmax</i>, e.g. <i>logits:argmax</i>, "
        "writes the class of each pixel's largest channel, for models without a class output. A class map "
        "carries the card's class names and colours (a colour table and a <i>&lt;output&gt;.qml</i> style); "
        "probabilities are styled as a 0–1 pseudocolour, images and features as an RGB or grey stretch. "
        "EXTENT limits the run to part of the scene. Pixels that are nodata in any source stay nodata "
        "(NODATA; default 0 for classes when no class is 0, else 255, and -9999 for float outputs). "
        "<b>Clip</b> (on by default) bounds image outputs to the per-band range of the training target that "
        "the model card records (a super-resolved image to the HR training data's range); the log says how "
        "many values were clipped. Models without that range are written as they are." + TRUST_HELP
    )

    def output_layer_name(self, param, job: dict, result: dict) -> str:
        """"Class map (model)", "Image (model)": what the model wrote, and which model."""
        what = tr(KIND_NAMES.get(result.get("KIND") or "", "Model output"))
        return f"{what} ({layer_name(job['MODEL'])})" if job.get("MODEL") else what
