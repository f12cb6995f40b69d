"""Assess accuracy: a class raster against reference points, polygons or a label raster."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from osgeo import gdal, ogr, osr
from sklearn import metrics as sk

from patchflow.plugin.engine.errors import PatchFlowError

ORIGIN = (500000.0, 5800000.0)


def class_map() -> np.ndarray:
    """20 x 30 map: classes 1..3 in vertical stripes, a nodata (255) corner."""
    values = np.ones((20, 30), dtype=np.uint8)
    values[:, 10:20] = 2
    values[:, 20:] = 3
    values[:4, :4] = 255
    return values


def pixel_xy(col, row):
    return ORIGIN[0] + np.asarray(col) + 0.5, ORIGIN[1] - np.asarray(row) - 0.5


def write_polygons(path, squares: list[tuple[int, int, int, int, object]], field: str = "class",
                   epsg: int = 32631) -> str:
    """Squares (col0, row0, col1, row1, class) in pixel units of the synthetic map."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("polygons", srs, ogr.wkbPolygon)
    text = isinstance(squares[0][4], str)
    layer.CreateField(ogr.FieldDefn(field, ogr.OFTString if text else ogr.OFTInteger))
    for c0, r0, c1, r1, value in squares:
        x0, y0, x1, y1 = ORIGIN[0] + c0, ORIGIN[1] - r0, ORIGIN[0] + c1, ORIGIN[1] - r1
        ring = f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField(field, value)
        feature.SetGeometry(ogr.CreateGeometryFromWkt(ring))
        layer.CreateFeature(feature)
    ds = None
    return str(path)


@pytest.fixture
def scene(tmp_path, gd):
    return gd.write_raster(tmp_path / "map.tif", class_map(), nodata=255, origin=ORIGIN)


def outputs(folder) -> dict:
    return {"OUTPUT_CSV": str(folder / "out" / "scores.csv"), "OUTPUT_HTML": str(folder / "out" / "report.html"),
            "OUTPUT_TABLE": str(folder / "out" / "scores.gpkg")}


def test_points_known_confusion(run_op, scene, tmp_path, gd):
    cols = np.array([1, 2, 12, 15, 25, 26, 27, 5, 12, 1, 100])
    rows = np.array([10, 11, 5, 6, 7, 8, 9, 15, 15, 1, 5])
    truth = np.array([1, 2, 2, 2, 3, 3, 1, 1, 3, 1, 2])  # (1,1) is nodata, (100,5) outside
    xs, ys = pixel_xy(cols, rows)
    points = gd.write_points(tmp_path / "points.gpkg", xs, ys, {"class": truth.tolist()})
    out, reporter = run_op("assess_accuracy", INPUT=scene, REFERENCE=points, CLASS_FIELD="class", **outputs(tmp_path))
    mapped = class_map()[rows[:9], cols[:9]]
    assert out["MATRIX"] == sk.confusion_matrix(truth[:9], mapped).tolist()
    assert out["N"] == 9 and out["SKIPPED_NODATA"] == 1 and out["SKIPPED_OUTSIDE"] == 1
    assert out["OA"] == pytest.approx(sk.accuracy_score(truth[:9], mapped))
    assert out["KAPPA"] == pytest.approx(sk.cohen_kappa_score(truth[:9], mapped))
    assert any("nodata" in w for w in reporter.warnings) and any("outside" in w for w in reporter.warnings)
    assert [c["id"] for c in out["CLASSES"]] == [1, 2, 3]


def test_points_in_another_crs_are_reprojected(run_op, scene, tmp_path, gd):
    cols, rows = np.array([3, 13, 23, 24]), np.array([10, 10, 10, 12])
    xs, ys = pixel_xy(cols, rows)
    source, target = osr.SpatialReference(), osr.SpatialReference()
    source.ImportFromEPSG(32631)
    target.ImportFromEPSG(4326)
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(source, target)
    lonlat = np.array([transform.TransformPoint(float(x), float(y))[:2] for x, y in zip(xs, ys)])
    points = gd.write_points(tmp_path / "ll.gpkg", lonlat[:, 0], lonlat[:, 1], {"class": [1, 2, 3, 2]}, epsg=4326)
    out, _ = run_op("assess_accuracy", INPUT=scene, REFERENCE=points, CLASS_FIELD="class")
    assert out["N"] == 4 and out["MATRIX"] == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]


