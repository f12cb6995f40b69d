"""Class points styled for QGIS without QGIS: a QML sidecar (``<stem>.qml``) holding a renderer
categorized by the ``class`` field, one coloured circle per class labelled ``<id> <name>``, that
QGIS applies when it loads the sample layer."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .rasterstyle import QGIS_VERSION, qml_text, rgb, sidecar_path, write_qml

MARKER = {"name": "circle", "size": "2", "size_unit": "MM", "outline_color": "35,35,35,255",
          "outline_style": "solid", "outline_width": "0", "outline_width_unit": "MM", "angle": "0",
          "offset": "0,0", "offset_unit": "MM", "scale_method": "diameter", "joinstyle": "bevel",
          "horizontal_anchor_point": "1", "vertical_anchor_point": "1"}


def _marker(symbols: ET.Element, name: str, color: str) -> None:
    symbol = ET.SubElement(symbols, "symbol", name=name, type="marker", alpha="1", clip_to_extent="1",
                           force_rhr="0")
    layer = ET.SubElement(symbol, "layer", {"class": "SimpleMarker", "enabled": "1", "locked": "0", "pass": "0"})
    properties = dict(MARKER, color="{},{},{},255".format(*rgb(color)))
    options = ET.SubElement(layer, "Option", type="Map")
    for key, value in properties.items():  # QGIS >= 3.20 reads these, older versions the <prop> below
        ET.SubElement(options, "Option", name=key, value=value, type="QString")
    for key, value in properties.items():
        ET.SubElement(layer, "prop", k=key, v=value)


def class_points_qml(classes: list[dict], field: str = "class") -> str:
    """The QML text of a categorized renderer on ``field``: one category per class."""
    root = ET.Element("qgis", version=QGIS_VERSION, styleCategories="Symbology")
    renderer = ET.SubElement(root, "renderer-v2", type="categorizedSymbol", attr=field, forceraster="0",
                             symbollevels="0", enableorderby="0", referencescale="-1")
    categories = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    for index, info in enumerate(classes):
        class_id = int(info["id"])
        name = info.get("name") or f"class {class_id}"
        ET.SubElement(categories, "category", symbol=str(index), value=str(class_id), render="true",
                      label=f"{class_id} {name}")
        _marker(symbols, str(index), info.get("color") or "")
    return qml_text(root)


def write_class_points_qml(path: str, classes: list[dict]) -> str:
    """Write the categorized QML at ``path``; returns it."""
    return write_qml(path, class_points_qml(classes))


def write_point_style(staging, output: str, classes: list[dict], parameter: str) -> str | None:
    """The class points' QML sidecar, staged with ``output`` (committed with it); its final path, None
    without classes."""
    if not classes:
        return None
    write_class_points_qml(staging.stage(sidecar_path(output), parameter), classes)
    return sidecar_path(output)
