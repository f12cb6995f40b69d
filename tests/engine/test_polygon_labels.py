"""Label patches burnt from labelled polygons (extract_patches LABEL_POLYGONS + LABEL_FIELD) on the real
North Carolina polygons: the same patches as a label raster rasterised on SOURCE1's grid, class names of
a text field kept, colours from a QML beside the layer, refusals, and an FCNN that trains on them."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter

import numpy as np
import pytest
from osgeo import gdal, ogr

from patchflow.plugin.engine.data.patches import PatchesImage
from patchflow.plugin.engine.errors import PatchFlowError

PATCH = 16


def patches_of(path) -> np.ndarray:
    return PatchesImage(str(path)).read().transpose(0, 3, 1, 2)


def polygon_table(nc) -> list[tuple[int, str]]:
    ds = ogr.Open(str(nc / "landsat96_polygons.shp"))
    return [(f.GetField("id"), f.GetField("label")) for f in ds.GetLayer(0)]


def rasterised(nc, tmp_path, field_lut: dict[int, int]) -> str:
    """The polygons burnt directly (gdal.Rasterize, their integer 'id') on landsat_multiband.tif's grid,
    ids mapped through ``field_lut``, 255 elsewhere: the label raster LABEL_POLYGONS must equal."""
    image = gdal.Open(str(nc / "landsat_multiband.tif"))
    memory = gdal.GetDriverByName("MEM").Create("", image.RasterXSize, image.RasterYSize, 1, gdal.GDT_Int32)
    memory.SetGeoTransform(image.GetGeoTransform())
    memory.SetProjection(image.GetProjection())
    memory.GetRasterBand(1).Fill(-1)
    gdal.Rasterize(memory, str(nc / "landsat96_polygons.shp"), attribute="id")
    burnt = memory.ReadAsArray()
    mapped = np.full(burnt.shape, 255, np.uint8)
    for source_id, class_id in field_lut.items():
        mapped[burnt == source_id] = class_id
    path = str(tmp_path / "direct.tif")
    out = gdal.GetDriverByName("GTiff").Create(path, image.RasterXSize, image.RasterYSize, 1, gdal.GDT_Byte)
    out.SetGeoTransform(image.GetGeoTransform())
    out.SetProjection(image.GetProjection())
    out.GetRasterBand(1).WriteArray(mapped)
    out.GetRasterBand(1).SetNoDataValue(255)
    out = None
    return path


@pytest.mark.parametrize("field", ["label", "id"])
def test_label_patches_are_the_polygons_rasterised_on_the_patch_grid(run_op, gd, nc, tmp_path, field):
    table = polygon_table(nc)
    names = sorted({label for _, label in table})
    lut = {i: names.index(label) for i, label in table} if field == "label" else {i: i for i, _ in table}
    direct = rasterised(nc, tmp_path, lut)
    points, image = str(nc / "landsat96_points.shp"), str(nc / "landsat_multiband.tif")
    common = {"INPUT": points, "SOURCE1": image, "PATCH_SIZE1": PATCH}
    out, _ = run_op("extract_patches", LABEL_POLYGONS=str(nc / "landsat96_polygons.shp"), LABEL_FIELD=field,
                    OUTPUT=str(tmp_path / "poly.json"), **common)
    ref, _ = run_op("extract_patches", LABEL_RASTER=direct, OUTPUT=str(tmp_path / "raster.json"), **common)
    burnt, expected = patches_of(out["LABEL_PATCHES"]), patches_of(ref["LABEL_PATCHES"])
    assert out["COUNT"] == ref["COUNT"] > 100
    assert burnt.shape == (out["COUNT"], 1, PATCH, PATCH) and burnt.dtype == np.uint8
    assert np.array_equal(burnt, expected), f"{int((burnt != expected).sum())} label pixels differ"
    labelled = burnt != 255
    assert labelled.any(axis=(1, 2, 3)).sum() > 50 and labelled.mean() < 0.5  # inside and outside polygons
    # the windows: the direct raster around every kept point's pixel (start = pixel - 8)
    full = gd.read_raster(direct)
    xs, ys, _, _ = gd.read_points(points)
    cols, rows = gd.to_pixels(direct, xs, ys)
    windows = {full[r - 8:r + 8, c - 8:c + 8].tobytes() for c, r in zip(cols, rows)
               if 8 <= c <= full.shape[1] - 8 and 8 <= r <= full.shape[0] - 8}
    assert {patch.tobytes() for patch in burnt} <= windows
    manifest = json.loads(open(out["OUTPUT"]).read())
    label = manifest["sources"][1]
    assert (label["role"], label["patch_size"], label["bands"][0]["nodata"]) == ("label", PATCH, 255)
    counts = Counter(burnt[labelled].tolist())
    found = {c["id"]: (c["name"], c["count"]) for c in manifest["classes"]}
    if field == "label":
        assert found == {names.index(n): (n, counts[names.index(n)]) for n in names}
        assert manifest["label_polygons"]["class_map"] == {n: i for i, n in enumerate(names)}
    else:
        assert found == {i: (dict(table)[i], counts[i]) for i in sorted(counts)}  # named by the 'label' field
    assert len({c["color"] for c in manifest["classes"]}) == len(found)


def test_a_qml_beside_the_polygons_gives_the_colours(run_op, nc, tmp_path):
    for part in ("shp", "shx", "dbf", "prj"):
        shutil.copy(nc / f"landsat96_polygons.{part}", tmp_path / f"polygons.{part}")
    styled = {"water": "0,0,255,255", "forest": "0,128,0,255"}
    categories = "".join(f'<category value="{name}" symbol="{i}" label="{name}" render="true"/>'
                         for i, name in enumerate(styled))
    symbols = "".join(f'<symbol name="{i}" type="fill"><layer class="SimpleFill"><Option type="Map">'
                      f'<Option name="color" value="{color}" type="QString"/></Option></layer></symbol>'
                      for i, color in enumerate(styled.values()))
    (tmp_path / "polygons.qml").write_text(
        f'<qgis><renderer-v2 type="categorizedSymbol" attr="label"><categories>{categories}</categories>'
        f"<symbols>{symbols}</symbols></renderer-v2></qgis>")
    out, _ = run_op("extract_patches", INPUT=str(nc / "landsat96_points.shp"),
                    SOURCE1=str(nc / "landsat_multiband.tif"), PATCH_SIZE1=8,
                    LABEL_POLYGONS=str(tmp_path / "polygons.shp"), LABEL_FIELD="label",
                    OUTPUT=str(tmp_path / "out" / "d.json"))
    colours = {c["name"]: c["color"] for c in json.loads(open(out["OUTPUT"]).read())["classes"]}
    assert colours["water"] == "#0000ff" and colours["forest"] == "#008000"
    assert len(set(colours.values())) == len(colours) == 7


def far_polygon(tmp_path, nc) -> str:
    """A one-pixel square in the scene's top-left corner, in its CRS, with class 'water'."""
    from osgeo import osr

    image = gdal.Open(str(nc / "landsat_multiband.tif"))
    x0, dx, _, y0, _, dy = image.GetGeoTransform()
    path = str(tmp_path / "far.gpkg")
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    layer = ds.CreateLayer("far", osr.SpatialReference(wkt=image.GetProjection()), ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("label", ogr.OFTString))
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetField("label", "water")
    ring = f"{x0} {y0}, {x0 + dx} {y0}, {x0 + dx} {y0 + dy}, {x0} {y0 + dy}, {x0} {y0}"
    feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON (({ring}))"))
    layer.CreateFeature(feature)
    ds = None
    return path


