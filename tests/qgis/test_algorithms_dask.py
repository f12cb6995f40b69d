"""Apply model on a local Dask cluster (EXECUTION local, WORKERS 2) through processing.run and through
qgis_process, equal to the one-process run on the NC scene; "Run on: the PatchFlow setting" follows the
Processing settings (Settings > Options > PatchFlow)."""

from __future__ import annotations

import numpy as np
import pytest
from dask_cluster import nc_fcnn
from osgeo import gdal
from qgis.core import QgsProcessingContext, QgsProcessingFeedback
from test_qgis_process import qgis_process

from patchflow.plugin.declarations import EXECUTION_SETTINGS, EXECUTIONS

LOCAL = [value for value, _ in EXECUTIONS].index("local")
PROCESS = [value for value, _ in EXECUTIONS].index("process")


@pytest.fixture(scope="module")
def served(nc, tmp_path_factory):
    """The NC FCNN and its one-process class map (the engine, in this process)."""
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    folder = tmp_path_factory.mktemp("dask_qgis")
    model = nc_fcnn(folder)
    image = str(nc / "landsat_multiband.tif")
    one = run_job(protocol.Job("apply_model", {"MODEL": model, "SOURCE1": [image], "TILE_SIZE": 64,
                                               "OUTPUT": str(folder / "one.tif")}, "one"), Reporter())["OUTPUT"]
    return model, image, gdal.Open(one).ReadAsArray()


@pytest.fixture(scope="module")
def qgis_env(tmp_path_factory) -> dict[str, str]:
    import os

    return dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(tmp_path_factory.mktemp("qgis-config")),
                QT_QPA_PLATFORM="offscreen")


@pytest.mark.slow
def test_apply_model_on_a_local_cluster_through_processing_run(run_alg, served, tmp_path):
    model, image, expected = served
    result = run_alg("applymodel", MODEL=str(model), SOURCE1=[image], TILE_SIZE=64, EXECUTION=LOCAL, WORKERS=2,
                     WINDOW_TILES=2, OUTPUT=str(tmp_path / "map.tif"))
    ds = gdal.Open(result["OUTPUT"])
    assert np.array_equal(ds.ReadAsArray(), expected)
    assert ds.GetRasterBand(1).GetColorTable() is not None and (tmp_path / "map.qml").exists()