def test_polygons_count_every_pixel_centre_inside(run_op, scene, tmp_path):
    # class 2 square over stripes 1|2 (cols 8-11), class 3 square fully in stripe 3, one over the nodata corner
    polygons = write_polygons(tmp_path / "poly.gpkg", [(8, 5, 12, 8, 2), (22, 10, 25, 12, 3), (0, 0, 3, 3, 1)])
    out, _ = run_op("assess_accuracy", INPUT=scene, REFERENCE=polygons, CLASS_FIELD="class", **outputs(tmp_path))
    values = class_map()
    mapped_2 = values[5:8, 8:12].ravel()  # 3 rows x 4 cols: two columns of 1, two of 2
    mapped_3 = values[10:12, 22:25].ravel()
    reference = np.concatenate([np.full(12, 2), np.full(6, 3)])
    mapped = np.concatenate([mapped_2, mapped_3])
    assert out["N"] == 18 and out["SKIPPED_NODATA"] == 9
    assert out["MATRIX"] == sk.confusion_matrix(reference, mapped).tolist() == [[0, 0, 0], [6, 6, 0], [0, 0, 6]]
    assert out["KAPPA"] == pytest.approx(sk.cohen_kappa_score(reference, mapped))


def test_text_class_field_matched_on_the_maps_class_names(run_op, tmp_path, gd):
    names = ["", "water", "Forest", "urban"]
    colors = {1: (0, 0, 255, 255), 2: (0, 128, 0, 255), 3: (200, 0, 0, 255)}
    scene = gd.write_raster(tmp_path / "named.tif", class_map(), nodata=255, origin=ORIGIN,
                            category_names=names, color_table=colors)
    polygons = write_polygons(tmp_path / "text.gpkg", [(1, 10, 3, 12, "water"), (12, 10, 14, 12, "forest"),
                                                       (22, 10, 24, 12, "water")], field="label")
    out, _ = run_op("assess_accuracy", INPUT=scene, REFERENCE=polygons, CLASS_FIELD="label")
    assert out["MATRIX"] == [[4, 0, 4], [0, 4, 0], [0, 0, 0]]
    assert [(c["id"], c["name"], c["color"]) for c in out["CLASSES"]] == [
        (1, "water", "#0000ff"), (2, "Forest", "#008000"), (3, "urban", "#c80000")]
    bad = write_polygons(tmp_path / "bad.gpkg", [(1, 10, 3, 12, "lake")], field="label")
    with pytest.raises(PatchFlowError, match="lake") as caught:
        run_op("assess_accuracy", INPUT=scene, REFERENCE=bad, CLASS_FIELD="label")
    assert caught.value.parameter == "CLASS_FIELD"


def test_text_class_field_without_map_names_asks_for_an_integer_field(run_op, scene, tmp_path):
    polygons = write_polygons(tmp_path / "text.gpkg", [(1, 10, 3, 12, "water")], field="label")
    with pytest.raises(PatchFlowError, match="integer field") as caught:
        run_op("assess_accuracy", INPUT=scene, REFERENCE=polygons, CLASS_FIELD="label")
    assert caught.value.parameter == "CLASS_FIELD"


def test_label_raster_on_the_same_grid(run_op, scene, tmp_path, gd):
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, size=(20, 30)).astype(np.int16)  # 0 = no label
    labels[0, :] = -1  # nodata
    reference = gd.write_raster(tmp_path / "labels.tif", labels, nodata=-1, origin=ORIGIN)
    out, _ = run_op("assess_accuracy", INPUT=scene, REFERENCE_RASTER=reference, **outputs(tmp_path))
    mapped = class_map()
    keep = (labels > 0) & (mapped != 255)
    assert out["N"] == int(keep.sum())
    assert out["SKIPPED_NODATA"] == int(((labels > 0) & (mapped == 255)).sum())
    assert out["MATRIX"] == sk.confusion_matrix(labels[keep], mapped[keep]).tolist()
    assert out["OA"] == pytest.approx(sk.accuracy_score(labels[keep], mapped[keep]))
    assert out["KAPPA"] == pytest.approx(sk.cohen_kappa_score(labels[keep], mapped[keep]))


