"""Class maps styled for QGIS without QGIS: a GDAL colour table with category names in the GeoTIFF,
and a QML sidecar (``<stem>.qml``, paletted renderer with class names) that QGIS applies when it
opens the raster (and ``classes.classes_from_qml`` reads back)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from osgeo import gdal

from ..geodata.classes import ClassInfo, ClassLike

QGIS_VERSION = "3.22.0"
MAX_TABLE_ENTRIES = 65536  # GDAL colour tables are for Byte and UInt16 bands


def sidecar_path(path: str) -> str:
    """The QML next to an output: ``<stem>.qml`` (a ``|layername=...`` suffix of a layer URI dropped)."""
    return os.path.splitext(path.split("|")[0])[0] + ".qml"


def rgb(color: str) -> tuple[int, int, int]:
    text = color.lstrip("#")
    if len(text) < 6:
        return (128, 128, 128)
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def set_class_table(band: gdal.Band, classes: Sequence[ClassLike]) -> bool:
    """Colour table and category names (indexed by class id) on a Byte/UInt16 class band."""
    if band.DataType not in (gdal.GDT_Byte, gdal.GDT_UInt16) or not classes:
        return False
    infos = [ClassInfo.of(c) for c in classes]
    ids = [info.id for info in infos]
    if min(ids) < 0 or max(ids) >= MAX_TABLE_ENTRIES:
        return False
    table = gdal.ColorTable()
    names = [""] * (max(ids) + 1)
    for value in range(max(ids) + 1):
        table.SetColorEntry(value, (0, 0, 0, 0))
    for info in infos:
        table.SetColorEntry(info.id, (*rgb(info.color), 255))
        names[info.id] = info.name or f"class {info.id}"
    band.SetRasterColorTable(table)
    band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
    band.SetCategoryNames(names)
    return True


def class_qml(classes: Sequence[ClassLike], band: int = 1) -> str:
    """The QML text of a paletted renderer: one entry per class, labelled ``<id> <name>``."""
    root = ET.Element("qgis", version=QGIS_VERSION, styleCategories="AllStyleCategories")
    pipe = ET.SubElement(root, "pipe")
    renderer = ET.SubElement(pipe, "rasterrenderer", type="paletted", opacity="1", band=str(band),
                             alphaBand="-1", nodataColor="")
    ET.SubElement(renderer, "rasterTransparency")
    palette = ET.SubElement(renderer, "colorPalette")
    for info in map(ClassInfo.of, classes):
        red, green, blue = rgb(info.color)
        ET.SubElement(palette, "paletteEntry", value=str(info.id),
                      color=f"#{red:02x}{green:02x}{blue:02x}", alpha="255",
                      label=info.name or f"class {info.id}")
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(pipe, "huesaturation", saturation="0", grayscaleMode="0", colorizeOn="0",
                  colorizeRed="255", colorizeGreen="128", colorizeBlue="128", colorizeStrength="100")
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    ET.SubElement(root, "blendMode").text = "0"
    return qml_text(root)


def qml_text(root: ET.Element) -> str:
    """A QML document's text (indented, with QGIS's doctype)."""
    ET.indent(root)
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(root, encoding="unicode")


def write_qml(path: str, text: str) -> str:
    """Write a QML sidecar at ``path``; returns it."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    return path


def write_class_qml(path: str, classes: Sequence[ClassLike]) -> str:
    """Write the paletted QML at ``path``; returns it."""
    return write_qml(path, class_qml(classes))