@pytest.mark.slow
def test_apply_model_on_a_local_cluster_through_qgis_process(qgis_env, served, tmp_path):
    model, image, expected = served
    result = qgis_process(qgis_env, "applymodel", MODEL=model, SOURCE1=image, TILE_SIZE=64, EXECUTION=LOCAL,
                          WORKERS=2, WINDOW_TILES=3, OUTPUT=tmp_path / "map.tif")
    assert np.array_equal(gdal.Open(result["OUTPUT"]).ReadAsArray(), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.qml", "map.tif", "map.tif.aux.xml"]


def test_run_on_the_patchflow_setting_follows_the_processing_settings(provider, served, tmp_path):
    from processing.core.ProcessingConfig import ProcessingConfig
    from qgis.core import QgsApplication

    from patchflow.algorithms.base import inputs_without_side_files

    model, image, _ = served
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("patchflow:applymodel")
    parameters = {"MODEL": model, "SOURCE1": [image], "OUTPUT": str(tmp_path / "map.tif"), "EXECUTION": 0,
                  "WORKERS": 7, "SCHEDULER": "tcp://elsewhere:1"}
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    modes = [value for value, _ in EXECUTIONS if value != "setting"]
    # as processAlgorithm does: the layers QGIS loads for the job write nothing beside the inputs
    with inputs_without_side_files():
        try:
            ProcessingConfig.setSettingValue(EXECUTION_SETTINGS["EXECUTION"], modes.index("local"))
            ProcessingConfig.setSettingValue(EXECUTION_SETTINGS["WORKERS"], 3)
            job = algorithm.job(parameters, context, feedback)
            assert (job["EXECUTION"], job["WORKERS"], job["SCHEDULER"]) == ("local", 3, "")
            job = algorithm.job({**parameters, "EXECUTION": LOCAL}, context, feedback)  # its own choice wins
            assert (job["EXECUTION"], job["WORKERS"]) == ("local", 7)
            ProcessingConfig.setSettingValue(EXECUTION_SETTINGS["EXECUTION"], modes.index("process"))
            assert algorithm.job(parameters, context, feedback)["EXECUTION"] == "process"
        finally:
            ProcessingConfig.setSettingValue(EXECUTION_SETTINGS["EXECUTION"], modes.index("process"))
            ProcessingConfig.setSettingValue(EXECUTION_SETTINGS["WORKERS"], 2)


@pytest.mark.slow
def test_extract_patches_on_a_local_cluster_through_processing_run(run_alg, nc, tmp_path):
    """NC resampled to 14.25 m (978 x 886 px: two rows of 512-pixel chunks, a window each): the patches-image,
    the labels image and the manifest's counts and statistics of a run on two workers are the one-process run's."""
    import json

    image = str(tmp_path / "fine.tif")
    gdal.Translate(image, str(nc / "landsat_multiband.tif"), xRes=14.25, yRes=14.25, resampleAlg="bilinear")
    results = {}
    feedback = QgsProcessingFeedback()
    for name, execution in (("one", PROCESS), ("dask", LOCAL)):
        (tmp_path / name).mkdir()
        results[name] = run_alg("extractpatches", feedback, INPUT=str(nc / "landsat96_points.shp"), SOURCE1=[image],
                                PATCH_SIZE1=32, CLASS_FIELD="label", EXECUTION=execution, WORKERS=2,
                                OUTPUT=str(tmp_path / name / "train.json"))
    assert "Dask (local): 2 window(s)" in feedback.textLog()
    one, dask = results["one"], results["dask"]
    assert dask["COUNT"] == one["COUNT"] > 500
    for key in ("PATCHES1", "LABELS"):
        assert np.array_equal(gdal.Open(dask[key]).ReadAsArray(), gdal.Open(one[key]).ReadAsArray()), key
    manifests = [json.loads(open(r["OUTPUT"], encoding="utf-8").read()) for r in (one, dask)]
    bands = [m["sources"][0].pop("bands") for m in manifests]
    assert [m["n_patches"] for m in manifests] == [one["COUNT"]] * 2
    assert manifests[0]["classes"] == manifests[1]["classes"]
    for band_one, band_dask in zip(*bands):
        assert band_dask["mean"] == pytest.approx(band_one["mean"], rel=1e-9)
        assert band_dask["std"] == pytest.approx(band_one["std"], rel=1e-9)
        assert (band_dask["min"], band_dask["max"]) == (band_one["min"], band_one["max"])
    assert sorted(p.name for p in (tmp_path / "dask").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


@pytest.mark.slow
def test_extract_patches_on_a_local_cluster_through_qgis_process(qgis_env, run_alg, nc, tmp_path):
    """NC and its label raster, two workers, one window a row of chunks (WINDOW_TILES 1): the patches-images and
    the labels image are the one-process run's (processing.run in this process)."""
    image = str(tmp_path / "fine.tif")
    gdal.Translate(image, str(nc / "landsat_multiband.tif"), xRes=14.25, yRes=14.25, resampleAlg="bilinear")
    common = {"INPUT": str(nc / "landsat96_points.shp"), "SOURCE1": image, "PATCH_SIZE1": 32, "CLASS_FIELD": "label",
              "LABEL_RASTER": str(nc / "landsat96_labelled_pixels.tif"), "LABEL_PATCH_SIZE": 16}
    (tmp_path / "one").mkdir()
    (tmp_path / "dask").mkdir()
    one = run_alg("extractpatches", **{**common, "SOURCE1": [image]}, EXECUTION=PROCESS,
                  OUTPUT=str(tmp_path / "one" / "t.json"))
    dask = qgis_process(qgis_env, "extractpatches", **common, EXECUTION=LOCAL, WORKERS=2, WINDOW_TILES=1,
                        OUTPUT=tmp_path / "dask" / "t.json")
    assert dask["COUNT"] == one["COUNT"] > 500
    for key in ("PATCHES1", "LABEL_PATCHES", "LABELS"):
        assert np.array_equal(gdal.Open(dask[key]).ReadAsArray(), gdal.Open(one[key]).ReadAsArray()), key
    assert sorted(p.name for p in (tmp_path / "dask").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
