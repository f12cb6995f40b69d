"""Every algorithm's Processing parameters and outputs are its operation's declaration
(plugin/declarations.py): same names, order, types, defaults, bounds, choices, flags and QGIS
specifics; and the job the algorithm sends carries the engine's values."""

from __future__ import annotations

import pytest

from patchflow.plugin.declarations import OPERATIONS

QGIS_TYPES = {
    "integer": "number", "number": "number", "distance": "distance", "band": "band", "boolean": "boolean",
    "enum": "enum", "string": "string", "field": "field", "file": "file", "model": "file", "raster": "raster",
    "vector": "source", "rasters": "multilayer", "files": "multilayer", "extent": "extent",
    "raster_destination": "rasterDestination", "vector_destination": "vectorDestination",
    "file_destination": "fileDestination", "folder_destination": "folderDestination",
}
OUTPUT_TYPES = {"number": "outputNumber", "string": "outputString", "file": "outputFile", "folder": "outputFolder",
                "html": "outputHtml"}
HUGE = 1e300  # QGIS's "no bound" is about ±DBL_MAX


NAMES = ("applymodel", "assessaccuracy", "assessimagequality", "buildsrdataset", "classify", "compareaccuracy",
         "comparesr", "createmodel", "describepatches", "extractpatches", "gridsplit", "samplefromlabelraster",
         "samplefromvector",
         "trainclassifier", "trainmodel")


def algorithm_of(provider, name: str):
    algorithm = provider.algorithm(name).createInstance()
    algorithm.initAlgorithm()
    return algorithm


def differences(algorithm) -> list[str]:
    from qgis.core import QgsProcessing, QgsProcessingParameterDefinition

    layer_types = {"raster": QgsProcessing.TypeRaster, "point": QgsProcessing.TypeVectorPoint,
                   "polygon": QgsProcessing.TypeVectorPolygon, "vector": QgsProcessing.TypeVector,
                   "file": QgsProcessing.TypeFile}
    declaration = OPERATIONS[algorithm.OPERATION]
    found: list[str] = []

    def differ(what: str, qgis, declared) -> None:
        if qgis != declared:
            found.append(f"{algorithm.name()} {what}: QGIS {qgis!r}, declared {declared!r}")

    definitions = algorithm.parameterDefinitions()
    differ("parameters", [d.name() for d in definitions], [p.name for p in declaration.parameters])
    for definition in definitions:
        param = declaration.parameter(definition.name())
        if param is None:
            continue
        name = param.name
        differ(f"{name} type", definition.type(), QGIS_TYPES[param.kind])
        differ(f"{name} label", definition.description(), param.label)
        flags = definition.flags()
        differ(f"{name} optional", bool(flags & QgsProcessingParameterDefinition.FlagOptional), param.optional)
        differ(f"{name} advanced", bool(flags & QgsProcessingParameterDefinition.FlagAdvanced), param.advanced)
        default = param.values.index(param.engine_default) if param.kind == "enum" else param.default
        differ(f"{name} default", definition.defaultValue(), default)
        if param.kind in ("integer", "number", "distance"):
            differ(f"{name} data type", definition.dataType(), 0 if param.kind == "integer" else 1)
            minimum, maximum = definition.minimum(), definition.maximum()
            differ(f"{name} minimum", None if minimum <= -HUGE else minimum, param.minimum)
            differ(f"{name} maximum", None if maximum >= HUGE else maximum, param.maximum)
        if param.kind == "enum":
            differ(f"{name} choices", definition.options(), list(param.labels))
        if param.kind in ("field", "band"):
            differ(f"{name} parent", definition.parentLayerParameterName(), param.parent)
        if param.kind == "distance":
            differ(f"{name} parent", definition.parentParameterName(), param.parent)
        if param.kind in ("file", "model", "file_destination"):
            differ(f"{name} file filter", definition.fileFilter(), param.file_filter)
        if param.kind == "vector":
            differ(f"{name} layer types", definition.dataTypes(), [layer_types[t] for t in param.layers])
        if param.kind in ("rasters", "files"):
            differ(f"{name} layer type", definition.layerType(), layer_types[param.layers[0]])
        if param.kind == "vector_destination":
            differ(f"{name} layer type", definition.dataType(), layer_types[param.layers[0]])
        if param.destination:
            differ(f"{name} created by default", definition.createByDefault(), param.create_by_default)
            differ(f"{name} file based", not definition.supportsNonFileBasedOutput(), param.file_based)
    outputs = {o.name(): o.type() for o in algorithm.outputDefinitions()}
    differ("outputs", sorted(outputs), sorted(declaration.results))
    for output in declaration.outputs:
        differ(f"output {output.name} type", outputs.get(output.name), OUTPUT_TYPES[output.kind])
        differ(f"output {output.name} label", algorithm.outputDefinition(output.name).description(), output.label)
    return found


def test_every_operation_has_one_algorithm(provider):
    assert sorted(a.name() for a in provider.algorithms()) == sorted(NAMES)
    assert sorted(a.OPERATION for a in provider.algorithms()) == sorted(OPERATIONS)


@pytest.mark.parametrize("name", NAMES)
def test_parameters_and_outputs_agree_with_the_declaration(provider, name):
    assert differences(provider.algorithm(name)) == []


def test_the_agreement_test_sees_a_difference(provider):
    """A parameter changed after it was built from its declaration is reported."""
    from qgis.core import QgsProcessingParameterNumber

    algorithm = algorithm_of(provider, "applymodel")
    algorithm.removeParameter("TILE_SIZE")
    algorithm.addParameter(QgsProcessingParameterNumber("TILE_SIZE", "Tile size", QgsProcessingParameterNumber.Integer,
                                                        512, minValue=0))
    found = differences(algorithm)
    assert any("TILE_SIZE default" in line and "512" in line for line in found)
    assert any("TILE_SIZE label" in line for line in found) and any("parameters" in line for line in found)


def job_of(provider, name: str, parameters: dict) -> dict:
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    return algorithm_of(provider, name).job(parameters, QgsProcessingContext(), QgsProcessingFeedback())


def test_the_job_carries_engine_values(provider, tmp_path):
    job = job_of(provider, "createmodel", {"ARCHITECTURE": 2, "BANDS": 3, "OUTPUT": str(tmp_path / "m")})
    assert job == {"ARCHITECTURE": "unet", "DATASET": None, "BANDS": 3, "PATCH_SIZE": None, "N_CLASSES": None,
                   "WIDTH": None, "SEED": 0, "OVERWRITE": False, "OUTPUT": str(tmp_path / "m")}
    model = tmp_path / "sm" / "saved_model.pb"
    job = job_of(provider, "trainmodel", {"TRAIN": str(tmp_path / "t.json"), "MODEL": str(model),
                                          "CLASS_WEIGHTS": False, "DEVICE": 1, "OUTPUT": str(tmp_path / "out")})
    assert (job["CLASS_WEIGHTS"], job["DEVICE"], job["LOSS"], job["NORMALIZATION"]) == ("none", "cpu", "auto", "auto")
    assert job["MODEL"] == str(model.parent) and job["VALID"] is None and job["PRETRAIN_EPOCHS"] is None
    assert (job["EPOCHS"], job["LEARNING_RATE"], job["TRUST_MODEL"]) == (20, 0.001, False)
    assert job_of(provider, "trainmodel", {"TRAIN": "t.json", "OUTPUT": str(tmp_path / "o")})["CLASS_WEIGHTS"] == "auto"
