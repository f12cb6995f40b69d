"""Apply a model to whole rasters, streamed block by block and seamless (OTBTF TensorflowModelServe)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from .base import TRUST_HELP, PatchFlowAlgorithm

INTEGER = QgsProcessingParameterNumber.Integer
DOUBLE = QgsProcessingParameterNumber.Double
# the engine's names (plugin/engine/serve/serving.py), in the order the enums show them
MODES = ("auto", "fully_convolutional", "patch")
MODE_LABELS = ("Auto: patch-based for one pixel per receptive field, else fully convolutional",
               "Fully convolutional: whole blocks, outputs on the model's own grid",
               "Patch-based: one receptive field per output pixel (every STRIDE pixels)")
OUTPUT_TYPES = ("auto", "uint8", "uint16", "int16", "int32", "float32")
OUTPUT_TYPE_LABELS = ("Auto: the smallest integer type for classes, else float32", "uint8", "uint16", "int16",
                      "int32", "float32")


class ApplyModel(PatchFlowAlgorithm):
    NAME = "applymodel"
    DISPLAY_NAME = "Apply model"
    GROUP_ID = "classification"
    OPERATION = "apply_model"
    HELP = (
        "Applies a deep network to whole rasters, block by block, as OTBTF's TensorflowModelServe does: "
        "a model from <i>Train model</i> or <i>Create model</i>, or your own (a Keras <i>.keras</i> file, or "
        "a SavedModel: pick its <i>saved_model.pb</i>). Scenes larger than memory are streamed: reading, "
        "inference and writing overlap, and the output is a tiled, compressed GeoTIFF.<br><br>"
        "<b>Sources</b>: one per model input (up to three), each one raster or several stacked on one grid, "
        "with the bands the model was trained on, in order. Sources 2 and 3 must share SOURCE1's CRS and "
        "grid. The model card says which input each source feeds (else INPUT_NAMES, advanced).<br><br>"
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
        "(NODATA; default 0 for classes when no class is 0, else 255, and -9999 for float outputs)." + TRUST_HELP
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterFile(
            "MODEL", "Model: a .keras file or a SavedModel's saved_model.pb",
            fileFilter="Models (*.keras saved_model.pb);;All files (*)"))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "SOURCE1", "Source 1: raster(s), stacked", QgsProcessing.TypeRaster))
        for index in (2, 3):
            self.addParameter(QgsProcessingParameterMultipleLayers(
                f"SOURCE{index}", f"Source {index}: raster(s), stacked (models with {index} inputs)",
                QgsProcessing.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterString(
            "OUTPUTS", "Model output(s) to write, separated by ; (stacked as bands; empty: 'class' if the model "
            "has it, else its first output, e.g. a super-resolved 'image')", "", optional=True))
        self.addParameter(QgsProcessingParameterEnum("MODE", "Mode", options=list(MODE_LABELS), defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            "STRIDE", "Stride: input pixels between output pixels (patch-based)", INTEGER, 1, minValue=1))
        self.addParameter(QgsProcessingParameterNumber(
            "TILE_SIZE", "Tile size in output pixels (fully convolutional; 0: 512)", INTEGER, 512, minValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            "BATCH_SIZE", "Batch size: patches, or blocks (fully convolutional), per model call (0: auto)", INTEGER,
            0, minValue=0))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Processing extent (empty: the whole of source 1)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterEnum(
            "OUTPUT_TYPE", "Output data type", options=list(OUTPUT_TYPE_LABELS), defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            "NODATA", "Output nodata value (empty: 0 or 255 for classes, -9999 otherwise)", DOUBLE, None,
            optional=True))
        self.add_trust_parameter()
        self.add_advanced_parameters()
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Output raster"))
        self.addOutput(QgsProcessingOutputFile("STYLE", "Output style (QML)"))
        self.addOutput(QgsProcessingOutputString("KIND", "Output kind (class, probabilities, features, image)"))
        self.addOutput(QgsProcessingOutputNumber("WIDTH", "Output width (pixels)"))
        self.addOutput(QgsProcessingOutputNumber("HEIGHT", "Output height (pixels)"))

    def add_advanced_parameters(self) -> None:
        advanced = [
            QgsProcessingParameterString(
                "INPUT_NAMES", "Model inputs fed by the sources, in order, e.g. x1;x2 (empty: the model card's)",
                optional=True),
            QgsProcessingParameterNumber(
                "RECEPTIVE_FIELD", "Receptive field: input patch size in pixels (0: the model card's)", INTEGER, 0,
                minValue=0),
            QgsProcessingParameterNumber(
                "EXPRESSION_FIELD", "Expression field: output pixels per receptive field (0: measured)", INTEGER, 0,
                minValue=0),
            QgsProcessingParameterNumber(
                "SCALE_FACTOR", "Scale factor: output pixels per input pixel, e.g. 0.25 for stride 4 (0: the "
                "model card's, else 1)", DOUBLE, 0.0, minValue=0.0),
            QgsProcessingParameterNumber(
                "MARGIN", "Margin cropped around blocks, input pixels (fully convolutional; -1: measured)",
                INTEGER, -1, minValue=-1),
        ]
        for parameter in advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(parameter)

    def process(self, parameters, context, feedback) -> dict:
        def integer(name: str) -> int:
            return self.parameterAsInt(parameters, name, context)

        job = {
            "MODEL": self.model_path(parameters, "MODEL", context),
            "SOURCE1": self.raster_paths(parameters, "SOURCE1", context),
            "SOURCE2": self.raster_paths(parameters, "SOURCE2", context) or None,
            "SOURCE3": self.raster_paths(parameters, "SOURCE3", context) or None,
            "INPUT_NAMES": self.parameterAsString(parameters, "INPUT_NAMES", context) or None,
            "OUTPUTS": self.parameterAsString(parameters, "OUTPUTS", context) or None,
            "MODE": MODES[self.parameterAsEnum(parameters, "MODE", context)],
            "STRIDE": integer("STRIDE"),
            "RECEPTIVE_FIELD": integer("RECEPTIVE_FIELD"),
            "EXPRESSION_FIELD": integer("EXPRESSION_FIELD"),
            "SCALE_FACTOR": self.parameterAsDouble(parameters, "SCALE_FACTOR", context),
            "TILE_SIZE": integer("TILE_SIZE"),
            "MARGIN": integer("MARGIN"),
            "BATCH_SIZE": integer("BATCH_SIZE"),
            "EXTENT": self.extent_text(parameters, context, "SOURCE1"),
            "OUTPUT_TYPE": OUTPUT_TYPES[self.parameterAsEnum(parameters, "OUTPUT_TYPE", context)],
            "NODATA": None,
            "TRUST_MODEL": self.trusted(parameters, context),
            "OUTPUT": self.parameterAsOutputLayer(parameters, "OUTPUT", context),
        }
        if parameters.get("NODATA") not in (None, ""):
            job["NODATA"] = self.parameterAsDouble(parameters, "NODATA", context)
        result = self.run_engine(job, [job["OUTPUT"]], feedback)
        self.style_raster(result["OUTPUT"], result.get("STYLE"), context)
        return {name: result.get(name) for name in ("OUTPUT", "STYLE", "KIND", "WIDTH", "HEIGHT")}
