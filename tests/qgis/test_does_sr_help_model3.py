"""'Does SR help?' shipped as a graphical-modeler model (resources/does_sr_help.model3): what
scripts/make_sr_model3.py writes; it loads in Processing with one child, patchflow:comparesr, fed by the
model's inputs (whose defaults, bounds and choices are comparesr's own); and it runs through qgis_process
on the NC scene (the Random Forest, REPEATS=2) to a comparison of the four versions, its bicubic version
GDAL's cubic convolution, not cubic spline (as tests/engine/test_comparesr.py::test_bicubic_is_gdal_cubic).)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL3 = ROOT / "resources" / "does_sr_help.model3"
INPUTS = {"hr": "HR", "lr": "LR", "label_raster": "LABELS", "labels": "REFERENCE", "class_field": "CLASS_FIELD",
          "classifier": "CLASSIFIER", "repeats": "REPEATS", "scale": "SCALE", "train_share": "TRAIN_SHARE"}
NC_CROP = (60, 36, 360, 404)  # columns 60-419, rows 36-439 of the NC scene: where the polygons are


def load_model():
    from qgis.core import QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL3))
    model.initAlgorithm({})
    return model


def test_does_sr_help_model3_is_comparesr_fed_by_the_model_inputs(provider):
    from qgis.core import QgsProcessingModelChildParameterSource as Source

    model = load_model()
    ok, errors = model.validate()
    assert ok, errors
    assert (model.name(), model.group()) == ("does_sr_help", "PatchFlow")  # where users find it
    children = model.childAlgorithms()
    assert {child_id: child.algorithmId() for child_id, child in children.items()} == {"compare": "patchflow:comparesr"}
    child = children["compare"]
    algorithm = child.algorithm()
    assert algorithm is not None
    inputs = {d.name(): d for d in model.parameterDefinitions() if not d.isDestination()}
    assert set(inputs) == set(INPUTS)
    sources = child.parameterSources()
    for name, parameter in INPUTS.items():
        [source] = sources[parameter]
        if source.source() == Source.ModelParameter:
            assert source.parameterName() == name, parameter
        else:  # a number or enum: coalesce(@input, comparesr's default), as make_model3.py explains
            assert source.source() == Source.Expression, parameter
            default = algorithm.parameterDefinition(parameter).defaultValue()
            assert source.expression() == f"coalesce(@{name}, {default})", parameter
    for name, parameter in INPUTS.items():  # the model's inputs say what comparesr's parameters say
        mine, theirs = inputs[name], algorithm.parameterDefinition(parameter)
        assert mine.type() == theirs.type() and mine.defaultValue() == theirs.defaultValue(), name
        assert bool(mine.flags() & mine.FlagOptional) == bool(theirs.flags() & theirs.FlagOptional), name
        if theirs.type() == "number":
            assert (mine.minimum(), mine.maximum(), mine.dataType()) == (theirs.minimum(), theirs.maximum(),
                                                                         theirs.dataType()), name
        if theirs.type() == "enum":
            assert len(mine.options()) == len(theirs.options()) and "Random Forest" in mine.options()[2]
        if theirs.type() == "source":
            assert sorted(mine.dataTypes()) == sorted(theirs.dataTypes())
        if theirs.type() == "field":
            assert mine.parentLayerParameterName() == "labels"
    fed = set(INPUTS.values())
    for definition in algorithm.parameterDefinitions():  # the rest: comparesr's defaults, written in the file
        if definition.name() not in fed and not definition.isDestination() and definition.defaultValue() is not None:
            assert sources[definition.name()][0].staticValue() == definition.defaultValue(), definition.name()
    assert {output.name() for output in model.outputDefinitions()} == {"compare:comparison"}
    assert child.modelOutputs()["comparison"].childOutputName() == "OUTPUT"


def test_does_sr_help_model3_is_what_make_sr_model3_writes(tmp_path):
    written = tmp_path / "does_sr_help.model3"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_sr_model3.py"), "--output", str(written)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert written.read_text(encoding="utf-8") == MODEL3.read_text(encoding="utf-8"), (
        "resources/does_sr_help.model3 is stale: run .venv/bin/python scripts/make_sr_model3.py")


@pytest.mark.slow
def test_does_sr_help_model3_runs_through_qgis_process_on_nc(nc, tmp_path):
    """The model headless on the part of the NC scene the polygons cover (the Random Forest, 2 seeds; the
    defaults of the other inputs reach comparesr although qgis_process leaves them out): four versions
    scored at the same held-out pixels, the answer in the report."""
    from osgeo import gdal

    hr = tmp_path / "inputs" / "hr.tif"
    hr.parent.mkdir()
    gdal.Translate(str(hr), str(nc / "landsat_multiband.tif"), srcWin=list(NC_CROP))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "config")}
    output = tmp_path / "comparison"
    done = subprocess.run(["bash", str(ROOT / "scripts" / "qgis_process.sh"), "--json", "run", str(MODEL3), "--",
                           f"hr={hr}", f"labels={nc / 'landsat96_polygons.shp'}", "class_field=label",
                           "classifier=2", "repeats=2", f"compare:comparison={output}"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(done.stdout[done.stdout.index("{"):])["results"]
    assert Path(results["compare:comparison"]) == output
    with open(output / "comparison.json", encoding="utf-8") as stream:
        comparison = json.load(stream)
    assert list(comparison["versions"]) == ["lr", "bicubic", "sr", "hr"]
    assert comparison["versions"]["lr"]["pixel_size"] == pytest.approx(28.5 * 4)  # the scale's default, 4
    assert comparison["pixels"] == 847 and len(comparison["classes"]) == 7  # the left 60 % trains (default)
    for version in comparison["versions"].values():
        assert len(version["kappa"]["repeats"]) == 2
    assert "the Random Forest (spatial features)" in comparison["answer"].split(":")[0]  # the classifier input
    # the model's bicubic version is GDAL's cubic convolution of its LR version (not cubic spline)
    made = gdal.Open(str(output / "images" / "bicubic.tif"))
    lr = str(output / "images" / "lr.tif")
    cubic, spline = (gdal.Warp("", lr, format="MEM", width=made.RasterXSize, height=made.RasterYSize,
                               resampleAlg=method).ReadAsArray() for method in ("cubic", "cubicspline"))
    np.testing.assert_allclose(made.ReadAsArray(), cubic)
    assert not np.allclose(made.ReadAsArray(), spline)
    html = (output / "comparison.html").read_text(encoding="utf-8")
    assert comparison["answer"].split(":")[0] in html
    assert sorted(p.name for p in hr.parent.iterdir()) == ["hr.tif"]  # nothing beside the inputs
