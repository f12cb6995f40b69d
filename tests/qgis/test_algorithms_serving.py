"""Apply model through processing.run on the North Carolina scene: a patch CNN made once for the module
(untrained weights: the geometry, classes and styles are what is checked, not the accuracy)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandPseudoColorRenderer,
)


@pytest.fixture(scope="module")
def served(nc, tmp_path_factory) -> dict[str, Path]:
    """A patch CNN (16 x 16 x 5 -> 7 classes) for landsat_multiband.tif, and its class map of the whole
    scene (patch mode), made by the engine in this process."""
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    folder = tmp_path_factory.mktemp("serving")

    def run(operation, **parameters):
        return run_job(protocol.Job(operation, parameters, "t"), Reporter())

    run("extract_patches", INPUT=str(nc / "landsat96_points.shp"), SOURCE1=[str(nc / "landsat_multiband.tif")],
        PATCH_SIZE1=16, CLASS_FIELD="id", OUTPUT=str(folder / "dataset.json"))
    run("create_model", ARCHITECTURE="patch_cnn", DATASET=str(folder / "dataset.json"), WIDTH=4, SEED=1,
        OUTPUT=str(folder / "cnn"))
    run("apply_model", MODEL=str(folder / "cnn"), SOURCE1=[str(nc / "landsat_multiband.tif")],
        OUTPUT=str(folder / "whole.tif"))
    return {"model": folder / "cnn", "whole": folder / "whole.tif"}


@pytest.fixture
def cnn(served) -> Path:
    return served["model"]


@pytest.fixture
def image(nc) -> str:
    return str(nc / "landsat_multiband.tif")


def card_classes(model: Path) -> dict[int, str]:
    card = json.loads((model / "patchflow_card.json").read_text(encoding="utf-8"))
    return {c["id"]: c["name"] for c in card["classes"]}


def read(path: str) -> tuple[gdal.Dataset, np.ndarray]:
    ds = gdal.Open(path)
    assert ds is not None, path
    return ds, ds.ReadAsArray()


def input_nodata(image: str) -> np.ndarray:
    ds = gdal.Open(image)
    return (ds.ReadAsArray() == ds.GetRasterBand(1).GetNoDataValue()).any(axis=0)


def test_patch_mode_class_map_on_the_input_grid_styled_with_the_card_classes(run_alg, served, cnn, image, tmp_path):
    out = str(tmp_path / "classes.tif")
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    context.addLayerToLoadOnCompletion(out, QgsProcessingContext.LayerDetails("classes", QgsProject.instance(),
                                                                              "OUTPUT"))
    result = run_alg("applymodel", context=context, MODEL=str(cnn / "saved_model.pb"), SOURCE1=[image],
                     OUTPUT=out)
    assert result["OUTPUT"] == out and result["STYLE"] == str(tmp_path / "classes.qml")
    assert result["KIND"] == "class" and (result["WIDTH"], result["HEIGHT"]) == (489, 443)
    source, (written, values) = gdal.Open(image), read(out)
    assert written.GetGeoTransform() == source.GetGeoTransform()
    assert written.GetSpatialRef().IsSame(source.GetSpatialRef())
    assert gdal.GetDataTypeName(written.GetRasterBand(1).DataType) == "Byte"
    nodata = written.GetRasterBand(1).GetNoDataValue()
    classes = card_classes(cnn)
    assert nodata not in classes
    assert set(np.unique(values)) <= set(classes) | {nodata}
    assert ((values == nodata) == input_nodata(image)).all()
    assert len(np.unique(values[values != nodata])) > 1
    assert (values == read(str(served["whole"]))[1]).all()

    post = context.layerToLoadOnCompletionDetails(out).postProcessor()
    assert post is not None
    loaded = QgsRasterLayer(out, "loaded")
    post.postProcessLayer(loaded, context, None)
    renderer = loaded.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    assert {c.value: c.label for c in renderer.classes()} == classes


def test_fully_convolutional_writes_the_model_grid(run_alg, cnn, image, tmp_path):
    result = run_alg("applymodel", MODEL=str(cnn), SOURCE1=[image], MODE=1, OUTPUT=str(tmp_path / "fcn.tif"))
    x0, dx, _, y0, _, dy = gdal.Open(image).GetGeoTransform()
    written, values = read(result["OUTPUT"])
    assert written.GetGeoTransform() == (x0, 4 * dx, 0.0, y0, 0.0, 4 * dy)
    assert (result["WIDTH"], result["HEIGHT"]) == (written.RasterXSize, written.RasterYSize) == (122, 111)
    nodata = written.GetRasterBand(1).GetNoDataValue()
    assert set(np.unique(values)) <= set(card_classes(cnn)) | {nodata}


def test_extent_gives_the_same_pixels_on_a_sub_window(run_alg, served, cnn, image, tmp_path):
    x0, dx, _, y0, _, dy = gdal.Open(image).GetGeoTransform()
    xmin, xmax, ymax, ymin = x0 + 100 * dx, x0 + 220 * dx, y0 + 50 * dy, y0 + 130 * dy
    # no CRS suffix: SOURCE1's CRS, no reprojection
    window = run_alg("applymodel", MODEL=str(cnn), SOURCE1=[image], EXTENT=f"{xmin},{xmax},{ymin},{ymax}",
                     OUTPUT=str(tmp_path / "window.tif"))
    written, values = read(window["OUTPUT"])
    assert (window["WIDTH"], window["HEIGHT"]) == values.shape[::-1] == (120, 80)
    assert written.GetGeoTransform() == (xmin, dx, 0.0, ymax, 0.0, dy)
    assert (values == read(str(served["whole"]))[1][50:130, 100:220]).all()


def test_extent_in_another_crs_is_reprojected_to_source1s(run_alg, served, cnn, image, tmp_path):
    from osgeo import osr

    source = gdal.Open(image)
    x0, dx, _, y0, _, dy = source.GetGeoTransform()
    lonlat = osr.SpatialReference()
    lonlat.ImportFromEPSG(4326)
    lonlat.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_lonlat = osr.CoordinateTransformation(source.GetSpatialRef(), lonlat)
    corners = [to_lonlat.TransformPoint(x0 + col * dx, y0 + row * dy)[:2] for col in (150, 300) for row in (100, 250)]
    lons, lats = zip(*corners)
    extent = f"{min(lons)},{max(lons)},{min(lats)},{max(lats)} [EPSG:4326]"
    result = run_alg("applymodel", MODEL=str(cnn), SOURCE1=[image], EXTENT=extent, OUTPUT=str(tmp_path / "ll.tif"))
    written, values = read(result["OUTPUT"])
    ox, odx, _, oy, _, ody = written.GetGeoTransform()
    col, row = (ox - x0) / dx, (oy - y0) / dy
    assert (odx, ody) == (dx, dy) and col == int(col) and row == int(row)
    col, row = int(col), int(row)
    # the lon/lat box holds the pixel window, and little more
    assert 140 < col <= 150 and 90 < row <= 100
    assert 300 <= col + written.RasterXSize < 310 and 250 <= row + written.RasterYSize < 260
    assert (values == read(str(served["whole"]))[1][row:row + values.shape[0], col:col + values.shape[1]]).all()


def test_probabilities_are_float_bands_one_per_class(run_alg, cnn, image, tmp_path):
    out = str(tmp_path / "probabilities.tif")
    result = run_alg("applymodel", MODEL=str(cnn), SOURCE1=[image], OUTPUTS="probabilities", OUTPUT=out)
    assert result["KIND"] == "probabilities"
    written, values = read(out)
    assert written.RasterCount == len(card_classes(cnn))
    assert gdal.GetDataTypeName(written.GetRasterBand(1).DataType) == "Float32"
    valid = ~input_nodata(image)
    assert np.allclose(values[:, valid].sum(axis=0), 1.0, atol=1e-4)
    assert (values[:, ~valid] == written.GetRasterBand(1).GetNoDataValue()).all()
    layer = QgsRasterLayer(out, "probabilities")
    layer.loadNamedStyle(result["STYLE"])
    assert isinstance(layer.renderer(), QgsSingleBandPseudoColorRenderer)


@pytest.mark.parametrize("parameters, message", [
    ({"SOURCE1": ["lsat7_2000_10.tif"]}, r"\(SOURCE1\).*takes 5 bands but SOURCE1 has 1"),
    ({"OUTPUTS": "segmentation"}, r"\(OUTPUTS\).*no output segmentation.*class"),
    ({"EXTENT": "0,1000,0,1000 [EPSG:3358]"}, r"\(EXTENT\).*outside SOURCE1"),
], ids=["band-count", "unknown-output", "extent-outside"])
def test_bad_inputs_name_the_parameter_and_write_nothing(run_alg, cnn, nc, tmp_path, parameters, message):
    job = {"MODEL": str(cnn), "SOURCE1": [str(nc / "landsat_multiband.tif")],
           "OUTPUT": str(tmp_path / "out" / "map.tif")}
    job.update(parameters)
    job["SOURCE1"] = [str(nc / Path(p).name) for p in job["SOURCE1"]]
    with pytest.raises(QgsProcessingException, match=message):
        run_alg("applymodel", **job)
    assert not (tmp_path / "out").exists()