def test_label_raster_with_another_extent_is_read_on_the_maps_grid(run_op, scene, tmp_path, gd):
    """The reference starts 5 columns right and 3 rows down of the map and runs past its edge."""
    rng = np.random.default_rng(6)
    labels = rng.integers(1, 4, size=(25, 40)).astype(np.uint8)
    reference = gd.write_raster(tmp_path / "shifted.tif", labels, origin=(ORIGIN[0] + 5, ORIGIN[1] - 3))
    out, _ = run_op("assess_accuracy", INPUT=scene, REFERENCE_RASTER=reference)
    mapped = class_map()[3:, 5:]
    overlap = labels[:mapped.shape[0], :mapped.shape[1]]
    keep = mapped != 255
    assert out["N"] == int(keep.sum())
    assert out["MATRIX"] == sk.confusion_matrix(overlap[keep], mapped[keep]).tolist()


def test_label_raster_with_zero_as_a_named_class_keeps_it(run_op, tmp_path, gd):
    values = np.zeros((4, 4), np.uint8)
    values[:, 2:] = 1
    scene = gd.write_raster(tmp_path / "m.tif", values, origin=ORIGIN)
    named = gd.write_raster(tmp_path / "r.tif", np.zeros((4, 4), np.uint8), origin=ORIGIN,
                            category_names=["bare", "crop"])
    out, _ = run_op("assess_accuracy", INPUT=scene, REFERENCE_RASTER=named)
    assert out["N"] == 16 and out["MATRIX"] == [[8, 8], [0, 0]]
    unnamed = gd.write_raster(tmp_path / "u.tif", np.where(values == 1, 1, 0).astype(np.uint8), origin=ORIGIN)
    out, _ = run_op("assess_accuracy", INPUT=scene, REFERENCE_RASTER=unnamed)
    assert out["N"] == 8 and out["OA"] == 1.0


def test_outputs_csv_html_and_tables(run_op, scene, tmp_path, gd):
    xs, ys = pixel_xy(np.array([5, 15, 25, 26]), np.array([10, 10, 10, 10]))
    points = gd.write_points(tmp_path / "p.gpkg", xs, ys, {"class": [1, 2, 3, 1]})
    paths = outputs(tmp_path)
    out, _ = run_op("assess_accuracy", INPUT=scene, REFERENCE=points, CLASS_FIELD="class", **paths)
    assert out["OA"] == pytest.approx(0.75)
    with open(paths["OUTPUT_CSV"], newline="") as stream:
        rows = {row["name"]: row for row in csv.DictReader(stream)}
    assert float(rows["overall accuracy"]["value"]) == pytest.approx(0.75)
    assert float(rows["kappa"]["value"]) == pytest.approx(out["KAPPA"], abs=1e-6)
    page = open(paths["OUTPUT_HTML"], encoding="utf-8").read()
    assert "data:image/png;base64," in page and "0.7500" in page and f"{out['KAPPA']:.4f}" in page
    ds = ogr.Open(paths["OUTPUT_TABLE"])
    layer = ds.GetLayer(0)
    assert layer.GetGeomType() == ogr.wkbNone and layer.GetFeatureCount() == 3 + 4
    first = layer.GetNextFeature()
    assert (first["id"], first["reference"], first["correct"], first["pred_3"]) == (1, 2, 1, 1)
    ds = None
    csv_table = tmp_path / "t" / "scores.csv"
    out, _ = run_op("assess_accuracy", INPUT=scene, REFERENCE=points, CLASS_FIELD="class", OUTPUT_TABLE=str(csv_table))
    assert (tmp_path / "t" / "scores.csvt").exists()
    json.dumps(out)


def error_of(run_op, **parameters) -> PatchFlowError:
    with pytest.raises(PatchFlowError) as caught:
        run_op("assess_accuracy", **parameters)
    return caught.value


