"""Compare accuracy: Assess accuracy reports side by side (real NC maps), names, bad inputs."""

from __future__ import annotations

import csv
import os
import shutil

import numpy as np
import pytest

from patchflow.plugin.engine.errors import PatchFlowError


@pytest.fixture
def two_reports(run_op, nc, gd, tmp_path):
    """Assess accuracy of two maps of the NC scene at the labelled points: a constant map and a noisy one."""
    from osgeo import gdal

    image = gdal.Open(str(nc / "landsat_multiband.tif"))
    reports = []
    for name, values in (("constant", np.full((image.RasterYSize, image.RasterXSize), 5, np.uint8)),
                         ("random", np.random.default_rng(0).integers(1, 8, (image.RasterYSize, image.RasterXSize))
                          .astype(np.uint8))):
        path = tmp_path / f"{name}.tif"
        ds = gdal.GetDriverByName("GTiff").Create(str(path), image.RasterXSize, image.RasterYSize, 1, gdal.GDT_Byte)
        ds.SetGeoTransform(image.GetGeoTransform())
        ds.SetProjection(image.GetProjection())
        ds.GetRasterBand(1).WriteArray(values)
        ds = None
        out, _ = run_op("assess_accuracy", INPUT=str(path), REFERENCE=str(nc / "landsat96_points.shp"),
                        CLASS_FIELD="id", OUTPUT_CSV=str(tmp_path / f"{name}.csv"),
                        OUTPUT_HTML=str(tmp_path / f"{name}.html"))
        reports.append((str(tmp_path / f"{name}.csv"), out))
    return reports


def test_reports_side_by_side_with_the_scores_of_each(run_op, two_reports, tmp_path):
    paths = [path for path, _ in two_reports]
    out, _ = run_op("compare_accuracy", REPORTS=paths, NAMES="constant map;random map",
                    OUTPUT_CSV=str(tmp_path / "c.csv"), OUTPUT_HTML=str(tmp_path / "c.html"))
    rows = list(csv.DictReader(open(tmp_path / "c.csv", encoding="utf-8")))
    assert [r["map"] for r in rows] == ["constant map", "random map"]
    for row, (_, scores) in zip(rows, two_reports):
        assert float(row["kappa"]) == pytest.approx(scores["KAPPA"], abs=1e-4)
        assert float(row["OA"]) == pytest.approx(scores["OA"], abs=1e-4)
    assert any(column.startswith("F1 ") for column in rows[0]) and "random map" in (tmp_path / "c.html").read_text()
    assert out["BEST"] in ("constant map", "random map")


def test_bad_inputs_name_the_parameter(run_op, two_reports, tmp_path):
    paths = [path for path, _ in two_reports]
    with pytest.raises(PatchFlowError) as error:
        run_op("compare_accuracy", REPORTS=paths, NAMES="only one", OUTPUT_CSV=str(tmp_path / "o" / "c.csv"))
    assert error.value.parameter == "NAMES"
    (tmp_path / "not.csv").write_text("a,b\n1,2\n")
    with pytest.raises(PatchFlowError) as error:
        run_op("compare_accuracy", REPORTS=[str(tmp_path / "not.csv")], OUTPUT_CSV=str(tmp_path / "o" / "c.csv"))
    assert error.value.parameter == "REPORTS"
    assert not (tmp_path / "o").exists()


def test_reports_without_pairs_compare_as_before_with_a_note(run_op, two_reports, tmp_path):
    old = []
    for path, _ in two_reports:  # CSVs written before Assess accuracy wrote pairs: none beside them
        copy = tmp_path / "old" / os.path.basename(path)
        copy.parent.mkdir(exist_ok=True)
        shutil.copy(path, copy)
        old.append(str(copy))
    out, reporter = run_op("compare_accuracy", REPORTS=old, OUTPUT_CSV=str(tmp_path / "c.csv"),
                           OUTPUT_HTML=str(tmp_path / "c.html"))
    assert out["MCNEMAR_P"] is None and out["SIGNIFICANCE"] is None and out["SIGNIFICANCE_CSV"] is None
    assert out["BEST_KAPPA_LOW"] is None
    assert any("significance" in w and "_pairs.csv" in w for w in reporter.warnings)
    assert "No pairs for constant, random" in (tmp_path / "c.html").read_text(encoding="utf-8")
    assert not (tmp_path / "c_significance.csv").exists()
    with_pairs, _ = run_op("compare_accuracy", REPORTS=[p for p, _ in two_reports], OUTPUT_CSV=str(tmp_path / "d.csv"))
    assert 0 <= with_pairs["MCNEMAR_P"] < 0.05  # a constant 'forest' map beats a random one
    assert (tmp_path / "d_significance.csv").exists()


def test_maps_assessed_at_other_points_or_with_other_pairs_are_refused(run_op, nc, gd, two_reports, tmp_path):
    from osgeo import gdal

    half = tmp_path / "half.gpkg"  # the first 500 of the 1000 points
    assert gdal.VectorTranslate(str(half), str(nc / "landsat96_points.shp"), where="FID < 500") is not None
    map_path = str(tmp_path / "constant.tif")
    run_op("assess_accuracy", INPUT=map_path, REFERENCE=str(half), CLASS_FIELD="id",
           OUTPUT_CSV=str(tmp_path / "half" / "constant.csv"))
    reports = [two_reports[1][0], str(tmp_path / "half" / "constant.csv")]
    with pytest.raises(PatchFlowError, match="assessed at different places") as caught:
        run_op("compare_accuracy", REPORTS=reports, OUTPUT_CSV=str(tmp_path / "o" / "c.csv"))
    assert caught.value.parameter == "REPORTS" and "same REFERENCE" in caught.value.message
    paths = [path for path, _ in two_reports]
    swapped = [paths[1][:-4] + "_pairs.csv", paths[0][:-4] + "_pairs.csv"]
    with pytest.raises(PatchFlowError, match="does not hold the samples") as caught:
        run_op("compare_accuracy", REPORTS=paths, PAIRS=swapped, OUTPUT_CSV=str(tmp_path / "o" / "c.csv"))
    assert caught.value.parameter == "PAIRS"
    with pytest.raises(PatchFlowError, match="one per report") as caught:
        run_op("compare_accuracy", REPORTS=paths, PAIRS=swapped[:1], OUTPUT_CSV=str(tmp_path / "o" / "c.csv"))
    assert caught.value.parameter == "PAIRS"
    assert not (tmp_path / "o").exists()
