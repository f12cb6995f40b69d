"""Score tables: CSV files and layers without geometry (GeoPackage, CSV, GeoJSON) that QGIS loads as
tables, written the same way for every evaluation (accuracy, image quality)."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable

from osgeo import ogr

from ..errors import PatchFlowError

TABLE_DRIVERS = {".gpkg": "GPKG", ".csv": "CSV", ".geojson": "GeoJSON", ".json": "GeoJSON"}


def check_table_format(path: str | None, parameter: str) -> None:
    """Refuse a table output whose extension no table driver writes (before any work)."""
    if path and os.path.splitext(path)[1].lower() not in TABLE_DRIVERS:
        raise PatchFlowError(f"unsupported table format '{os.path.splitext(path)[1]}'. Use one of: "
                             f"{', '.join(sorted(TABLE_DRIVERS))}.", parameter)


def write_csv(path: str, rows: list[dict], columns: list[str], float_text: Callable[[float], str] = repr) -> None:
    """Rows as CSV: an empty cell for None, floats written by ``float_text``."""
    def cell(value: object) -> object:
        if value is None:
            return ""
        return float_text(value) if isinstance(value, float) else value

    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: cell(v) for k, v in row.items()})


def write_table(path: str, rows: list[dict], columns: dict[str, int], parameter: str,
                keep_infinite: bool = False) -> None:
    """The rows as a layer without geometry, one typed field per column (``ogr.OFT...``). None is left
    empty; so are NaN and infinity, unless ``keep_infinite`` where the format has them (not GeoJSON)."""
    check_table_format(path, parameter)
    driver_name = TABLE_DRIVERS[os.path.splitext(path)[1].lower()]
    ds = ogr.GetDriverByName(driver_name).CreateDataSource(path)
    options = ["CREATE_CSVT=YES"] if driver_name == "CSV" else []
    layer = ds.CreateLayer(os.path.splitext(os.path.basename(path))[0], None, ogr.wkbNone, options)
    for column, kind in columns.items():
        layer.CreateField(ogr.FieldDefn(column, kind))
    skip_nonfinite = driver_name == "GeoJSON" or not keep_infinite
    definition = layer.GetLayerDefn()
    layer.StartTransaction()
    for row in rows:
        feature = ogr.Feature(definition)
        for column, value in row.items():
            if value is None or skip_nonfinite and isinstance(value, float) and not math.isfinite(value):
                continue
            feature.SetField(column, value)
        layer.CreateFeature(feature)
    layer.CommitTransaction()
    layer = None
    ds = None
