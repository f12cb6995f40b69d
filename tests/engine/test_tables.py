"""The one table writer of the evaluations (accuracy, image quality)."""

from __future__ import annotations

import math

import pytest
from osgeo import ogr

from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.report.tables import check_table_format, write_csv, write_table

COLUMNS = {"name": ogr.OFTString, "value": ogr.OFTReal, "count": ogr.OFTInteger64}
ROWS = [{"name": "a", "value": 0.5, "count": 3}, {"name": "b", "value": math.inf, "count": None},
        {"name": "c", "value": math.nan, "count": 1}]


def values(path: str) -> list[tuple]:
    ds = ogr.Open(path)
    layer = ds.GetLayer(0)
    return [(f.GetField("name"), f.GetField("value") if f.IsFieldSet("value") else None,
             f.GetField("count") if f.IsFieldSet("count") else None) for f in layer]


@pytest.mark.parametrize("extension", [".gpkg", ".csv", ".geojson"])
def test_none_and_nonfinite_values_are_left_empty(tmp_path, extension):
    path = str(tmp_path / f"t{extension}")
    write_table(path, ROWS, COLUMNS, "OUTPUT_TABLE")
    assert values(path) == [("a", 0.5, 3), ("b", None, None), ("c", None, 1)]


def test_infinity_is_kept_where_the_format_has_it(tmp_path):
    write_table(str(tmp_path / "t.gpkg"), ROWS, COLUMNS, "OUTPUT_TABLE", keep_infinite=True)
    assert values(str(tmp_path / "t.gpkg"))[1][1] == math.inf
    write_table(str(tmp_path / "t.geojson"), ROWS, COLUMNS, "OUTPUT_TABLE", keep_infinite=True)
    assert values(str(tmp_path / "t.geojson"))[1][1] is None  # GeoJSON has no infinity


def test_an_unknown_table_format_names_the_parameter(tmp_path):
    for call in (lambda: check_table_format(str(tmp_path / "t.xlsx"), "OUTPUT_TABLE"),
                 lambda: write_table(str(tmp_path / "t.xlsx"), ROWS, COLUMNS, "OUTPUT_TABLE")):
        with pytest.raises(PatchFlowError) as caught:
            call()
        assert caught.value.parameter == "OUTPUT_TABLE" and ".gpkg" in caught.value.message
    assert not (tmp_path / "t.xlsx").exists()


def test_csv_cells_empty_for_none_floats_as_asked(tmp_path):
    path = tmp_path / "t.csv"
    write_csv(str(path), ROWS[:2], list(COLUMNS), lambda v: f"{v:.2f}")
    assert path.read_text(encoding="utf-8").splitlines() == ["name,value,count", "a,0.50,3", "b,inf,"]
