"""The algorithms chain in the graphical modeler: a model wiring samples -> split -> patches."""

from __future__ import annotations

import json

from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorLayer,
)


def child(model, algorithm: str, child_id: str, sources: dict, outputs: dict | None = None):
    step = QgsProcessingModelChildAlgorithm(algorithm)
    step.setChildId(child_id)
    definitions = QgsApplication.processingRegistry().algorithmById(algorithm).parameterDefinitions()
    for definition in definitions:  # what the modeler dialog fills in: the defaults
        if definition.name() not in sources and not definition.isDestination():
            sources = {**sources, definition.name(): definition.defaultValue()}
    for name, source in sources.items():
        if isinstance(source, tuple) and source[0] == "input":
            value = QgsProcessingModelChildParameterSource.fromModelParameter(source[1])
        elif isinstance(source, tuple) and source[0] == "child":
            value = QgsProcessingModelChildParameterSource.fromChildOutput(source[1], source[2])
        else:
            value = QgsProcessingModelChildParameterSource.fromStaticValue(source)
        step.addParameterSources(name, [value])
    model_outputs = {}
    for name, child_output in (outputs or {}).items():
        output = QgsProcessingModelOutput(name)
        output.setChildId(child_id)
        output.setChildOutputName(child_output)
        model_outputs[name] = output
    step.setModelOutputs(model_outputs)
    model.addChildAlgorithm(step)
    return step


def test_model_chains_samples_split_and_patches(provider, nc, tmp_path):
    model = QgsProcessingModelAlgorithm("patchflow_chain", "PatchFlow")
    model.addModelParameter(QgsProcessingParameterVectorLayer("polygons", "Polygons"),
                            QgsProcessingModelParameter("polygons"))
    model.addModelParameter(QgsProcessingParameterRasterLayer("image", "Image"), QgsProcessingModelParameter("image"))
    child(model, "patchflow:samplefromvector", "samples",
          {"INPUT": ("input", "polygons"), "FIELD": "label", "RASTER": ("input", "image"), "STRATEGY": 1,
           "PATCH_SIZE": 16})
    child(model, "patchflow:gridsplit", "split",
          {"INPUT": ("input", "image"), "SAMPLES": ("child", "samples", "OUTPUT"), "CLASS_FIELD": "class",
           "PATCH_SIZE": 16, "BLOCK_SIZE": 4, "TRAIN": 0.7, "VALID": 0.3, "TEST": 0.0})
    child(model, "patchflow:extractpatches", "patches",
          {"INPUT": ("child", "split", "OUTPUT_TRAIN"), "SOURCE1": ("input", "image"), "PATCH_SIZE1": 16,
           "CLASS_FIELD": "class"}, {"manifest": "OUTPUT"})
    ok, errors = model.validate()
    assert ok, errors
    path = tmp_path / "chain.model3"
    assert model.toFile(str(path))
    loaded = QgsProcessingModelAlgorithm()
    assert loaded.fromFile(str(path))
    loaded.initAlgorithm({})
    manifest_path = str(tmp_path / "train.json")
    inputs = {"polygons": str(nc / "landsat96_polygons.shp"), "image": str(nc / "landsat_multiband.tif")}
    from patchflow.algorithms.base import inputs_without_side_files

    with inputs_without_side_files():  # the model loads its raster input itself: no .aux.xml beside it
        results, ok = loaded.run({**inputs, "patches:manifest": manifest_path}, QgsProcessingContext(),
                                 QgsProcessingFeedback())
    assert ok
    manifest = json.loads(open(results["patches:manifest"]).read())
    assert manifest["n_patches"] > 100
    assert manifest["sources"][0]["patch_size"] == 16
