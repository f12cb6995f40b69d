"""The base of every PatchFlow algorithm: names and help, its parameters and outputs built from the
operation's declaration (plugin/declarations.py), the job built from them by parameter kind (layers
become file paths for the worker), running the job, and styling the outputs."""

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
    QgsProcessingOutputFile,
    QgsProcessingOutputFolder,
    QgsProcessingOutputHtml,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterDistance,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProcessingUtils,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..plugin.beforerun import check_before_run
from ..plugin.client import WorkerCancelled, WorkerClient, WorkerError
from ..plugin.declarations import OPERATIONS, TRUST_MODEL, Operation, Output, Param  # noqa: F401 (TRUST_MODEL)
from ..plugin.provider import GROUP_ICONS, HELP_PAGE
from ..plugin.settings import execution_setting
from ..plugin.styles import LoadSidecarStyle

# group id -> name: numbered so that the toolbox, which sorts groups by name, reads in workflow order
GROUPS = {"sampling": "1 · Sampling", "patches": "2 · Patches", "models": "3 · Models",
          "classification": "4 · Classification", "accuracy": "5 · Accuracy"}
# every algorithm's tags start with these (the toolbox's search matches tags, names and short descriptions)
COMMON_TAGS = ("patchflow", "deep learning", "remote sensing")
_POST_PROCESSORS: list[LoadSidecarStyle] = []  # Processing keeps only a pointer to them
# every algorithm that loads a model or a classifier declares TRUST_MODEL: the engine's model gate
# (plugin/engine/models/modelsafety.py) refuses one that could run code or touch files unless it is ticked
TRUST_HELP = (
    "<br><br><b>Untrusted models are refused</b>: a model that could run code or touch files, the network or "
    "the Python interpreter (a SavedModel with file, network or Python ops; a .keras file with a Lambda "
    "layer, a TFSMLayer or classes that are not Keras's or PatchFlow's; a pickle classifier, .joblib) is "
    "refused before it is loaded, unless <i>I trust this model</i> (TRUST_MODEL) is ticked: tick it only "
    "for a model from a source you trust."
)


LAYER_TYPES = {"raster": QgsProcessing.TypeRaster, "point": QgsProcessing.TypeVectorPoint,
               "polygon": QgsProcessing.TypeVectorPolygon, "vector": QgsProcessing.TypeVector,
               "file": QgsProcessing.TypeFile}
OUTPUT_CLASSES = {"number": QgsProcessingOutputNumber, "string": QgsProcessingOutputString,
                  "file": QgsProcessingOutputFile, "folder": QgsProcessingOutputFolder, "html": QgsProcessingOutputHtml}


def tr(text: str) -> str:
    """A user-visible string, translated (QGIS's translator, context "PatchFlow")."""
    return QCoreApplication.translate("PatchFlow", text)


def _number_type(param: Param):
    return QgsProcessingParameterNumber.Double if param.kind in ("number", "distance") else \
        QgsProcessingParameterNumber.Integer


def _bounds(param: Param) -> dict[str, float]:
    bounds = {}
    if param.minimum is not None:
        bounds["minValue"] = param.minimum
    if param.maximum is not None:
        bounds["maxValue"] = param.maximum
    return bounds


