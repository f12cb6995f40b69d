"""Assess accuracy through processing.run on the North Carolina data: outputs, numbers, bad inputs."""

from __future__ import annotations

import csv

import pytest
from qgis.core import QgsProcessingException, QgsVectorLayer


def engine_result(**parameters) -> dict:
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    return run_job(protocol.Job("assess_accuracy", parameters, "qgis-test"), Reporter())


def test_assess_points_outputs_match_the_engine(run_alg, nc, nc_nearest_mean_map, tmp_path):
    nc_map = str(nc_nearest_mean_map)
    points = str(nc / "landsat96_points.shp")
    result = run_alg("assessaccuracy", INPUT=nc_map, REFERENCE=points, CLASS_FIELD="id",
                     OUTPUT_CSV=str(tmp_path / "scores.csv"), OUTPUT_HTML=str(tmp_path / "report.html"),
                     OUTPUT_TABLE=str(tmp_path / "scores.gpkg"))
    engine = engine_result(INPUT=nc_map, REFERENCE=points, CLASS_FIELD="id")
    assert result["OA"] == pytest.approx(engine["OA"]) and 0.2 < result["OA"] < 0.9
    assert result["KAPPA"] == pytest.approx(engine["KAPPA"])
    assert result["N"] == engine["N"] > 800
    with open(result["OUTPUT_CSV"], newline="") as stream:
        rows = {row["name"]: row for row in csv.DictReader(stream)}
    assert float(rows["overall accuracy"]["value"]) == pytest.approx(engine["OA"], abs=1e-6)
    page = open(result["OUTPUT_HTML"], encoding="utf-8").read()
    assert "data:image/png;base64," in page and f"{engine['KAPPA']:.4f}" in page and "water" in page
    table = QgsVectorLayer(result["OUTPUT_TABLE"], "scores", "ogr")
    assert table.isValid() and not table.isSpatial()
    assert table.featureCount() == len(engine["CLASSES"]) + 4
    first = next(table.getFeatures())
    assert first["id"] == 1 and first["reference"] == engine["CLASSES"][0]["reference"]


def test_assess_against_the_label_raster(run_alg, nc, nc_nearest_mean_map, tmp_path):
    nc_map = str(nc_nearest_mean_map)
    labels = str(nc / "landsat96_labelled_pixels.tif")
    result = run_alg("assessaccuracy", INPUT=nc_map, REFERENCE_RASTER=labels,
                     OUTPUT_CSV=str(tmp_path / "s.csv"), OUTPUT_HTML=str(tmp_path / "r.html"))
    engine = engine_result(INPUT=nc_map, REFERENCE_RASTER=labels)
    assert (result["OA"], result["KAPPA"], result["N"]) == pytest.approx((engine["OA"], engine["KAPPA"], engine["N"]))
    assert result["N"] == 2872 and result["OUTPUT_TABLE"] is None


def test_html_output_goes_to_the_results_viewer(provider):
    from qgis.core import QgsApplication

    algorithm = QgsApplication.processingRegistry().algorithmById("patchflow:assessaccuracy")
    assert algorithm.groupId() == "accuracy"
    assert algorithm.outputDefinition("OUTPUT_HTML").type() == "outputHtml"


def test_reference_choice_is_checked(run_alg, nc, nc_nearest_mean_map, tmp_path):
    nc_map = str(nc_nearest_mean_map)
    outputs = {"OUTPUT_CSV": str(tmp_path / "s.csv"), "OUTPUT_HTML": str(tmp_path / "r.html")}
    with pytest.raises(QgsProcessingException, match="exactly one reference"):
        run_alg("assessaccuracy", INPUT=nc_map, **outputs)
    with pytest.raises(QgsProcessingException, match="not both"):
        run_alg("assessaccuracy", INPUT=nc_map, REFERENCE=str(nc / "landsat96_points.shp"), CLASS_FIELD="id",
                REFERENCE_RASTER=str(nc / "landsat96_labelled_pixels.tif"), **outputs)
    with pytest.raises(QgsProcessingException, match="CLASS_FIELD"):
        run_alg("assessaccuracy", INPUT=nc_map, REFERENCE=str(nc / "landsat96_points.shp"), **outputs)
    with pytest.raises(QgsProcessingException, match="integer field"):
        run_alg("assessaccuracy", INPUT=nc_map, REFERENCE=str(nc / "landsat96_points.shp"), CLASS_FIELD="label",
                **outputs)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_assess_a_finer_map_against_a_coarser_reference_raster(run_alg, nc_nearest_mean_map, tmp_path):
    """The 28.5 m NC map against a 4x coarser copy of itself (every 4th pixel, 114 m): the map is aggregated
    onto the copy's grid (majority of 4 x 4 pixels), the share of mixed pixels is an output and in the report."""
    import numpy as np
    from osgeo import gdal

    source = gdal.Open(str(nc_nearest_mean_map))
    fine = source.ReadAsArray()
    coarse = np.ascontiguousarray(fine[1::4, 1::4][:110, :122])
    gt = source.GetGeoTransform()
    copy = str(tmp_path / "coarse.tif")
    ds = gdal.GetDriverByName("GTiff").Create(copy, 122, 110, 1, gdal.GDT_Byte)
    ds.SetGeoTransform((gt[0], gt[1] * 4, 0.0, gt[3], 0.0, gt[5] * 4))
    ds.SetProjection(source.GetProjection())
    ds.GetRasterBand(1).WriteArray(coarse)
    ds = None
    blocks = fine[:440, :488].reshape(110, 4, 122, 4).transpose(0, 2, 1, 3).reshape(110, 122, 16)
    counts = np.stack([(blocks == c).sum(axis=-1) for c in range(1, 8)])
    majority = counts.argmax(axis=0) + 1  # ties: the smallest class
    result = run_alg("assessaccuracy", INPUT=str(nc_nearest_mean_map), REFERENCE_RASTER=copy,
                     OUTPUT_CSV=str(tmp_path / "s.csv"), OUTPUT_HTML=str(tmp_path / "r.html"))
    assert result["N"] == 110 * 122 and result["OA"] == pytest.approx(float((majority == coarse).mean()))
    assert result["MIXED_SHARE"] == pytest.approx(float(((counts > 0).sum(axis=0) > 1).mean()))
    page = open(result["OUTPUT_HTML"], encoding="utf-8").read()
    assert "aggregated onto the reference" in page and f"{result['MIXED_SHARE']:.4f}" in page
    assert engine_result(INPUT=str(nc_nearest_mean_map), REFERENCE_RASTER=copy)["KAPPA"] == pytest.approx(
        result["KAPPA"])
