"""QML styles for served outputs that are not class maps: probabilities as single-band
pseudocolour (0-1, viridis), images and features as an RGB (or grey) composite stretched between
the 2nd and 98th percentiles of the written values."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
from osgeo import gdal

from ..report.rasterstyle import QGIS_VERSION, qml_text

VIRIDIS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")
SAMPLE_PIXELS = 1 << 20  # read for the stretch, decimated


def _document(renderer_type: str, **attributes: str) -> tuple[ET.Element, ET.Element]:
    root = ET.Element("qgis", version=QGIS_VERSION, styleCategories="AllStyleCategories")
    pipe = ET.SubElement(root, "pipe")
    renderer = ET.SubElement(pipe, "rasterrenderer", {"type": renderer_type, "opacity": "1", "alphaBand": "-1",
                                                      "nodataColor": "", **attributes})
    ET.SubElement(renderer, "rasterTransparency")
    return root, renderer


def _finish(root: ET.Element) -> str:
    pipe = root.find("pipe")
    assert pipe is not None  # made by _document
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(pipe, "huesaturation", saturation="0", grayscaleMode="0", colorizeOn="0", colorizeRed="255",
                  colorizeGreen="128", colorizeBlue="128", colorizeStrength="100")
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    ET.SubElement(root, "blendMode").text = "0"
    return qml_text(root)


def probability_qml(band: int = 1) -> str:
    """Pseudocolour of one probability band, 0 to 1."""
    root, renderer = _document("singlebandpseudocolor", band=str(band), classificationMin="0",
                               classificationMax="1")
    shader = ET.SubElement(ET.SubElement(renderer, "rastershader"), "colorrampshader", colorRampType="INTERPOLATED",
                           classificationMode="1", clip="0", minimumValue="0", maximumValue="1")
    for position, color in enumerate(VIRIDIS):
        value = position / (len(VIRIDIS) - 1)
        ET.SubElement(shader, "item", value=f"{value:g}", color=color, alpha="255", label=f"{value:.2f}")
    return _finish(root)


def percentiles(ds: gdal.Dataset, band: int, nodata: float) -> tuple[float, float]:
    """2nd and 98th percentiles of a band (a decimated read), nodata left out."""
    scale = max(1.0, (ds.RasterXSize * ds.RasterYSize / SAMPLE_PIXELS) ** 0.5)
    width, height = max(1, int(ds.RasterXSize / scale)), max(1, int(ds.RasterYSize / scale))
    values = ds.GetRasterBand(band).ReadAsArray(buf_xsize=width, buf_ysize=height).astype(np.float64)
    values = values[(values != nodata) & np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [2, 98])
    return float(low), float(high if high > low else low + 1)


def _contrast(parent: ET.Element, tag: str, low: float, high: float) -> None:
    element = ET.SubElement(parent, tag)
    ET.SubElement(element, "minValue").text = repr(low)
    ET.SubElement(element, "maxValue").text = repr(high)
    ET.SubElement(element, "algorithm").text = "StretchToMinimumMaximum"


def image_qml(ds: gdal.Dataset, nodata: float) -> str:
    """Bands 1-3 as red, green, blue (one band: grey), each stretched 2-98 %."""
    if ds.RasterCount >= 3:
        root, renderer = _document("multibandcolor", redBand="1", greenBand="2", blueBand="3")
        for band, tag in zip((1, 2, 3), ("redContrastEnhancement", "greenContrastEnhancement",
                                         "blueContrastEnhancement")):
            _contrast(renderer, tag, *percentiles(ds, band, nodata))
    else:
        root, renderer = _document("singlebandgray", grayBand="1", gradient="BlackToWhite")
        _contrast(renderer, "contrastEnhancement", *percentiles(ds, 1, nodata))
    return _finish(root)
