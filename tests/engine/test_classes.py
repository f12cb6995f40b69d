"""Class information crosses the engine as ClassInfo; the dicts manifests and model cards hold are
read the same way (ClassInfo.of), so a function gives one result for either form."""

from __future__ import annotations

import numpy as np
import pytest

from patchflow.plugin.engine.evaluate.metrics import Scores
from patchflow.plugin.engine.geodata.classcolors import semantic_color
from patchflow.plugin.engine.geodata.classes import PALETTE, ClassInfo
from patchflow.plugin.engine.report.rasterstyle import class_qml, set_class_table

# a name and a colour, a colour only, a name only, neither (the last as sparse as a card's entry can be)
DICTS = [{"id": 3, "name": "water", "color": "#0000ff", "count": 12}, {"id": 5, "name": "", "color": "#00ff00"},
         {"id": 7, "name": "forest"}, {"id": 9}]


def test_of_reads_the_json_form_and_keeps_a_classinfo():
    infos = [ClassInfo.of(d) for d in DICTS]
    assert infos == [ClassInfo(3, "water", "#0000ff", 12), ClassInfo(5, "", "#00ff00"), ClassInfo(7, "forest", ""),
                     ClassInfo(9, "", "")]
    info = ClassInfo(4, "urban", "#ff0000")
    assert ClassInfo.of(info) is info
    assert ClassInfo.of({"id": 2.0, "name": None, "color": None}) == ClassInfo(2, "", "")
    with pytest.raises(KeyError):
        ClassInfo.of({"name": "no id"})


def test_scores_name_classes_alike_from_classinfo_and_dicts():
    matrix = np.arange(16).reshape(4, 4)
    from_dicts = Scores.from_matrix(matrix, DICTS)
    from_infos = Scores.from_matrix(matrix, [ClassInfo.of(d) for d in DICTS])
    assert from_infos.class_ids == from_dicts.class_ids == [3, 5, 7, 9]
    assert from_infos.names == from_dicts.names == ["water", "class 5", "forest", "class 9"]
    # missing colours: the one the name suggests (forest), else the first palette colour no class has
    assert from_infos.colors == from_dicts.colors == ["#0000ff", "#00ff00", semantic_color("forest"), PALETTE[0]]
    pairs = Scores.from_pairs(np.array([3, 5, 7]), np.array([3, 6, 7]), [ClassInfo.of(d) for d in DICTS])
    assert pairs.class_ids == [3, 5, 7, 9, 6] and pairs.names[-1] == "class 6"


def test_class_styles_alike_from_classinfo_and_dicts(tmp_path):
    from osgeo import gdal

    infos = [ClassInfo.of(d) for d in DICTS]
    text = class_qml(infos)
    assert text == class_qml(DICTS)
    assert 'label="water"' in text and 'label="class 9"' in text and 'color="#808080"' in text  # no colour: grey
    tables = []
    for classes in (DICTS, infos):
        ds = gdal.GetDriverByName("MEM").Create("", 4, 4, 1, gdal.GDT_Byte)
        band = ds.GetRasterBand(1)
        assert set_class_table(band, classes)
        table = band.GetColorTable()
        tables.append(([table.GetColorEntry(i) for i in range(table.GetCount())], band.GetCategoryNames()))
    assert tables[0] == tables[1]
    entries, names = tables[0]
    assert entries[3] == (0, 0, 255, 255) and entries[4] == (0, 0, 0, 0)
    assert names[3] == "water" and names[5] == "class 5" and names[9] == "class 9"
