"""Sample selection from label rasters and from vector layers (polygons or points)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from patchflow.plugin.engine.errors import Cancelled, PatchFlowError

ORIGIN = (500000.0, 5800000.0)


def labels(rows: int, cols: int, seed: int = 0, probabilities=(0.2, 0.45, 0.3, 0.05)) -> np.ndarray:
    """Random class ids 0..3 (0 is meant as nodata) as UInt8."""
    rng = np.random.default_rng(seed)
    return rng.choice(len(probabilities), size=(rows, cols), p=probabilities).astype(np.uint8)


def expected_pixels(array: np.ndarray, patch_size: int, nodata=0) -> set[tuple[int, int, int]]:
    """(col, row, class) of every labelled pixel whose patch (start = pixel - p//2) fits."""
    rows, cols = np.nonzero(array != nodata)
    start_r, start_c = rows - patch_size // 2, cols - patch_size // 2
    fits = (start_r >= 0) & (start_c >= 0) & (start_r + patch_size <= array.shape[0]) & (
        start_c + patch_size <= array.shape[1])
    return {(int(c), int(r), int(array[r, c])) for r, c in zip(rows[fits], cols[fits])}


def sampled_pixels(gd, output, raster) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Columns, rows and classes of the samples; asserts each lies at its pixel's centre."""
    xs, ys, fields, _ = gd.read_points(output)
    gt = gd.geotransform(raster)
    u, v = (xs - gt[0]) / gt[1], (ys - gt[3]) / gt[5]
    np.testing.assert_allclose(u - np.floor(u), 0.5, atol=1e-6)
    np.testing.assert_allclose(v - np.floor(v), 0.5, atol=1e-6)
    return np.floor(u).astype(int), np.floor(v).astype(int), np.asarray(fields["class"]), fields


def per_class(values) -> dict[int, int]:
    return dict(sorted(Counter(int(v) for v in values).items()))


def error_of(call) -> PatchFlowError:
    with pytest.raises(PatchFlowError) as caught:
        call()
    return caught.value


@pytest.fixture
def run_op(run_op):
    """These tests count samples over every labelled pixel: PATCH_SIZE 1 (no edge padding) unless a
    test gives one (the declared default is the patch CNN's 16, tests/qgis/test_conventions.py)."""
    def run(operation: str, **parameters):
        if operation.startswith("sample_"):
            parameters.setdefault("PATCH_SIZE", 1)
        return run_op(operation, **parameters)

    return run


def test_the_default_patch_must_fit_around_every_sample(run_op, gd, tmp_path):
    from patchflow.plugin.declarations import OPERATIONS

    size = OPERATIONS["sample_label_raster"].parameter("PATCH_SIZE").default
    array = np.ones((3 * size, 3 * size), dtype=np.uint8)
    path = gd.write_raster(tmp_path / "ones.tif", array, nodata=0, origin=ORIGIN, pixel=2.0)
    out, _ = run_op("sample_label_raster", INPUT=path, STRATEGY="all", PATCH_SIZE=None,
                    OUTPUT=str(tmp_path / "s.gpkg"))
    cols, rows, _, _ = sampled_pixels(gd, out["OUTPUT"], path)
    assert size > 1 and len(cols) == len(expected_pixels(array, size)) < array.size


@pytest.fixture
def label_raster(gd, tmp_path):
    array = labels(60, 50)
    array[array == 3] = 1
    array[5:7, 10:14] = 3  # 8 pixels of a rare class, away from the edges
    path = gd.write_raster(tmp_path / "labels.tif", array, nodata=0, origin=ORIGIN, pixel=2.0)
    return path, array


# ---- label raster: strategies ---------------------------------------------------------------------


def test_constant_takes_n_per_class_or_every_pixel_of_a_small_class(run_op, gd, label_raster, tmp_path):
    path, array = label_raster
    out, reporter = run_op("sample_label_raster", INPUT=path, NUMBER=20, OUTPUT=str(tmp_path / "s.gpkg"))
    cols, rows, classes, _ = sampled_pixels(gd, out["OUTPUT"], path)
    assert per_class(classes) == {1: 20, 2: 20, 3: 8}
    assert out["COUNT"] == 48 == len(classes)
    assert {c["id"]: c["count"] for c in out["CLASSES"]} == {1: 20, 2: 20, 3: 8}
    assert np.array_equal(array[rows, cols], classes), "a sample's class is not the label under it"
    assert len(set(zip(cols, rows))) == len(cols), "a pixel was sampled twice"
    assert any("class 3" in w and "8" in w for w in reporter.warnings)


@pytest.mark.parametrize("patch_size", [1, 4, 5])
def test_all_takes_exactly_the_labelled_pixels_whose_patch_fits(run_op, gd, label_raster, tmp_path, patch_size):
    path, array = label_raster
    out, _ = run_op("sample_label_raster", INPUT=path, STRATEGY="all", PATCH_SIZE=patch_size,
                    OUTPUT=str(tmp_path / "s.gpkg"))
    cols, rows, classes, _ = sampled_pixels(gd, out["OUTPUT"], path)
    assert set(zip(cols.tolist(), rows.tolist(), classes.tolist())) == expected_pixels(array, patch_size)
    assert out["COUNT"] == len(expected_pixels(array, patch_size))


@pytest.mark.parametrize("patch_size", [8, 9, 16])
def test_no_sample_has_its_patch_outside_the_raster(run_op, gd, tmp_path, patch_size):
    array = np.ones((40, 30), dtype=np.uint8)  # every pixel labelled: the edges are the only limit
    path = gd.write_raster(tmp_path / "l.tif", array, nodata=0)
    out, _ = run_op("sample_label_raster", INPUT=path, STRATEGY="all", PATCH_SIZE=patch_size,
                    OUTPUT=str(tmp_path / "s.gpkg"))
    cols, rows, _, _ = sampled_pixels(gd, out["OUTPUT"], path)
    start_c, start_r = cols - patch_size // 2, rows - patch_size // 2
    assert start_c.min() == 0 and start_r.min() == 0
    assert (start_c + patch_size).max() == 30 and (start_r + patch_size).max() == 40
    assert out["COUNT"] == (30 - patch_size + 1) * (40 - patch_size + 1)


def test_smallest_takes_the_smallest_class_count_from_every_class(run_op, gd, label_raster, tmp_path):
    path, _ = label_raster
    out, _ = run_op("sample_label_raster", INPUT=path, STRATEGY="smallest", OUTPUT=str(tmp_path / "s.gpkg"))
    _, _, classes, _ = sampled_pixels(gd, out["OUTPUT"], path)
    assert per_class(classes) == {1: 8, 2: 8, 3: 8}


@pytest.mark.parametrize("number", [1, 50, 333])
def test_total_splits_n_in_proportion_to_class_sizes(run_op, gd, tmp_path, number):
    array = labels(70, 60, seed=3)
    path = gd.write_raster(tmp_path / "l.tif", array, nodata=0)
    available = per_class(array[array != 0])
    out, _ = run_op("sample_label_raster", INPUT=path, STRATEGY="total", NUMBER=number,
                    OUTPUT=str(tmp_path / "s.gpkg"))
    _, _, classes, _ = sampled_pixels(gd, out["OUTPUT"], path)
    got = per_class(classes)
    assert sum(got.values()) == number == out["COUNT"]
    total = sum(available.values())
    for class_id, n in available.items():
        assert abs(got.get(class_id, 0) - number * n / total) < 1, (class_id, got, available)


def test_total_larger_than_the_labelled_pixels_takes_them_all(run_op, gd, tmp_path):
    array = np.zeros((20, 20), dtype=np.uint8)
    array[2:5, 2:4] = 1
    array[10, 10:14] = 2
    path = gd.write_raster(tmp_path / "l.tif", array, nodata=0)
    out, _ = run_op("sample_label_raster", INPUT=path, STRATEGY="total", NUMBER=1000,
                    OUTPUT=str(tmp_path / "s.gpkg"))
    assert out["COUNT"] == 10


def test_same_seed_same_samples_other_seed_other_samples(run_op, gd, label_raster, tmp_path):
    path, _ = label_raster

    def sample(seed, name):
        out, _ = run_op("sample_label_raster", INPUT=path, NUMBER=15, SEED=seed, OUTPUT=str(tmp_path / name))
        xs, ys, fields, _ = gd.read_points(out["OUTPUT"])
        return sorted(zip(xs.tolist(), ys.tolist(), fields["class"]))

    first = sample(1, "a.gpkg")
    assert sample(1, "b.gpkg") == first
    other = sample(2, "c.gpkg")
    assert other != first
    assert per_class(c for _, _, c in other) == per_class(c for _, _, c in first)


def test_nodata_value_is_never_sampled_and_can_be_overridden(run_op, gd, label_raster, tmp_path):
    path, array = label_raster
    out, _ = run_op("sample_label_raster", INPUT=path, STRATEGY="all", OUTPUT=str(tmp_path / "a.gpkg"))
    _, _, classes, _ = sampled_pixels(gd, out["OUTPUT"], path)
    assert 0 not in set(classes.tolist())
    out, _ = run_op("sample_label_raster", INPUT=path, STRATEGY="all", NODATA=2, OUTPUT=str(tmp_path / "b.gpkg"))
    _, _, classes, _ = sampled_pixels(gd, out["OUTPUT"], path)
    assert per_class(classes) == per_class(array[array != 2])


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_float_label_raster_skips_nan_and_nodata(run_op, gd, tmp_path):
    array = np.full((30, 30), np.nan, dtype=np.float32)
    array[3:6, 3:6] = 4.0
    array[10:12, 10:15] = 7.0
    array[20, 20] = -1.0
    path = gd.write_raster(tmp_path / "f.tif", array, nodata=-1.0)
    out, reporter = run_op("sample_label_raster", INPUT=path, STRATEGY="all", OUTPUT=str(tmp_path / "s.gpkg"))
    _, _, classes, _ = sampled_pixels(gd, out["OUTPUT"], path)
    assert per_class(classes) == {4: 9, 7: 10}
    assert any("floating point" in w for w in reporter.warnings)


def test_other_band_of_a_multiband_label_raster(run_op, gd, tmp_path):
    first = np.ones((20, 20), dtype=np.int16)
    second = np.zeros((20, 20), dtype=np.int16)
    second[5:8, 5:8] = 9
    path = gd.write_raster(tmp_path / "two.tif", np.stack([first, second]), nodata=0)
    out, _ = run_op("sample_label_raster", INPUT=path, BAND=2, STRATEGY="all", OUTPUT=str(tmp_path / "s.gpkg"))
    assert out["COUNT"] == 9 and [c["id"] for c in out["CLASSES"]] == [9]


# ---- label raster: class names and colours --------------------------------------------------------

PALETTE = {0: (0, 0, 0, 0), 1: (0, 0, 255, 255), 2: (0, 128, 0, 255), 3: (255, 0, 0, 255)}


def test_names_and_colours_come_from_the_colour_table_and_category_names(run_op, gd, label_raster, tmp_path):
    _, array = label_raster
    path = gd.write_raster(tmp_path / "paletted.tif", array, nodata=0, color_table=PALETTE,
                           category_names=["", "water", "forest", "urban"])
    out, _ = run_op("sample_label_raster", INPUT=path, NUMBER=5, OUTPUT=str(tmp_path / "s.gpkg"))
    expected = {1: ("water", "#0000ff"), 2: ("forest", "#008000"), 3: ("urban", "#ff0000")}
    assert {c["id"]: (c["name"], c["color"]) for c in out["CLASSES"]} == expected
    _, _, fields, _ = gd.read_points(out["OUTPUT"])
    for class_id, name, color in zip(fields["class"], fields["class_name"], fields["color"]):
        assert (name, color) == expected[class_id]


def test_names_and_colours_come_from_a_qml_sidecar(run_op, gd, label_raster, tmp_path):
    _, array = label_raster
    path = gd.write_raster(tmp_path / "styled.tif", array, nodata=0, color_table=PALETTE,
                           category_names=["", "water", "forest", "urban"])
    (tmp_path / "styled.qml").write_text(
        "<!DOCTYPE qgis><qgis version='3.34'><pipe><rasterrenderer type='paletted' band='1'><colorPalette>"
        "<paletteEntry value='1' label='Lake' color='#1122ff' alpha='255'/>"
        "<paletteEntry value='2' label='Woods' color='#33aa44' alpha='255'/>"
        "<paletteEntry value='3' label='Town' color='#dd0000' alpha='255'/>"
        "</colorPalette></rasterrenderer></pipe></qgis>")
    out, _ = run_op("sample_label_raster", INPUT=path, NUMBER=5, OUTPUT=str(tmp_path / "s.gpkg"))
    expected = {1: ("Lake", "#1122ff"), 2: ("Woods", "#33aa44"), 3: ("Town", "#dd0000")}
    assert {c["id"]: (c["name"], c["color"]) for c in out["CLASSES"]} == expected
    _, _, fields, _ = gd.read_points(out["OUTPUT"])
    assert {(c, n, k) for c, n, k in zip(fields["class"], fields["class_name"], fields["color"])} == {
        (c, *v) for c, v in expected.items()}


def test_classes_without_names_get_distinct_default_names_and_colours(run_op, gd, label_raster, tmp_path):
    path, _ = label_raster
    out, _ = run_op("sample_label_raster", INPUT=path, NUMBER=5, OUTPUT=str(tmp_path / "s.gpkg"))
    names = [c["name"] for c in out["CLASSES"]]
    colors = [c["color"] for c in out["CLASSES"]]
    assert names == ["class 1", "class 2", "class 3"]
    assert len(set(colors)) == 3 and all(c.startswith("#") and len(c) == 7 for c in colors)


# ---- label raster: minimum distance ---------------------------------------------------------------


def test_min_distance_is_respected_between_all_samples(run_op, gd, tmp_path):
    array = labels(100, 100, seed=5, probabilities=(0.1, 0.4, 0.3, 0.2))
    path = gd.write_raster(tmp_path / "l.tif", array, nodata=0, pixel=1.0)
    out, reporter = run_op("sample_label_raster", INPUT=path, NUMBER=30, MIN_DISTANCE=5.0,
                           OUTPUT=str(tmp_path / "s.gpkg"))
    xs, ys, fields, _ = gd.read_points(out["OUTPUT"])
    assert per_class(fields["class"]) == {1: 30, 2: 30, 3: 30}
    distances = np.hypot(xs[:, None] - xs[None, :], ys[:, None] - ys[None, :])
    np.fill_diagonal(distances, np.inf)
    assert distances.min() >= 5.0
    assert not reporter.warnings


def test_min_distance_too_large_keeps_fewer_and_warns(run_op, gd, tmp_path):
    array = labels(50, 50, seed=6)
    path = gd.write_raster(tmp_path / "l.tif", array, nodata=0, pixel=1.0)
    out, reporter = run_op("sample_label_raster", INPUT=path, NUMBER=20, MIN_DISTANCE=20.0,
                           OUTPUT=str(tmp_path / "s.gpkg"))
    xs, ys, _, _ = gd.read_points(out["OUTPUT"])
    assert 0 < len(xs) < 60
    distances = np.hypot(xs[:, None] - xs[None, :], ys[:, None] - ys[None, :])
    np.fill_diagonal(distances, np.inf)
    assert distances.min() >= 20.0
    assert any("minimum distance" in w for w in reporter.warnings)


# ---- label raster: rasters bigger than one window -------------------------------------------------


def test_rasters_read_in_many_windows_still_give_exact_counts(run_op, gd, tmp_path):
    from patchflow.plugin.engine.data.sampling import RasterLabels

    rng = np.random.default_rng(11)
    array = np.zeros((1100, 2100), dtype=np.uint8)
    spots = rng.random(array.shape)
    array[spots < 0.004] = 1
    array[(spots >= 0.004) & (spots < 0.01)] = 2
    rare = rng.choice(array.size, 150, replace=False)  # scattered over every window
    array.ravel()[rare] = 3
    path = gd.write_raster(tmp_path / "big.tif", array, nodata=0,
                           options=["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256"])
    ds = gdal.Open(path)
    assert len(RasterLabels(ds, 1, 0, "BAND").windows()) > 1, "the test raster must need several windows"
    ds = None

    out, _ = run_op("sample_label_raster", INPUT=path, NUMBER=300, PATCH_SIZE=3, OUTPUT=str(tmp_path / "c.gpkg"))
    cols, rows, classes, _ = sampled_pixels(gd, out["OUTPUT"], path)
    fitting = Counter(c for _, _, c in expected_pixels(array, 3))
    assert per_class(classes) == {1: 300, 2: 300, 3: fitting[3]}
    assert np.array_equal(array[rows, cols], classes)
    assert len(set(zip(cols, rows))) == len(cols)
    # the draws cover the whole raster, not the first window only
    assert cols.max() > 1500 and rows.max() > 800

    out, _ = run_op("sample_label_raster", INPUT=path, STRATEGY="all", PATCH_SIZE=3, OUTPUT=str(tmp_path / "a.gpkg"))
    cols, rows, classes, _ = sampled_pixels(gd, out["OUTPUT"], path)
    assert set(zip(cols.tolist(), rows.tolist(), classes.tolist())) == expected_pixels(array, 3)


# ---- label raster: real data ----------------------------------------------------------------------


def test_real_label_raster(run_op, gd, nc, tmp_path):
    path = str(nc / "landsat96_labelled_pixels.tif")
    array = gd.read_raster(path)
    out, _ = run_op("sample_label_raster", INPUT=path, NUMBER=20, PATCH_SIZE=8, SEED=4,
                    OUTPUT=str(tmp_path / "s.gpkg"))
    cols, rows, classes, _ = sampled_pixels(gd, out["OUTPUT"], path)
    assert per_class(classes) == dict.fromkeys(range(1, 8), 20)
    assert np.array_equal(array[rows, cols].astype(int), classes)
    assert (cols >= 4).all() and (rows >= 4).all()
    assert (cols - 4 + 8 <= array.shape[1]).all() and (rows - 4 + 8 <= array.shape[0]).all()
    _, _, _, wkt = gd.read_points(out["OUTPUT"])
    ds = gdal.Open(path)
    from patchflow.plugin.engine.geodata.raster import same_crs

    assert same_crs(wkt, ds.GetProjection())

    out, _ = run_op("sample_label_raster", INPUT=path, STRATEGY="all", OUTPUT=str(tmp_path / "all.gpkg"))
    assert out["COUNT"] == int((array != -99999).sum())


# ---- label raster: errors and cancel --------------------------------------------------------------


def test_label_raster_errors_name_the_parameter(run_op, gd, label_raster, tmp_path):
    path, _ = label_raster
    out = str(tmp_path / "out" / "s.gpkg")
    cases = [
        ({"INPUT": str(tmp_path / "missing.tif")}, "INPUT"),
        ({"PATCH_SIZE": 61}, "PATCH_SIZE"),
        ({"PATCH_SIZE": 0}, "PATCH_SIZE"),
        ({"BAND": 2}, "BAND"),
        ({"STRATEGY": "most"}, "STRATEGY"),
        ({"NUMBER": 0}, "NUMBER"),
        ({"NUMBER": -3}, "NUMBER"),
        ({"MIN_DISTANCE": -1}, "MIN_DISTANCE"),
        ({"OUTPUT": str(tmp_path / "out" / "s.xyz")}, "OUTPUT"),
        ({"OUTPUT": str(tmp_path / "labels.tif" / "s.gpkg")}, "OUTPUT"),
        ({"OUTPUT": None}, "OUTPUT"),
    ]
    for change, parameter in cases:
        params = {"INPUT": path, "NUMBER": 10, "OUTPUT": out, **change}
        error = error_of(lambda params=params: run_op("sample_label_raster", **params))
        assert error.parameter == parameter, (change, error)
        if (tmp_path / "out").exists():
            assert gd.folder_entries(tmp_path / "out") == [], change


def test_label_raster_with_no_labelled_pixel_is_an_input_error(run_op, gd, tmp_path):
    path = gd.write_raster(tmp_path / "empty.tif", np.zeros((20, 20), np.uint8), nodata=0)
    error = error_of(lambda: run_op("sample_label_raster", INPUT=path, OUTPUT=str(tmp_path / "s.gpkg")))
    assert error.parameter == "INPUT"
    assert gd.folder_entries(tmp_path) == ["empty.tif"]


def test_shapefile_and_geojson_outputs(run_op, gd, label_raster, tmp_path):
    path, _ = label_raster
    for name in ("s.shp", "s.geojson"):
        out, _ = run_op("sample_label_raster", INPUT=path, NUMBER=4, OUTPUT=str(tmp_path / name))
        _, _, classes, fields = sampled_pixels(gd, out["OUTPUT"], path)
        assert per_class(classes) == {1: 4, 2: 4, 3: 4}
        assert set(fields) >= {"class", "class_name", "color"}


def test_cancel_leaves_nothing(run_cancelled, gd, label_raster, tmp_path):
    path, _ = label_raster
    (tmp_path / "out").mkdir()
    error = run_cancelled("sample_label_raster", after=2, INPUT=path, NUMBER=5,
                          OUTPUT=str(tmp_path / "out" / "s.gpkg"))
    assert isinstance(error, Cancelled)
    assert gd.folder_entries(tmp_path / "out") == []


# ---- vector layers --------------------------------------------------------------------------------


def polygons_by_label(path: str, field: str = "label") -> dict:
    """{field value: union of its polygons} of a polygon layer."""
    ds = ogr.Open(path)
    layer = ds.GetLayer(0)
    found: dict = {}
    for feature in layer:
        value = feature.GetField(field)
        geometry = feature.GetGeometryRef().Clone()
        found[value] = geometry if value not in found else found[value].Union(geometry)
    layer = None
    ds = None
    return found


def assert_inside(xs, ys, names, polygons: dict, tolerance: float = 0.0) -> None:
    for x, y, name in zip(xs, ys, names):
        point = ogr.Geometry(ogr.wkbPoint)
        point.AddPoint_2D(float(x), float(y))
        area = polygons[name] if not tolerance else polygons[name].Buffer(tolerance)
        assert area.Contains(point), (x, y, name)


def test_text_class_field_maps_sorted_values_to_ids(run_op, gd, nc, tmp_path):
    polygons = str(nc / "landsat96_polygons.shp")
    raster = str(nc / "landsat_multiband.tif")
    out, _ = run_op("sample_vector", INPUT=polygons, RASTER=raster, FIELD="label", NUMBER=20,
                    OUTPUT=str(tmp_path / "s.gpkg"))
    names = sorted(polygons_by_label(polygons))
    assert len(names) == 7
    assert out["CLASS_MAP"] == {name: index for index, name in enumerate(names)}
    assert [(c["id"], c["name"], c["count"]) for c in out["CLASSES"]] == [(i, n, 20) for i, n in enumerate(names)]
    cols, rows, classes, fields = sampled_pixels(gd, out["OUTPUT"], raster)
    assert per_class(classes) == dict.fromkeys(range(7), 20)
    assert [out["CLASS_MAP"][n] for n in fields["class_name"]] == classes.tolist()
    xs, ys, _, _ = gd.read_points(out["OUTPUT"])
    assert_inside(xs, ys, fields["class_name"], polygons_by_label(polygons))


def test_integer_class_field_finds_names_in_a_text_field(run_op, gd, nc, tmp_path):
    polygons = str(nc / "landsat96_polygons.shp")
    ds = ogr.Open(polygons)
    layer = ds.GetLayer(0)
    names = {f.GetField("id"): f.GetField("label") for f in layer}
    layer = None
    ds = None
    out, _ = run_op("sample_vector", INPUT=polygons, RASTER=str(nc / "landsat_multiband.tif"), FIELD="id",
                    NUMBER=10, PATCH_SIZE=5, OUTPUT=str(tmp_path / "s.gpkg"))
    assert out["CLASS_MAP"] == {}
    assert {c["id"]: c["name"] for c in out["CLASSES"]} == names
    xs, ys, fields, _ = gd.read_points(out["OUTPUT"])
    assert per_class(fields["class"]) == dict.fromkeys(names, 10)
    assert [names[c] for c in fields["class"]] == fields["class_name"]
    by_id = polygons_by_label(polygons, "id")
    for x, y, class_id in zip(xs, ys, fields["class"]):
        point = ogr.Geometry(ogr.wkbPoint)
        point.AddPoint_2D(float(x), float(y))
        assert by_id[class_id].Contains(point)


def test_points_layer_as_input(run_op, gd, nc, tmp_path):
    points = str(nc / "landsat96_points.shp")
    raster = str(nc / "landsat_multiband.tif")
    out, _ = run_op("sample_vector", INPUT=points, RASTER=raster, FIELD="id", STRATEGY="all",
                    OUTPUT=str(tmp_path / "s.gpkg"))
    px, py, pfields, _ = gd.read_points(points)
    pcols, prows = gd.to_pixels(raster, px, py)
    ds = gdal.Open(raster)
    width, height = ds.RasterXSize, ds.RasterYSize
    image, nodata = ds.ReadAsArray(), ds.GetRasterBand(1).GetNoDataValue()
    ds = None
    inside = (pcols >= 0) & (prows >= 0) & (pcols < width) & (prows < height)
    classes_at = {}
    on_nodata = set()
    for c, r, k in zip(pcols[inside], prows[inside], np.asarray(pfields["id"])[inside]):
        if (image[:, r, c] == nodata).any():  # no sample where the raster has no data
            on_nodata.add((int(c), int(r)))
            continue
        classes_at.setdefault((int(c), int(r)), set()).add(int(k))
    cols, rows, classes, _ = sampled_pixels(gd, out["OUTPUT"], raster)
    assert on_nodata  # the scene's nodata border holds some of the points
    assert out["COUNT"] == len(classes_at)
    for c, r, k in zip(cols, rows, classes):
        assert int(k) in classes_at[(int(c), int(r))]


def test_layer_in_another_crs_gives_samples_in_the_raster_crs(run_op, gd, nc, tmp_path):
    from patchflow.plugin.engine.geodata.raster import same_crs

    polygons = str(nc / "landsat96_polygons.shp")
    raster = str(nc / "landsat_multiband.tif")
    geographic = str(tmp_path / "polygons_4326.gpkg")
    gdal.VectorTranslate(geographic, polygons, format="GPKG", dstSRS="EPSG:4326")
    out, reporter = run_op("sample_vector", INPUT=geographic, RASTER=raster, FIELD="label", NUMBER=15,
                           OUTPUT=str(tmp_path / "s.gpkg"))
    assert any("reprojected" in line for line in reporter.logs)
    xs, ys, fields, wkt = gd.read_points(out["OUTPUT"])
    ds = gdal.Open(raster)
    assert same_crs(wkt, ds.GetProjection())
    ds = None
    assert per_class(fields["class"]) == dict.fromkeys(range(7), 15)
    # inside the original polygons (1 m of slack for the round trip through degrees; pixels are 28.5 m)
    assert_inside(xs, ys, fields["class_name"], polygons_by_label(polygons), tolerance=1.0)


def test_vector_field_errors_name_field(run_op, gd, nc, tmp_path):
    polygons = str(nc / "landsat96_polygons.shp")
    raster = str(nc / "landsat_multiband.tif")
    error = error_of(lambda: run_op("sample_vector", INPUT=polygons, RASTER=raster, FIELD="klass",
                                    OUTPUT=str(tmp_path / "s.gpkg")))
    assert error.parameter == "FIELD"
    assert "label" in error.message and "id" in error.message
    blank = gd.write_points(tmp_path / "blank.gpkg", [640000.0, 641000.0], [220000.0, 221000.0],
                            {"cls": ["", None], "other": [1, 2]}, epsg=3358)
    error = error_of(lambda: run_op("sample_vector", INPUT=blank, RASTER=raster, FIELD="cls",
                                    OUTPUT=str(tmp_path / "s.gpkg")))
    assert error.parameter == "FIELD"
    assert "empty" in error.message
    fractional = gd.write_points(tmp_path / "real.gpkg", [640000.0, 641000.0], [220000.0, 221000.0],
                                 {"value": [1.5, 2.0]}, epsg=3358)
    error = error_of(lambda: run_op("sample_vector", INPUT=fractional, RASTER=raster, FIELD="value",
                                    OUTPUT=str(tmp_path / "s.gpkg")))
    assert error.parameter == "FIELD"
    assert gd.folder_entries(tmp_path) == ["blank.gpkg", "real.gpkg"]


def test_vector_layer_away_from_the_raster_is_an_input_error(run_op, gd, nc, tmp_path):
    far = gd.write_points(tmp_path / "far.gpkg", [100.0, 200.0], [100.0, 200.0], {"c": [1, 2]}, epsg=3358)
    error = error_of(lambda: run_op("sample_vector", INPUT=far, RASTER=str(nc / "landsat_multiband.tif"),
                                    FIELD="c", OUTPUT=str(tmp_path / "s.gpkg")))
    assert error.parameter == "INPUT"
    error = error_of(lambda: run_op("sample_vector", INPUT=str(tmp_path / "nope.gpkg"),
                                    RASTER=str(nc / "landsat_multiband.tif"), FIELD="c",
                                    OUTPUT=str(tmp_path / "s.gpkg")))
    assert error.parameter == "INPUT"


def test_synthetic_polygons_burn_exactly_their_pixels(run_op, gd, tmp_path):
    """Two squares of known pixels on a 1 m grid: 'all' gives exactly the pixels they cover."""
    raster = gd.write_raster(tmp_path / "r.tif", np.zeros((40, 40), np.uint8), origin=(1000.0, 2000.0))
    path = str(tmp_path / "squares.gpkg")
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(gd.EPSG)
    layer = ds.CreateLayer("squares", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("kind", ogr.OFTString))
    squares = {"b": (5, 5, 10, 8), "a": (20, 22, 30, 35)}  # name: col0, row0, col1, row1 (exclusive)
    for name, (c0, r0, c1, r1) in squares.items():
        x0, x1, y0, y1 = 1000.0 + c0, 1000.0 + c1, 2000.0 - r0, 2000.0 - r1
        ring = ogr.Geometry(ogr.wkbLinearRing)
        for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)):
            ring.AddPoint_2D(x, y)
        polygon = ogr.Geometry(ogr.wkbPolygon)
        polygon.AddGeometry(ring)
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("kind", name)
        feature.SetGeometry(polygon)
        layer.CreateFeature(feature)
    layer = None
    ds = None
    out, _ = run_op("sample_vector", INPUT=path, RASTER=raster, FIELD="kind", STRATEGY="all",
                    OUTPUT=str(tmp_path / "s.gpkg"))
    assert out["CLASS_MAP"] == {"a": 0, "b": 1}
    cols, rows, classes, _ = sampled_pixels(gd, out["OUTPUT"], raster)
    expected = {(c, r, out["CLASS_MAP"][name]) for name, (c0, r0, c1, r1) in squares.items()
                for c in range(c0, c1) for r in range(r0, r1)}
    assert set(zip(cols.tolist(), rows.tolist(), classes.tolist())) == expected


# ---- style ----------------------------------------------------------------------------------------


def test_the_engine_writes_the_samples_class_style(run_op, label_raster, tmp_path):
    import xml.etree.ElementTree as ET

    path, _ = label_raster
    out, _ = run_op("sample_label_raster", INPUT=path, NUMBER=5, OUTPUT=str(tmp_path / "s.gpkg"))
    assert out["STYLE"] == str(tmp_path / "s.qml")
    renderer = ET.parse(out["STYLE"]).getroot().find("renderer-v2")
    assert (renderer.get("type"), renderer.get("attr")) == ("categorizedSymbol", "class")
    assert [(c.get("value"), c.get("label")) for c in renderer.findall("categories/category")] == [
        (str(c["id"]), f"{c['id']} {c['name']}") for c in out["CLASSES"]]
    colours = [symbol.find("layer/prop[@k='color']").get("v") for symbol in renderer.findall("symbols/symbol")]
    assert colours == [",".join(str(int(c["color"][i:i + 2], 16)) for i in (1, 3, 5)) + ",255"
                       for c in out["CLASSES"]]