def test_bad_inputs_name_the_parameter_and_leave_no_files(run_op, scene, tmp_path, gd):
    xs, ys = pixel_xy(np.array([5]), np.array([5]))
    points = gd.write_points(tmp_path / "p.gpkg", xs, ys, {"class": [1]})
    far = gd.write_points(tmp_path / "far.gpkg", xs + 1e5, ys, {"class": [1]})
    labels = gd.write_raster(tmp_path / "l.tif", class_map(), origin=ORIGIN)
    other_crs = gd.write_raster(tmp_path / "crs.tif", class_map(), origin=ORIGIN, epsg=32632)
    skewed = gd.write_raster(tmp_path / "skewed.tif", class_map(), origin=ORIGIN)
    gdal.Open(skewed, gdal.GA_Update).SetGeoTransform((ORIGIN[0], 2.0, 0.0, ORIGIN[1], 0.0, -0.5))  # 2 m x 0.5 m
    out = outputs(tmp_path)
    cases = [
        ({}, "REFERENCE", "exactly one"),
        ({"REFERENCE": points, "CLASS_FIELD": "class", "REFERENCE_RASTER": labels}, "REFERENCE_RASTER", "not both"),
        ({"REFERENCE": points}, "CLASS_FIELD", "class field"),
        ({"REFERENCE": points, "CLASS_FIELD": "nope"}, "CLASS_FIELD", "no field"),
        ({"REFERENCE": far, "CLASS_FIELD": "class"}, "REFERENCE", "map covers x 500000.0 to 500030.0"),
        ({"REFERENCE_RASTER": other_crs}, "REFERENCE_RASTER", "32632"),
        ({"REFERENCE_RASTER": skewed}, "REFERENCE_RASTER", "coarser along the other"),
        ({"REFERENCE": points, "CLASS_FIELD": "class", "BAND": 2}, "BAND", "band 2"),
        ({"REFERENCE": points, "CLASS_FIELD": "class", "OUTPUT_TABLE": str(tmp_path / "out" / "t.shp")},
         "OUTPUT_TABLE", ".gpkg"),
    ]
    before = gd.folder_entries(tmp_path)
    for extra, parameter, text in cases:
        error = error_of(run_op, INPUT=scene, **{**out, **extra})
        assert error.parameter == parameter, (extra, error)
        assert text in error.message, (extra, error.message)
        assert gd.folder_entries(tmp_path) == before
    far_error = error_of(run_op, INPUT=scene, REFERENCE=far, CLASS_FIELD="class")
    assert "1 outside" in far_error.message and "600005" in far_error.message


# ---- real data ------------------------------------------------------------------------------


def sample_at_points(raster_path, points_path, field):
    """(reference, mapped) pairs read independently: every point's pixel, nodata skipped."""
    ds = gdal.Open(str(raster_path))
    gt = ds.GetGeoTransform()
    band = ds.GetRasterBand(1)
    values, nodata = band.ReadAsArray(), band.GetNoDataValue()
    source = ogr.Open(str(points_path))
    layer = source.GetLayer(0)
    reference, mapped = [], []
    for feature in layer:
        x, y = feature.GetGeometryRef().GetPoint_2D()
        col, row = int(np.floor((x - gt[0]) / gt[1])), int(np.floor((y - gt[3]) / gt[5]))
        if 0 <= row < ds.RasterYSize and 0 <= col < ds.RasterXSize and values[row, col] != nodata:
            reference.append(feature[field])
            mapped.append(int(values[row, col]))
    return np.array(reference), np.array(mapped)


def check_sklearn(out, reference, mapped):
    labels = sorted(set(reference) | set(mapped))
    assert [c["id"] for c in out["CLASSES"]] == labels
    assert out["N"] == len(reference)
    assert out["MATRIX"] == sk.confusion_matrix(reference, mapped, labels=labels).tolist()
    assert out["OA"] == pytest.approx(sk.accuracy_score(reference, mapped), abs=1e-12)
    assert out["KAPPA"] == pytest.approx(sk.cohen_kappa_score(reference, mapped), abs=1e-12)
    _, _, f1, _ = sk.precision_recall_fscore_support(reference, mapped, labels=labels, zero_division=0)
    assert [c["f1"] for c in out["CLASSES"]] == pytest.approx(f1.tolist(), abs=1e-12)
    assert out["MACRO_F1"] == pytest.approx(sk.f1_score(reference, mapped, average="macro", zero_division=0))