@pytest.mark.parametrize("case", ["both", "no_field", "points", "bad_field", "elsewhere"])
def test_bad_label_polygons_are_refused_naming_the_parameter(run_op, nc, tmp_path, case):
    job = {"INPUT": str(nc / "landsat96_points.shp"), "SOURCE1": str(nc / "landsat_multiband.tif"),
           "PATCH_SIZE1": 8, "LABEL_POLYGONS": str(nc / "landsat96_polygons.shp"), "LABEL_FIELD": "label",
           "OUTPUT": str(tmp_path / "out" / "d.json")}
    (tmp_path / "out").mkdir()
    expected = {"both": "LABEL_POLYGONS", "no_field": "LABEL_FIELD", "points": "LABEL_POLYGONS",
                "bad_field": "LABEL_FIELD", "elsewhere": "LABEL_POLYGONS"}[case]
    if case == "both":
        job["LABEL_RASTER"] = str(nc / "landsat96_labelled_pixels.tif")
    elif case == "no_field":
        del job["LABEL_FIELD"]
    elif case == "elsewhere":  # no patch reaches the polygon: an error, not a dataset without labels
        job["LABEL_POLYGONS"] = far_polygon(tmp_path, nc)
    elif case == "points":
        job["LABEL_POLYGONS"] = str(nc / "landsat96_points.shp")
    else:
        job["LABEL_FIELD"] = "nope"
    with pytest.raises(PatchFlowError) as caught:
        run_op("extract_patches", **job)
    assert caught.value.parameter == expected, caught.value.message
    if case == "both":
        assert "LABEL_RASTER" in caught.value.message and "LABEL_POLYGONS" in caught.value.message
    assert list((tmp_path / "out").iterdir()) == []


def test_an_fcnn_trains_on_labels_from_polygons(run_op, nc, tmp_path):
    out, _ = run_op("extract_patches", INPUT=str(nc / "landsat96_points.shp"),
                    SOURCE1=str(nc / "landsat_multiband.tif"), PATCH_SIZE1=PATCH,
                    LABEL_POLYGONS=str(nc / "landsat96_polygons.shp"), LABEL_FIELD="label",
                    OUTPUT=str(tmp_path / "d.json"))
    trained, _ = run_op("train_model", TRAIN=out["OUTPUT"], ARCHITECTURE="fcnn", WIDTH=2, EPOCHS=2,
                        BATCH_SIZE=32, OUTPUT=str(tmp_path / "fcnn"))
    card = json.loads((tmp_path / "fcnn" / "patchflow_card.json").read_text())
    assert card["task"] == "segmentation" and trained["OA"] is None and trained["TRAIN_OA"] is not None  # no VALID
    assert [c["name"] for c in card["classes"]] == sorted(c["name"] for c in card["classes"])
    with open(tmp_path / "fcnn" / "training.csv") as handle:
        rows = list(csv.DictReader(handle))
    counted = sum(int(row["reference"]) for row in rows if row["id"])
    assert counted == int((patches_of(out["LABEL_PATCHES"]) != 255).sum())  # unlabelled pixels are not scored
