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
