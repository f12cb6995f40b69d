"""The base of every PatchFlow algorithm: names and help, turning layer parameters into file
paths for the worker, running the job, and styling the outputs."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsRasterLayer,
)
from qgis.PyQt.QtGui import QIcon

from ..plugin.client import WorkerCancelled, WorkerClient, WorkerError
from ..plugin.provider import ICON
from ..plugin.styles import LoadSidecarStyle

GROUPS = {"sampling": "Sampling", "patches": "Patches", "models": "Models", "accuracy": "Accuracy",
          "classification": "Classification"}
_POST_PROCESSORS: list[LoadSidecarStyle] = []  # Processing keeps only a pointer to them
# every algorithm that loads a model or a classifier: the engine's model gate (plugin/engine/models/modelsafety.py)
# refuses one that could run code or touch files unless this is ticked
TRUST_MODEL = "TRUST_MODEL"
TRUST_LABEL = "I trust this model (allow file, network or Python ops)"
TRUST_HELP = (
    "<br><br><b>Untrusted models are refused</b>: a model that could run code or touch files, the network or "
    "the Python interpreter (a SavedModel with file, network or Python ops; a .keras file with a Lambda "
    "layer, a TFSMLayer or classes that are not Keras's or PatchFlow's; a pickle classifier, .joblib) is "
    "refused before it is loaded, unless <i>I trust this model</i> (TRUST_MODEL) is ticked: tick it only "
    "for a model from a source you trust."
)


@contextmanager
def inputs_without_side_files() -> Iterator[None]:
    """Rasters opened in this thread meanwhile keep GDAL's auxiliary metadata (PAM) to themselves:
    the statistics QGIS computes when it loads an input layer are not saved as an ``.aux.xml``
    beside the user's file."""
    from osgeo import gdal

    previous = gdal.GetThreadLocalConfigOption("GDAL_PAM_ENABLED", None)
    gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", "NO")
    try:
        yield
    finally:
        gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", previous)


def _why(definition, value) -> str:
    """What QGIS's "Incorrect parameter value" means here: a file of the wrong kind, or a file QGIS
    cannot open (damaged or truncated)."""
    if isinstance(definition, QgsProcessingParameterFile):
        return f" (expected: {definition.fileFilter()})" if definition.fileFilter() else ""
    items = [value] if isinstance(value, str) else [v for v in value or [] if isinstance(v, str)] \
        if isinstance(value, (list, tuple)) else []
    unreadable = [v for v in items
                  if os.path.isfile(v) and (len(items) == 1 or not QgsRasterLayer(v, "", "gdal").isValid())]
    if definition.isDestination() or not unreadable:
        return ""
    return f" ({', '.join(unreadable)} exists, but QGIS cannot open it: is it damaged, truncated or of another kind?)"


