"""An output that is, lies inside or contains an input is refused before the run, naming both."""

from __future__ import annotations

import json

import pytest

from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.overlap import check_outputs_apart, check_outputs_hold_nothing_else, inputs_of

LABELS = {"SOURCE1": "Source 1", "OUTPUT": "Output raster", "TRAIN": "Training dataset (manifest)"}


def describe(name):
    return f"{LABELS[name]} ({name})" if name in LABELS else name


@pytest.fixture
def data(tmp_path):
    (tmp_path / "img.tif").write_bytes(b"raster")
    (tmp_path / "patches").mkdir()
    (tmp_path / "patches" / "train_x1.tif").write_bytes(b"patches")
    (tmp_path / "patches" / "train.json").write_text(json.dumps(
        {"sources": [{"raster": "train_x1.tif", "dtype": "float32"}], "labels": {"raster": "missing.tif"}}))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "saved_model.pb").write_bytes(b"pb")
    return tmp_path


@pytest.mark.parametrize("values, how", [
    ({"SOURCE1": ["{d}/img.tif"], "OUTPUT": "{d}/img.tif"}, "is the same file as"),
    ({"SOURCE1": "{d}/./img.tif", "OUTPUT": "{d}/sub/../img.tif"}, "is the same file as"),
    ({"INPUT": "{d}/img.tif|layername=x", "OUTPUT": "{d}/img.tif"}, "is the same file as"),
    ({"TRAIN": "{d}/patches/train.json", "OUTPUT": "{d}/patches"}, "contains"),
    ({"TRAIN": "{d}/patches/train.json", "OUTPUT": "{d}/patches/train_x1.tif"}, "is the same file as"),
    ({"MODEL": "{d}/model", "OUTPUT": "{d}/model/variables"}, "lies inside"),
    ({"MODEL": "{d}/model", "OUTPUT": "{d}"}, "contains"),
])
def test_an_output_over_an_input_is_refused_naming_both(data, values, how):
    values = {key: ([x.format(d=data) for x in value] if isinstance(value, list) else value.format(d=data))
              for key, value in values.items()}
    with pytest.raises(PatchFlowError, match=how) as caught:
        check_outputs_apart(values, describe)
    assert caught.value.parameter == "OUTPUT"
    input_name = next(name for name in values if name != "OUTPUT")
    assert describe(input_name) in caught.value.message


def test_two_outputs_on_one_file_are_refused(data):
    with pytest.raises(PatchFlowError, match="OUTPUT_CSV") as caught:
        check_outputs_apart({"OUTPUT_CSV": f"{data}/r.csv", "OUTPUT_HTML": f"{data}/r.csv"})
    assert caught.value.parameter == "OUTPUT_HTML"


def test_outputs_beside_inputs_are_fine(data):
    check_outputs_apart({"TRAIN": f"{data}/patches/train.json", "MODEL": f"{data}/model",
                         "OUTPUT": f"{data}/patches/trained", "OUTPUT_CSV": f"{data}/model.csv", "SEED": 3,
                         "NAME": "img.tif"})


def test_a_manifest_counts_the_files_it_names_but_not_folders(data):
    found = {path for _, path in inputs_of({"TRAIN": f"{data}/patches/train.json"})}
    assert found == {str(data / "patches" / "train.json"), str(data / "patches" / "train_x1.tif")}


def _geopackage(path, layers):
    from osgeo import ogr

    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    for layer in layers:
        ds.CreateLayer(layer, None, ogr.wkbPoint)
    ds = None


def test_a_geopackage_output_holding_other_layers_is_refused(tmp_path):
    _geopackage(tmp_path / "project.gpkg", ["roads", "samples"])
    with pytest.raises(PatchFlowError, match=r"other layers \(roads, samples\)") as caught:
        check_outputs_hold_nothing_else({"OUTPUT_TRAIN": str(tmp_path / "project.gpkg")})
    assert caught.value.parameter == "OUTPUT_TRAIN"


def test_a_geopackage_patchflow_wrote_may_be_written_again(tmp_path):
    _geopackage(tmp_path / "samples.gpkg", ["samples"])
    check_outputs_hold_nothing_else({"OUTPUT": str(tmp_path / "samples.gpkg"), "INPUT": str(tmp_path / "x.gpkg")})


def test_only_destinations_are_outputs(data):
    """OUTPUT_TYPE (a data type) and OUTPUTS (model output names) are no paths to lock or protect."""
    from patchflow.plugin.engine.overlap import outputs_of

    values = {"SOURCE1": [f"{data}/img.tif"], "OUTPUT_TYPE": "auto", "OUTPUTS": "class", "OUTPUT": f"{data}/map.tif"}
    assert [name for name, _ in outputs_of(values)] == ["OUTPUT"]