def test_real_labelled_pixels_against_points(run_op, nc, tmp_path):
    out, _ = run_op("assess_accuracy", INPUT=str(nc / "landsat96_labelled_pixels.tif"),
                    REFERENCE=str(nc / "landsat96_points.shp"), CLASS_FIELD="id", **outputs(tmp_path))
    reference, mapped = sample_at_points(nc / "landsat96_labelled_pixels.tif", nc / "landsat96_points.shp", "id")
    check_sklearn(out, reference, mapped)
    assert out["N"] + out["SKIPPED_NODATA"] + out["SKIPPED_OUTSIDE"] == 1000
    names = {c["id"]: c["name"] for c in out["CLASSES"]}
    assert names[6] == "water"  # from the points' text field 'label'


def test_real_classification_against_points(run_op, nc, nc_nearest_mean_map, tmp_path):
    out, _ = run_op("assess_accuracy", INPUT=str(nc_nearest_mean_map), REFERENCE=str(nc / "landsat96_points.shp"),
                    CLASS_FIELD="id", **outputs(tmp_path))
    reference, mapped = sample_at_points(nc_nearest_mean_map, nc / "landsat96_points.shp", "id")
    assert 0.2 < out["OA"] < 0.9 and len(reference) > 800
    check_sklearn(out, reference, mapped)


def test_real_classification_against_polygons_and_label_raster(run_op, nc, nc_nearest_mean_map):
    source = gdal.Open(str(nc_nearest_mean_map))
    burnt = gdal.GetDriverByName("MEM").Create("", source.RasterXSize, source.RasterYSize, 1, gdal.GDT_Int32)
    burnt.SetGeoTransform(source.GetGeoTransform())
    burnt.SetProjection(source.GetProjection())
    polygons = ogr.Open(str(nc / "landsat96_polygons.shp"))
    gdal.RasterizeLayer(burnt, [1], polygons.GetLayer(0), options=["ATTRIBUTE=id"])
    reference, mapped = burnt.ReadAsArray(), source.ReadAsArray()
    inside = reference > 0
    out, _ = run_op("assess_accuracy", INPUT=str(nc_nearest_mean_map), REFERENCE=str(nc / "landsat96_polygons.shp"),
                    CLASS_FIELD="id")
    check_sklearn(out, reference[inside], mapped[inside])
    labels = gdal.Open(str(nc / "landsat96_labelled_pixels.tif")).ReadAsArray()
    labelled = labels > 0
    out, _ = run_op("assess_accuracy", INPUT=str(nc_nearest_mean_map),
                    REFERENCE_RASTER=str(nc / "landsat96_labelled_pixels.tif"))
    check_sklearn(out, labels[labelled].astype(int), mapped[labelled])


def test_cancel_midway_leaves_no_files(run_cancelled, tmp_path, gd):
    values = np.tile(np.arange(1, 4, dtype=np.uint8), (3000, 1000))
    options = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256"]
    scene = gd.write_raster(tmp_path / "big.tif", values, origin=ORIGIN, options=options)
    labels = gd.write_raster(tmp_path / "big_labels.tif", values[:, ::-1].copy(), origin=ORIGIN, options=options)
    before = gd.folder_entries(tmp_path)
    error = run_cancelled("assess_accuracy", after=2, INPUT=scene, REFERENCE_RASTER=labels, **outputs(tmp_path))
    assert type(error).__name__ == "Cancelled"
    assert gd.folder_entries(tmp_path) == before


