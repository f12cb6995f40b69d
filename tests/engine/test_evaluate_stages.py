"""Assess accuracy, Compare accuracy and Assess image quality say what they are doing: reading the reference,
the map window by window (windows i/N), the confusion matrix, bootstrapping (resamples i/N), the strips of
each pass (strips i/N), writing the reports; progress only rises. Real data: the NC Landsat-7 scene and labels."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from patchflow.tests.engine.stagerecorder import counted, rising, run, said_in_order

REFERENCES = {  # reference parameters, the stage that reads it, the stage of each window of the map
    "points": ({"REFERENCE": "landsat96_points.shp", "CLASS_FIELD": "id"},
               "reading the reference points of landsat96_points", "reading the map at the points: windows"),
    "polygons": ({"REFERENCE": "landsat96_polygons.shp", "CLASS_FIELD": "id"},
                 "reading the reference polygons of landsat96_polygons", "reading the map in the polygons: windows"),
    "raster": ({"REFERENCE_RASTER": "landsat96_labelled_pixels.tif"},
               r"reading the reference raster landsat96_labelled_pixels\.tif",
               "reading the map and the reference: windows"),
}


def write_map(path, like, values) -> str:
    ds = gdal.GetDriverByName("GTiff").Create(str(path), like.RasterXSize, like.RasterYSize, 1, gdal.GDT_Byte,
                                              ["TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64"])
    ds.SetGeoTransform(like.GetGeoTransform())
    ds.SetProjection(like.GetProjection())
    ds.GetRasterBand(1).WriteArray(values)
    ds = None
    return str(path)


@pytest.fixture
def maps(nc, tmp_path) -> list[str]:
    """Two class maps of the NC scene in 64 x 64 px tiles: a constant one and a noisy one."""
    like = gdal.Open(str(nc / "landsat_multiband.tif"))
    shape = (like.RasterYSize, like.RasterXSize)
    return [write_map(tmp_path / "constant.tif", like, np.full(shape, 5, np.uint8)),
            write_map(tmp_path / "random.tif", like, np.random.default_rng(0).integers(1, 8, shape).astype(np.uint8))]


@pytest.mark.parametrize("kind", sorted(REFERENCES))
def test_assess_accuracy_reads_the_reference_the_map_then_scores_and_writes(nc, maps, tmp_path, monkeypatch, kind):
    from patchflow.plugin.engine.data import sampling
    from patchflow.plugin.engine.evaluate import assess
    from patchflow.plugin.engine.geodata import raster

    # windows of the map's 64 x 64 px tiles (and polygons burnt 64 x 64 px at a time), not of about 1 Mpixel
    monkeypatch.setattr(assess.MapBand, "windows", lambda self: [(x, y, min(64, 489 - x), min(64, 443 - y))
                                                                 for y in range(0, 443, 64) for x in range(0, 489, 64)])
    monkeypatch.setattr(sampling, "block_windows", lambda w, h, block: raster.block_windows(w, h, (64, 64), 64 * 64))
    given, reading, windows = REFERENCES[kind]
    parameters = {name: str(nc / value) if name != "CLASS_FIELD" else value for name, value in given.items()}
    _, reporter = run("assess_accuracy", INPUT=maps[1], OUTPUT_CSV=str(tmp_path / "scores.csv"),
                      OUTPUT_HTML=str(tmp_path / "report.html"), **parameters)
    said_in_order(reporter.logged, [reading, "computing the confusion matrix and the scores", "writing the reports"])
    steps = len(reporter.steps(windows + r" .*"))
    assert steps >= 8, reporter.texts  # the windows holding points, under the polygons, or all 64
    counted(reporter, windows, steps)
    rising(reporter)


def test_compare_accuracy_bootstraps_each_pair_and_map_in_chunks(nc, maps, tmp_path, monkeypatch):
    from patchflow.plugin.engine.evaluate import significance

    reports = []
    for path in maps:
        report = path.replace(".tif", ".csv")
        run("assess_accuracy", INPUT=path, REFERENCE=str(nc / "landsat96_points.shp"), CLASS_FIELD="id",
            OUTPUT_CSV=report)
        reports.append(report)
    monkeypatch.setattr(significance, "CHUNK", 20_000)  # about 20 resamples of the ~900 points at once
    _, reporter = run("compare_accuracy", REPORTS=reports, RESAMPLES=400, OUTPUT_CSV=str(tmp_path / "compare.csv"),
                      OUTPUT_HTML=str(tmp_path / "compare.html"))
    said_in_order(reporter.logged, [
        "reading the 2 accuracy reports and their pairs", r"bootstrapping constant against random \(400 resamples\)",
        r"bootstrapping constant \(400 resamples\)", r"bootstrapping random \(400 resamples\)",
        "writing the tables and the report"])
    for what in ("constant against random", "constant", "random"):
        assert len(reporter.steps(f"bootstrapping {what}: resamples .*")) >= 10
        counted(reporter, f"bootstrapping {what}: resamples", 400)
    rising(reporter)


@pytest.mark.parametrize("given_range", [None, 3000.0])
def test_assess_image_quality_reports_each_pass_strip_by_strip(nc, tmp_path, monkeypatch, given_range):
    from patchflow.plugin.engine.evaluate import qualityscores

    image = str(nc / "landsat_multiband.tif")
    x0, _, _, y0, _, _ = gdal.Open(image).GetGeoTransform()
    low = str(tmp_path / "lr_57m.tif")
    gdal.Warp(low, image, xRes=57, yRes=57, resampleAlg="average", outputType=gdal.GDT_Float32,
              outputBounds=(x0, y0 - 221 * 57, x0 + 244 * 57, y0))
    monkeypatch.setattr(qualityscores, "STRIP_PIXELS", 489 * 20)  # strips of 20 rows: 23
    result, reporter = run("assess_image_quality", INPUT=low, REFERENCE=image, LOW_RESOLUTION=low,
                           DATA_RANGE=given_range, OUTPUT_CSV=str(tmp_path / "quality.csv"))
    passes = ["measuring errors and statistics and SSIM"] if given_range else [
        "measuring errors and statistics", "measuring SSIM"]
    said_in_order(reporter.logged, ["placing the images on the reference's grid",
                                    "fitting the sharpened bicubic baseline", *passes,
                                    "writing the tables and the report"])
    for what in passes:
        counted(reporter, what.replace("measuring ", "") + ": strips", result["STRIPS"])
    assert result["STRIPS"] == 23
    rising(reporter)