def qgis_parameter(param: Param) -> QgsProcessingParameterDefinition:
    """The Processing parameter a declaration describes."""
    name, label, default, optional, kind = param.name, tr(param.label), param.default, param.optional, param.kind
    layers = [LAYER_TYPES[layer] for layer in param.layers]
    if kind in ("integer", "number"):
        definition = QgsProcessingParameterNumber(name, label, _number_type(param), default, optional, **_bounds(param))
    elif kind == "distance":
        definition = QgsProcessingParameterDistance(name, label, default, param.parent, optional, **_bounds(param))
    elif kind == "band":
        definition = QgsProcessingParameterBand(name, label, default, param.parent, optional)
    elif kind == "boolean":
        definition = QgsProcessingParameterBoolean(name, label, default, optional)
    elif kind == "enum":
        definition = QgsProcessingParameterEnum(name, label, [tr(text) for text in param.labels], False,
                                                param.values.index(param.engine_default), optional)
    elif kind == "string":
        definition = QgsProcessingParameterString(name, label, default, False, optional)
    elif kind == "field":
        definition = QgsProcessingParameterField(name, label, default, param.parent,
                                                 QgsProcessingParameterField.Any, False, optional)
    elif kind in ("file", "model"):
        definition = QgsProcessingParameterFile(name, label, QgsProcessingParameterFile.File, "", default, optional,
                                                param.file_filter)
    elif kind == "raster":
        definition = QgsProcessingParameterRasterLayer(name, label, default, optional)
    elif kind == "vector":
        definition = QgsProcessingParameterFeatureSource(name, label, layers, default, optional)
    elif kind in ("rasters", "files"):
        definition = QgsProcessingParameterMultipleLayers(name, label, layers[0], default, optional)
    elif kind == "extent":
        definition = QgsProcessingParameterExtent(name, label, default, optional)
    elif kind == "raster_destination":
        definition = QgsProcessingParameterRasterDestination(name, label, default, optional, param.create_by_default)
    elif kind == "vector_destination":
        definition = QgsProcessingParameterVectorDestination(name, label, layers[0], default, optional,
                                                             param.create_by_default)
    elif kind == "file_destination":
        definition = QgsProcessingParameterFileDestination(name, label, param.file_filter, default, optional,
                                                           param.create_by_default)
    elif kind == "folder_destination":
        definition = QgsProcessingParameterFolderDestination(name, label, default, optional, param.create_by_default)
    else:
        raise ValueError(f"{name}: unknown parameter kind '{kind}'")
    if param.file_based:
        definition.setSupportsNonFileBasedOutput(False)
    if param.advanced:
        definition.setFlags(definition.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    if param.help:
        definition.setHelp(tr(param.help))  # the widget's tooltip, and the dialog's help text (parameters_help)
    return definition


def qgis_output(output: Output):
    return OUTPUT_CLASSES[output.kind](output.name, tr(output.label))


def parameters_help(parameters: tuple[Param, ...]) -> str:
    """The help text's list of the parameters that say more than their label (their tooltips too)."""
    items = "".join(f"<dt><b>{tr(param.label)}</b> ({param.name})</dt><dd>{tr(param.help)}</dd>"
                    for param in parameters if param.help)
    return f"<h3>{tr('Parameters')}</h3><dl>{items}</dl>" if items else ""


def layer_name(path: str) -> str:
    """A file's base name (a GeoPackage layer's name), as QGIS names a layer it loads from it."""
    if "|layername=" in path:
        return path.split("|layername=", 1)[1].split("|", 1)[0]
    base = os.path.basename(os.path.normpath(path))
    return "saved model" if base == "saved_model.pb" else os.path.splitext(base)[0]


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
    """Subclasses set NAME, DISPLAY_NAME, GROUP_ID, OPERATION, HELP, SHORT (one sentence: the
    toolbox's tooltip) and TAGS (what a toolbox search should find it by); the parameters and outputs
    are the operation's declaration (plugin/declarations.py). A subclass overrides ``job`` or
    ``process`` only for what the declaration cannot say."""

    NAME = ""
    DISPLAY_NAME = ""
    GROUP_ID = "sampling"
    OPERATION = ""
    HELP = ""
    SHORT = ""
    TAGS: tuple[str, ...] = ()

    def tr(self, text: str) -> str:
        return tr(text)

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:  # noqa: N802
        return self.tr(self.DISPLAY_NAME)

    def group(self) -> str:
        return self.tr(GROUPS[self.GROUP_ID])

    def groupId(self) -> str:  # noqa: N802
        return self.GROUP_ID

    def shortDescription(self) -> str:  # noqa: N802
        return self.tr(self.SHORT)

    def tags(self) -> list[str]:
        return [self.tr(tag) for tag in COMMON_TAGS + self.TAGS]

    def shortHelpString(self) -> str:  # noqa: N802
        return self.tr(self.HELP) + parameters_help(self.declaration.parameters)

    def helpUrl(self) -> str:  # noqa: N802
        """The algorithm's section of the documentation (the anchor is its name)."""
        return f"{HELP_PAGE}#{self.NAME}"

    def icon(self) -> QIcon:
        return QIcon(self.svgIconPath())

    def svgIconPath(self) -> str:  # noqa: N802
        """The icon of the algorithm's toolbox group (resources/icons/<group id>.svg)."""
        return str(GROUP_ICONS / f"{self.GROUP_ID}.svg")

    def createInstance(self):  # noqa: N802
        return type(self)()

    @property
    def declaration(self) -> Operation:
        return OPERATIONS[self.OPERATION]

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        for param in self.declaration.parameters:
            self.addParameter(qgis_parameter(param))
        for output in self.declaration.outputs:
            self.addOutput(qgis_output(output))

    # ---- running: inputs are opened without side files -----------------------------------------

    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict:
        with inputs_without_side_files():
            return self.process(parameters, context, feedback)

    def process(self, parameters: dict, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> dict:
        """What the algorithm does: build the job, run it in the worker, style the outputs; the
        engine's result keys are the output names."""
        job = self.job(parameters, context, feedback)
        destinations = [p.name for p in self.declaration.parameters if p.destination]
        result = self.run_engine(job, [job[name] for name in destinations if job.get(name)], feedback)
        self.style_outputs(result, context)
        self.name_output_layers(job, result, context)
        return {name: result.get(name) for name in self.declaration.results}

    def job(self, parameters: dict, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> dict:
        """The engine's job: each declared parameter's value, by its kind; EXECUTION "setting" becomes the
        PatchFlow setting's execution (Settings > Options > PatchFlow), with its workers, scheduler, cluster file."""
        job = {param.name: self.job_value(param, parameters, context, feedback)
               for param in self.declaration.parameters}
        if job.get("EXECUTION") == "setting":
            job.update(execution_setting())
        return job

    def job_value(self, param: Param, parameters: dict, context: QgsProcessingContext,
                  feedback: QgsProcessingFeedback) -> Any:
        name, kind = param.name, param.kind
        if kind in ("integer", "number", "distance", "band"):
            if parameters.get(name) in (None, "") and param.default is None:
                return None  # not given: the engine's default
            if kind in ("number", "distance"):
                return self.parameterAsDouble(parameters, name, context)
            value = self.parameterAsInt(parameters, name, context)
            return value or param.default if kind == "band" else value
        if kind == "boolean":
            value = self.parameterAsBoolean(parameters, name, context)
            return param.values[value] if param.choices else value
        if kind == "enum":
            return param.values[self.parameterAsEnum(parameters, name, context)]
        if kind in ("string", "field"):
            return self.parameterAsString(parameters, name, context) or None
        if kind == "file":
            return self.parameterAsFile(parameters, name, context) or None
        if kind == "model":
            return self.model_path(parameters, name, context)
        if kind == "raster":
            return self.raster_path(parameters, name, context)
        if kind == "rasters":
            return self.raster_paths(parameters, name, context) or None
        if kind == "files":
            return self.parameterAsFileList(parameters, name, context) or None
        if kind == "vector":
            return self.vector_path(parameters, name, context, feedback)
        if kind == "extent":
            return self.extent_text(parameters, context, param.parent, name)
        if kind in ("raster_destination", "vector_destination"):
            return self.parameterAsOutputLayer(parameters, name, context) or None
        if kind in ("file_destination", "folder_destination"):
            return self.parameterAsFileOutput(parameters, name, context) or None
        raise ValueError(f"{name}: unknown parameter kind '{kind}'")

    def output_layer_name(self, param: Param, job: dict, result: dict) -> str:
        """The name of an output layer QGIS loads from a temporary file (a file the user chose keeps its
        base name, as QGIS names it by default): what it is, of what, e.g. "Samples (landsat)"."""
        source = next((job[p.name] for p in self.declaration.parameters
                       if p.kind in ("raster", "rasters", "vector", "model") and job.get(p.name)), None)
        if isinstance(source, list):
            source = source[0]
        return f"{tr(param.label)} ({layer_name(source)})" if source else tr(param.label)

    def name_output_layers(self, job: dict, result: dict, context: QgsProcessingContext) -> None:
        """Each output layer QGIS will load gets a name that says what it is (not "Output raster"), and
        one that no layer of the project has yet: two runs give two layers told apart. A name chosen
        for it already (a model's output name) is kept."""
        for param in self.declaration.parameters:
            path = job.get(param.name)
            if param.kind not in ("raster_destination", "vector_destination") or not path \
                    or not context.willLoadLayerOnCompletion(path):
                continue
            details = context.layerToLoadOnCompletionDetails(path)
            if details.forceName or details.name not in ("", self.parameterDefinition(param.name).description()):
                continue
            # a file the user named keeps its base name; Processing's temporary "OUTPUT.tif" says nothing
            temporary = os.path.normpath(path).startswith(os.path.normpath(QgsProcessingUtils.tempFolder()))
            name = self.output_layer_name(param, job, result) if temporary else layer_name(path)
            project = details.project or context.project()
            taken = {layer.name() for layer in project.mapLayers().values()} if project is not None else set()
            taken |= {other.name for key, other in context.layersToLoadOnCompletion().items() if key != path}
            unique, count = name, 1
            while unique in taken:
                count += 1
                unique = f"{name} {count}"
            details.name = unique

    def style_outputs(self, result: dict, context: QgsProcessingContext) -> None:
        """Load the QML the engine wrote beside each output its declaration says is styled."""
        for param in self.declaration.parameters:
            if param.style:
                self.load_style(result.get(param.name), result.get(param.style), context)

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
                f"'{layer.providerType()}'). " + tr("Save it as a GeoTIFF first."))
        return layer.source()

    def model_path(self, parameters: dict, name: str, context: QgsProcessingContext) -> str | None:
        """A SavedModel is a folder: the file picker gives its saved_model.pb, the engine wants the folder."""
        path = self.parameterAsFile(parameters, name, context)
        if path and os.path.basename(path) == "saved_model.pb":
            return os.path.dirname(path)
        return path or None

    def extent_text(self, parameters: dict, context: QgsProcessingContext, layers_parameter: str,
                    name: str = "EXTENT") -> str | None:
        """An extent as the engine's "xmin,xmax,ymin,ymax", in the CRS of the first layer of ``layers_parameter``."""
        if parameters.get(name) in (None, ""):
            return None
        layers = self.parameterAsLayerList(parameters, layers_parameter, context)
        crs = layers[0].crs() if layers else QgsCoordinateReferenceSystem()
        rectangle = self.parameterAsExtent(parameters, name, context, crs)
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
            raise QgsProcessingException(tr("Cancelled: no output was written.")) from None
        except WorkerError as exc:
            raise QgsProcessingException(self._engine_message(exc.parameter, str(exc))) from None

    def _engine_message(self, parameter: str | None, message: str) -> str:
        """An engine error as the dialog says it: "Description (KEY): what is wrong, and the fix"."""
        where = f"{self._describe(parameter)}: " if parameter else ""
        if parameter and message.startswith(f"{parameter}: "):
            message = message[len(parameter) + 2:]
        return where + message

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
        if ok:  # the engine's cheap checks (band counts, patch sizes, CRS, extents) here, before any worker starts
            with inputs_without_side_files():
                found = check_before_run(self, parameters, context)
            if found is not None:
                return False, self._engine_message(*found)
        return ok, message

    def _describe(self, name: str | None) -> str:
        definition = self.parameterDefinition(name) if name else None
        return f"{definition.description()} ({name})" if definition is not None else str(name)

    def load_style(self, path: str | None, qml: str | None, context: QgsProcessingContext) -> None:
        """Apply an output's QML sidecar (the engine wrote it) when Processing loads the output."""
        if path and qml and os.path.exists(qml):
            self._load_with_style(path, qml, context)

    def _load_with_style(self, path: str, qml: str, context: QgsProcessingContext) -> None:
        if context.willLoadLayerOnCompletion(path):
            post = LoadSidecarStyle(qml)
            _POST_PROCESSORS.append(post)
            del _POST_PROCESSORS[:-50]
            context.layerToLoadOnCompletionDetails(path).setPostProcessor(post)