def test_pairs_file_holds_every_sample_scored_or_skipped(run_op, scene, tmp_path, gd):
    cols = np.array([1, 2, 12, 25, 1, 100])
    rows = np.array([10, 11, 5, 7, 1, 5])
    truth = np.array([1, 2, 2, 3, 1, 2])  # (1,1) is nodata, (100,5) outside
    xs, ys = pixel_xy(cols, rows)
    xs = xs + 0.25  # a point, not its pixel's centre
    points = gd.write_points(tmp_path / "points.gpkg", xs, ys, {"class": truth.tolist()})
    out, _ = run_op("assess_accuracy", INPUT=scene, REFERENCE=points, CLASS_FIELD="class", **outputs(tmp_path))
    assert out["PAIRS"] == str(tmp_path / "out" / "scores_pairs.csv")
    rows_read = list(csv.DictReader(open(out["PAIRS"], encoding="utf-8")))
    found = {(float(r["x"]), float(r["y"])): (int(r["reference"]), r["predicted"]) for r in rows_read}
    mapped = class_map()
    expected = {(x, y): (int(t), "" if c >= 30 or mapped[r, c] == 255 else str(mapped[r, c]))
                for x, y, t, c, r in zip(xs.tolist(), ys.tolist(), truth, cols, rows)}
    assert found == expected and len(rows_read) == 6
    reference = np.array([int(r["reference"]) for r in rows_read if r["predicted"]])
    predicted = np.array([int(r["predicted"]) for r in rows_read if r["predicted"]])
    assert out["KAPPA"] == pytest.approx(sk.cohen_kappa_score(reference, predicted))


def test_pairs_of_a_label_raster_are_at_the_pixel_centres(run_op, scene, tmp_path, gd):
    labels = np.zeros((20, 30), dtype=np.int16)
    labels[2, 5], labels[15, 25], labels[1, 1] = 1, 3, 2  # (1, 1) on the map's nodata
    reference = gd.write_raster(tmp_path / "labels.tif", labels, nodata=-1, origin=ORIGIN)
    out, _ = run_op("assess_accuracy", INPUT=scene, REFERENCE_RASTER=reference, OUTPUT_CSV=str(tmp_path / "s.csv"))
    rows_read = list(csv.DictReader(open(out["PAIRS"], encoding="utf-8")))
    centres = [pixel_xy(c, r) for c, r in ((5, 2), (25, 15), (1, 1))]
    assert sorted((float(r["x"]), float(r["y"]), r["reference"], r["predicted"]) for r in rows_read) == sorted(
        [(float(x), float(y), ref, pred) for (x, y), ref, pred in zip(centres, ("1", "3", "2"), ("1", "3", ""))])
    out, _ = run_op("assess_accuracy", INPUT=scene, REFERENCE_RASTER=reference)
    assert out["PAIRS"] is None  # no scores CSV, no pairs


def test_too_many_samples_leave_an_empty_pairs_file_and_say_so(run_op, scene, tmp_path, gd, monkeypatch):
    from patchflow.plugin.engine.evaluate import pairs

    labels = np.tile(np.array([1, 2, 3], dtype=np.int16), (20, 10))
    reference = gd.write_raster(tmp_path / "labels.tif", labels, nodata=-1, origin=ORIGIN)
    stale = tmp_path / "s_pairs.csv"
    stale.write_text("x,y,reference,predicted\n0.5,0.5,1,1\n")  # another map's, left from an older run
    monkeypatch.setattr(pairs, "LIMIT", 100)
    out, reporter = run_op("assess_accuracy", INPUT=scene, REFERENCE_RASTER=reference,
                           OUTPUT_CSV=str(tmp_path / "s.csv"))
    assert out["PAIRS"] is None and out["N"] > 100
    assert any(f"{out['N'] + out['SKIPPED_NODATA']} reference samples: more than 100" in w and "no pairs file" in w
               for w in reporter.warnings)
    assert stale.read_text() == "x,y,reference,predicted\n"
    compared, reporter = run_op("compare_accuracy", REPORTS=[str(tmp_path / "s.csv")] * 2, NAMES="a;b",
                                OUTPUT_CSV=str(tmp_path / "c.csv"))
    assert compared["MCNEMAR_P"] is None and any("more than 100 samples" in w for w in reporter.warnings)
