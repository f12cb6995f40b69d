"""Class ids, names and colours: read from label rasters (colour table, category names, a QML
sidecar) or text fields, and given default colours when none travel with the data."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Union

from osgeo import gdal

from .classcolors import PALETTE, default_colors

__all__ = ["PALETTE", "ClassInfo", "ClassLike", "classes_from_qml", "classes_from_raster", "complete"]


@dataclass
class ClassInfo:
    id: int
    name: str
    color: str
    count: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, value: ClassLike) -> ClassInfo:
        """``value`` itself, or the ClassInfo of its JSON form (``{"id", "name", "color", "count"}``, the
        last three optional: a dataset manifest's or a model card's classes)."""
        if isinstance(value, ClassInfo):
            return value
        return cls(int(value["id"]), str(value.get("name") or ""), str(value.get("color") or ""),
                   int(value.get("count") or 0))


# What the functions that take classes accept: ClassInfo, or the dicts manifests and model cards hold.
ClassLike = Union[ClassInfo, Mapping[str, Any]]


def complete(ids: list[int], known: dict[int, ClassInfo]) -> list[ClassInfo]:
    """One ClassInfo per id (sorted), keeping known names and colours; a class without a colour gets
    the one its name suggests (classcolors: water blue, forest dark green...), else a palette colour
    no other class has."""
    ordered = sorted(int(class_id) for class_id in ids)
    infos = [known.get(class_id) for class_id in ordered]
    names = [info.name if info and info.name else f"class {class_id}" for class_id, info in zip(ordered, infos)]
    colors = default_colors(names, [info.color if info else "" for info in infos])
    return [ClassInfo(class_id, name, color) for class_id, name, color in zip(ordered, names, colors)]


def _hex(entry: tuple[int, ...]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*entry[:3])


def classes_from_raster(path: str, band_index: int = 1) -> dict[int, ClassInfo]:
    """Names and colours a label raster carries: a QML sidecar first, else GDAL's colour table,
    category names and raster attribute table."""
    qml = os.path.splitext(path)[0] + ".qml"
    if os.path.exists(qml):
        found = classes_from_qml(qml)
        if found:
            return found
    ds = gdal.Open(path)
    band = ds.GetRasterBand(band_index)
    known: dict[int, ClassInfo] = {}
    table = band.GetColorTable()
    names = band.GetCategoryNames() or []
    if table is not None:
        for value in range(table.GetCount()):
            entry = table.GetColorEntry(value)
            if value < len(names) and names[value] or entry[3] > 0:
                name = names[value] if value < len(names) else ""
                known[value] = ClassInfo(value, name, _hex(entry))
    for value, name in enumerate(names):
        if name and value not in known:
            known[value] = ClassInfo(value, name, "")
    known.update(_classes_from_rat(band))
    return known


def _classes_from_rat(band: gdal.Band) -> dict[int, ClassInfo]:
    rat = band.GetDefaultRAT()
    if rat is None or rat.GetRowCount() == 0:
        return {}
    usage = {rat.GetUsageOfCol(i): i for i in range(rat.GetColumnCount())}
    value_col = usage.get(gdal.GFU_MinMax, usage.get(gdal.GFU_Min))
    name_col = usage.get(gdal.GFU_Name)
    if value_col is None or name_col is None:
        return {}
    rgb = [usage.get(u) for u in (gdal.GFU_Red, gdal.GFU_Green, gdal.GFU_Blue)]
    found = {}
    for row in range(rat.GetRowCount()):
        value = rat.GetValueAsInt(row, value_col)
        color = _hex(tuple(rat.GetValueAsInt(row, c) for c in rgb)) if None not in rgb else ""
        found[value] = ClassInfo(value, rat.GetValueAsString(row, name_col), color)
    return found


def classes_from_qml(path: str) -> dict[int, ClassInfo]:
    """Classes from a QGIS style: paletted raster entries or a categorized vector renderer."""
    root = ET.parse(path).getroot()
    found: dict[int, ClassInfo] = {}
    for entry in root.iter("paletteEntry"):
        try:
            value = int(float(entry.get("value", "")))
        except ValueError:
            continue
        found[value] = ClassInfo(value, entry.get("label", ""), (entry.get("color") or "")[:7])
    return found