class PatchFlowAlgorithm(QgsProcessingAlgorithm):
    """Subclasses set NAME, DISPLAY_NAME, GROUP_ID, OPERATION, HELP and declare parameters."""

    NAME = ""
    DISPLAY_NAME = ""
    GROUP_ID = "sampling"
    OPERATION = ""
    HELP = ""

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:  # noqa: N802
        return self.DISPLAY_NAME

    def group(self) -> str:
        return GROUPS[self.GROUP_ID]

    def groupId(self) -> str:  # noqa: N802
        return self.GROUP_ID

    def shortHelpString(self) -> str:  # noqa: N802
        return self.HELP

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def createInstance(self):  # noqa: N802
        return type(self)()

    # ---- running: inputs are opened without side files -----------------------------------------

    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict:
        with inputs_without_side_files():
            return self.process(parameters, context, feedback)

    def process(self, parameters: dict, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> dict:
        """What the algorithm does: build the job, run it in the worker, style the outputs."""
        raise NotImplementedError

    def add_trust_parameter(self) -> None:
        self.addParameter(QgsProcessingParameterBoolean(TRUST_MODEL, TRUST_LABEL, False))

    def trusted(self, parameters: dict, context: QgsProcessingContext) -> bool:
        return self.parameterAsBoolean(parameters, TRUST_MODEL, context)

    # ---- parameters to paths ----------------------------------------------------------------

    def raster_path(self, parameters: dict, name: str, context: QgsProcessingContext) -> str | None:
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            return None
        return self._gdal_source(layer, name)

    def raster_paths(self, parameters: dict, name: str, context: QgsProcessingContext) -> list[str]:
        return [self._gdal_source(layer, name) for layer in self.parameterAsLayerList(parameters, name, context)]

    def _gdal_source(self, layer, name: str) -> str:
        if not isinstance(layer, QgsRasterLayer) or layer.providerType() != "gdal":
            raise QgsProcessingException(
                f"{self._describe(name)}: {layer.name()} is not a file raster (provider "
                f"'{layer.providerType()}'). Save it as a GeoTIFF first.")
        return layer.source()

    def model_path(self, parameters: dict, name: str, context: QgsProcessingContext) -> str | None:
        """A SavedModel is a folder: the file picker gives its saved_model.pb, the engine wants the folder."""
        path = self.parameterAsFile(parameters, name, context)
        if path and os.path.basename(path) == "saved_model.pb":
            return os.path.dirname(path)
        return path or None

    def extent_text(self, parameters: dict, context: QgsProcessingContext, layers_parameter: str) -> str | None:
        """EXTENT as the engine's "xmin,xmax,ymin,ymax", in the CRS of the first layer of ``layers_parameter``."""
        if parameters.get("EXTENT") in (None, ""):
            return None
        layers = self.parameterAsLayerList(parameters, layers_parameter, context)
        crs = layers[0].crs() if layers else QgsCoordinateReferenceSystem()
        rectangle = self.parameterAsExtent(parameters, "EXTENT", context, crs)
        if rectangle.isNull():
            return None
        return f"{rectangle.xMinimum()!r},{rectangle.xMaximum()!r},{rectangle.yMinimum()!r},{rectangle.yMaximum()!r}"

    def vector_path(self, parameters: dict, name: str, context: QgsProcessingContext,
                    feedback: QgsProcessingFeedback) -> str | None:
        """A file the worker can read: the layer's own file, or a GeoPackage export of it
        (memory layers, selections, feature filters)."""
        if parameters.get(name) in (None, ""):
            return None
        path, layer_name = self.parameterAsCompatibleSourceLayerPathAndLayerName(
            parameters, name, context, ["gpkg", "shp"], "gpkg", feedback)
        return f"{path}|layername={layer_name}" if layer_name else path

    # ---- running -----------------------------------------------------------------------------

    def run_engine(self, job: dict[str, Any], output_paths: list[str], feedback: QgsProcessingFeedback) -> dict:
        try:
            labels = {definition.name(): definition.description() for definition in self.parameterDefinitions()}
            return WorkerClient().run(self.OPERATION, job, feedback, output_paths, labels)
        except WorkerCancelled:
            raise QgsProcessingException("Cancelled: no output was written.") from None
        except WorkerError as exc:
            where = f"{self._describe(exc.parameter)}: " if exc.parameter else ""
            message = str(exc)
            if exc.parameter and message.startswith(f"{exc.parameter}: "):
                message = message[len(exc.parameter) + 2:]
            raise QgsProcessingException(where + message) from None

    def checkParameterValues(self, parameters, context):  # noqa: N802
        """QGIS's own checks name a parameter by its key alone ("Incorrect parameter value for INPUT"):
        name it as the engine's errors do, "Description (KEY): ...", and say why when we can tell."""
        with inputs_without_side_files():  # Processing opens the input layers here
            ok, message = super().checkParameterValues(parameters, context)
        named = re.search(r"\bfor ([A-Za-z0-9_]+)", message or "")
        definition = self.parameterDefinition(named.group(1)) if named and not ok else None
        if definition is not None:
            why = _why(definition, parameters.get(definition.name()))
            message = f"{self._describe(definition.name())}: {message}{why}"
        return ok, message

    def _describe(self, name: str | None) -> str:
        definition = self.parameterDefinition(name) if name else None
        return f"{definition.description()} ({name})" if definition is not None else str(name)

    def style_points(self, path: str | None, qml: str | None, context: QgsProcessingContext) -> None:
        """Apply a class point output's QML sidecar (the engine wrote it) when Processing loads the output."""
        self.style_raster(path, qml, context)

    def style_raster(self, path: str | None, qml: str | None, context: QgsProcessingContext) -> None:
        """Apply a raster output's QML sidecar (the engine wrote it) when Processing loads the output."""
        if path and qml and os.path.exists(qml):
            self._load_with_style(path, qml, context)

    def _load_with_style(self, path: str, qml: str, context: QgsProcessingContext) -> None:
        if context.willLoadLayerOnCompletion(path):
            post = LoadSidecarStyle(qml)
            _POST_PROCESSORS.append(post)
            del _POST_PROCESSORS[:-50]
            context.layerToLoadOnCompletionDetails(path).setPostProcessor(post)


class SamplingAlgorithm(PatchFlowAlgorithm):
    """Shared parameters and run of the two sample selection algorithms."""

    GROUP_ID = "sampling"

    def add_sampling_parameters(self, distance_parent: str) -> None:
        from qgis.core import (
            QgsProcessingOutputNumber,
            QgsProcessingParameterDistance,
            QgsProcessingParameterEnum,
            QgsProcessingParameterNumber,
            QgsProcessingParameterVectorDestination,
        )

        from .options import SAMPLING_STRATEGY_LABELS

        integer = QgsProcessingParameterNumber.Integer
        self.addParameter(QgsProcessingParameterEnum(
            "STRATEGY", "Sampling strategy", options=list(SAMPLING_STRATEGY_LABELS), defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            "NUMBER", "Number of samples (per class for 'constant', in all for 'total')", integer, 100, minValue=1))
        self.addParameter(QgsProcessingParameterNumber(
            "PATCH_SIZE", "Patch size that must fit around each sample (edge padding)", integer, 1, minValue=1))
        self.addParameter(QgsProcessingParameterDistance(
            "MIN_DISTANCE", "Minimum distance between samples (0: none)", 0.0, distance_parent, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Random seed", integer, 0))
        output = QgsProcessingParameterVectorDestination(
            "OUTPUT", "Samples", type=QgsProcessing.TypeVectorPoint)
        output.setSupportsNonFileBasedOutput(False)
        self.addParameter(output)
        self.addOutput(QgsProcessingOutputNumber("COUNT", "Number of samples"))

    def sampling_job(self, parameters: dict, context: QgsProcessingContext) -> dict:
        from .options import SAMPLING_STRATEGIES

        return {
            "STRATEGY": SAMPLING_STRATEGIES[self.parameterAsEnum(parameters, "STRATEGY", context)],
            "NUMBER": self.parameterAsInt(parameters, "NUMBER", context),
            "PATCH_SIZE": self.parameterAsInt(parameters, "PATCH_SIZE", context),
            "MIN_DISTANCE": self.parameterAsDouble(parameters, "MIN_DISTANCE", context),
            "SEED": self.parameterAsInt(parameters, "SEED", context),
            "OUTPUT": self.parameterAsOutputLayer(parameters, "OUTPUT", context),
        }

    def run_sampling(self, job: dict, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> dict:
        result = self.run_engine(job, [job["OUTPUT"]], feedback)
        self.style_points(result["OUTPUT"], result.get("STYLE"), context)
        return {"OUTPUT": result["OUTPUT"], "COUNT": result["COUNT"]}
