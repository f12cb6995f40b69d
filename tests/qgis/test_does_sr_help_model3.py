"""'Does SR help?' shipped as a graphical-modeler model (resources/does_sr_help.model3): it loads in
Processing with PatchFlow's and GDAL's children wired as scripts/make_sr_model3.py builds them, and is
what that script writes. (The model is the per-pixel Random Forest chain; the full run,
scripts/sr_experiment.py on the Spot-6 scene with the FCNN variant, takes about
3 min: `make sr-experiment`.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL3 = ROOT / "resources" / "does_sr_help.model3"
IMAGES = ("lr", "bicubic", "sr", "hr")
CHILDREN = {
    "degrade": "patchflow:buildsrdataset", "sr_pairs": "patchflow:buildsrdataset", "sr_train": "patchflow:trainmodel",
    "sr_apply": "patchflow:applymodel", "bicubic": "gdal:warpreproject",
    "samples": "patchflow:samplefromlabelraster", "reference": "patchflow:samplefromlabelraster",
    **{f"pixels_{k}": "patchflow:extractpatches" for k in IMAGES},
    **{f"rf_{k}": "patchflow:trainclassifier" for k in IMAGES},
    **{f"map_{k}": "patchflow:classify" for k in IMAGES},
    **{f"assess_{k}": "patchflow:assessaccuracy" for k in IMAGES},
    "compare": "patchflow:compareaccuracy",
}


def test_does_sr_help_model3_loads_and_wires_the_four_images(provider):
    from qgis.core import QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL3))
    model.initAlgorithm({})
    ok, errors = model.validate()
    assert ok, errors
    children = model.childAlgorithms()
    assert {child_id: child.algorithmId() for child_id, child in children.items()} == CHILDREN
    assert all(child.algorithm() is not None for child in children.values())
    # each assessment depends on its own image's chain; the SR one on the SR model trained on the pairs
    assert model.dependsOnChildAlgorithms("assess_sr") >= {"sr_apply", "sr_train", "sr_pairs", "degrade", "rf_sr",
                                                           "samples", "reference"}
    assert model.dependsOnChildAlgorithms("assess_bicubic") >= {"bicubic", "degrade", "rf_bicubic"}
    assert "sr_train" not in model.dependsOnChildAlgorithms("assess_hr")
    assert model.dependsOnChildAlgorithms("compare") >= {f"assess_{k}" for k in IMAGES}  # one table at the end
    sources = children["sr_apply"].parameterSources()
    assert sources["OUTPUTS"][0].staticValue() == "image"  # the algorithm's default, class, fails on an SR model
    resampling = children["bicubic"].algorithm().parameterDefinition("RESAMPLING")
    assert resampling.options()[children["bicubic"].parameterSources()["RESAMPLING"][0].staticValue()] == "Cubic"
    outputs = {output.name() for output in model.outputDefinitions()}
    assert outputs == {"degrade:lr_image", "sr_apply:sr_image", *(f"assess_{k}:scores" for k in IMAGES),
                       *(f"assess_{k}:report" for k in IMAGES), "compare:comparison", "compare:comparison_report"}
    inputs = {d.name() for d in model.parameterDefinitions() if not d.isDestination()}
    assert inputs == {"hr", "sr_train_hr", "train_labels", "test_labels", "scale", "hr_pixel_size", "sr_epochs",
                      "samples_per_class"}


def test_does_sr_help_model3_is_what_make_sr_model3_writes(tmp_path):
    written = tmp_path / "does_sr_help.model3"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_sr_model3.py"), "--output", str(written)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert written.read_text(encoding="utf-8") == MODEL3.read_text(encoding="utf-8"), (
        "resources/does_sr_help.model3 is stale: run .venv/bin/python scripts/make_sr_model3.py")


def test_the_models_bicubic_step_is_gdal_cubic_convolution_not_cubic_spline(provider, nc, tmp_path):
    """The shipped model's 'Bicubic upsampling' child, run with its own static parameters on a real LR image
    (a window of the 28.5 m NC Landsat scene, x4 to 7.125 m), gives gdal.Warp(resampleAlg="cubic")'s image
    byte for byte, and not cubic spline's (RESAMPLING 3, which the model once set)."""
    import processing
    from osgeo import gdal
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL3))
    child = model.childAlgorithms()["bicubic"]
    static = {name: sources[0].staticValue() for name, sources in child.parameterSources().items()
              if sources and sources[0].staticValue() is not None and name not in ("INPUT", "TARGET_RESOLUTION")}
    assert set(child.parameterSources()) - set(static) == {"INPUT", "TARGET_RESOLUTION"}  # from the chain
    lr = str(tmp_path / "lr.tif")
    gdal.Translate(lr, str(nc / "landsat_multiband.tif"), srcWin=[120, 140, 60, 48])
    pixel = 28.5 / 4
    result = processing.run(child.algorithmId(), {**static, "INPUT": lr, "TARGET_RESOLUTION": pixel,
                                                  "OUTPUT": str(tmp_path / "bicubic.tif")},
                            context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
    made = gdal.Open(result["OUTPUT"])

    def warped(method: str) -> gdal.Dataset:
        return gdal.Warp("", lr, format="MEM", xRes=pixel, yRes=pixel, resampleAlg=method)

    cubic, spline = warped("cubic"), warped("cubicspline")
    assert (made.RasterXSize, made.RasterYSize, made.RasterCount) == (240, 192, 5)
    assert made.GetGeoTransform() == cubic.GetGeoTransform()
    assert made.ReadRaster() == cubic.ReadRaster()  # every band, every byte
    assert made.ReadRaster() != spline.ReadRaster()
