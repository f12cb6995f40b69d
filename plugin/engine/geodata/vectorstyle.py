"""Class names and colours from the QGIS style saved beside a vector layer (``<stem>.qml``, what
QGIS's "Save as default" writes): a categorized renderer on the class field gives each class value
its legend label and its symbol's colour."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from .classes import ClassInfo

if TYPE_CHECKING:
    from .vector import ClassField


def qml_path(vector_path: str) -> str:
    """The style QGIS saves as a file layer's default: ``<stem>.qml`` beside it."""
    return os.path.splitext(vector_path)[0] + ".qml"


def qml_categories(vector_path: str, field: ClassField) -> dict[int, ClassInfo]:
    """Class id -> (label, colour) of a categorized renderer on ``field`` in ``<stem>.qml`` beside the
    vector file ({} without one, or when it styles another field)."""
    qml = qml_path(vector_path)
    if not os.path.isfile(qml):
        return {}
    try:
        root = ET.parse(qml).getroot()
    except (ET.ParseError, OSError):
        return {}
    renderer = next((r for r in root.iter("renderer-v2") if r.get("type") == "categorizedSymbol"), None)
    if renderer is None or (renderer.get("attr") or "").strip('"') != field.name:
        return {}
    colors = {symbol.get("name"): _symbol_color(symbol) for symbol in renderer.iter("symbol")}
    found: dict[int, ClassInfo] = {}
    for category in renderer.iter("category"):
        value = category.get("value")
        class_id = _class_id(field, value)
        if class_id is not None:
            found[class_id] = ClassInfo(class_id, category.get("label") or "", colors.get(category.get("symbol"), ""))
    return found


def apply_style(field: ClassField, vector_path: str) -> ClassField:
    """``field`` with the colours of the style beside the layer (over a colour field's), and its labels
    for classes the data leaves unnamed."""
    for class_id, style in qml_categories(vector_path, field).items():
        info = field.classes.get(class_id)
        name = info.name if info and info.name else style.name
        field.classes[class_id] = ClassInfo(class_id, name, style.color or (info.color if info else ""))
    return field


def _class_id(field: ClassField, value: str | None) -> int | None:
    if value is None:
        return None
    if field.is_text:
        return field.ids.get(value)
    try:
        number = int(float(value))
    except ValueError:
        return None
    return number if number in field.ids.values() else None


def _symbol_color(symbol: ET.Element) -> str:
    """'#rrggbb' of a QML symbol's first layer (its <Option name="color"> or older <prop k="color">)."""
    for element in symbol.iter():
        key = element.get("name") if element.tag == "Option" else element.get("k") if element.tag == "prop" else None
        if key == "color":
            text = element.get("value") if element.tag == "Option" else element.get("v")
            parts = (text or "").split(",")
            try:
                return "#{:02x}{:02x}{:02x}".format(*(int(p) for p in parts[:3]))
            except (ValueError, IndexError):
                return ""
    return ""
