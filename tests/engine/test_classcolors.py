"""Class colours: semantic defaults from class names (English, French, any case, plurals), the palette
for the rest, and colours that travel with the data (a label raster's colour table, a QML beside the
labelled vector layer) winning over both, through the operations that read classes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from patchflow.plugin.engine.geodata.classcolors import PALETTE, default_colors, semantic_color
from patchflow.plugin.engine.geodata.classes import ClassInfo, complete

ORIGIN = (400000.0, 6000000.0)


def rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


# What a map reader expects to see, as a test on the colour itself (not a copy of the table).
LOOKS = {
    "blue": lambda r, g, b: b > r + 60 and b > g,
    "dark green": lambda r, g, b: g > r + 40 and g > b and g < 160,
    "light green": lambda r, g, b: g > r and g > b and g >= 160,
    "yellow": lambda r, g, b: r > 200 and g > 180 and b < 120,
    "red": lambda r, g, b: r > 180 and g < 80 and b < 80,
    "grey": lambda r, g, b: max(r, g, b) - min(r, g, b) < 12 and 80 <= r <= 200,
    "brown": lambda r, g, b: r > g > b and r < 200 and r - b > 60,
    "beige": lambda r, g, b: r > 220 and g > 190 and b > 140 and r >= g >= b,
    "olive": lambda r, g, b: abs(r - g) < 40 and b < 60 and 90 <= g <= 170,
    "white": lambda r, g, b: min(r, g, b) >= 245,
    "light grey": lambda r, g, b: max(r, g, b) - min(r, g, b) < 12 and 200 <= r < 245,
}

NAMES = {
    "blue": ["water", "Water", "WATER", "waters", "eau", "Eaux", "plan d'eau", "lakes", "River"],
    "dark green": ["forest", "Forests", "forêt", "Forêts", "FORET", "trees", "bois", "high_vegetation"],
    "light green": ["grass", "Low vegetation", "LowVegetation", "low-vegetation", "prairie", "Prairies",
                    "herbaceous", "végétation basse"],
    "yellow": ["crops", "Crop", "agriculture", "culture", "Cultures", "agricole"],
    "red": ["built-up", "Built up", "building", "Buildings", "roofs", "developed", "bâti", "Bâtiments", "urbain"],
    "grey": ["road", "Roads", "pavement", "route", "Routes", "chaussée"],
    "brown": ["bare soil", "Bare", "soil", "sol nu", "Sols nus"],
    "beige": ["sediment", "sediments", "sand", "Sable", "sédiment"],
    "olive": ["shrub", "Shrubs", "shrubland", "arbuste", "Arbustes"],
    "white": ["snow", "Snow", "neige"],
    "light grey": ["cloud", "Clouds", "nuage", "Nuages"],
}


@pytest.mark.parametrize("look,name", [(look, name) for look, names in NAMES.items() for name in names])
def test_class_names_get_the_colour_maps_give_them(look, name):
    color = semantic_color(name)
    assert color, f"{name!r} got no colour"
    assert LOOKS[look](*rgb(color)), f"{name!r} -> {color}, not {look}"


def test_variants_of_one_name_share_one_colour_and_other_looks_differ():
    for names in NAMES.values():
        assert len({semantic_color(n) for n in names}) == 1, names
    assert len({semantic_color(names[0]) for names in NAMES.values()}) == len(NAMES)


@pytest.mark.parametrize("name", ["class 3", "", "foo", "C7", "label_12"])
def test_names_that_say_nothing_get_no_semantic_colour(name):
    assert semantic_color(name) == ""


def test_palette_for_the_rest_skips_colours_already_given():
    colors = default_colors(["water", "class 2", "class 3", "forest"], ["", PALETTE[0], "", "#123456"])
    assert colors[0] == semantic_color("water") and colors[1] == PALETTE[0] and colors[3] == "#123456"
    assert colors[2] == PALETTE[1]  # PALETTE[0] is class 2's own
    many = default_colors([f"class {i}" for i in range(5)], [""] * 5)
    assert many == list(PALETTE[:5])


def test_complete_keeps_known_colours_then_names_then_palette():
    known = {1: ClassInfo(1, "water", "#ff00ff"), 2: ClassInfo(2, "forest", ""), 5: ClassInfo(5, "", "")}
    infos = complete([5, 1, 2, 7], known)
    assert [(i.id, i.name) for i in infos] == [(1, "water"), (2, "forest"), (5, "class 5"), (7, "class 7")]
    assert infos[0].color == "#ff00ff"  # its own, though 'water' suggests blue
    assert infos[1].color == semantic_color("forest")
    assert infos[2].color == PALETTE[0] and infos[3].color == PALETTE[1]


# ---- through the operations ----------------------------------------------------------------------


def nc_copy(nc, tmp_path, stem: str) -> str:
    for extension in (".shp", ".shx", ".dbf", ".prj"):
        shutil.copy(nc / f"{stem}{extension}", tmp_path / f"{stem}{extension}")
    return str(tmp_path / f"{stem}.shp")


def write_categorized_qml(path, field: str, categories: dict[str, tuple[str, str]], kind: str = "fill") -> None:
    """A QGIS categorized renderer on ``field``: value -> (label, 'r,g,b')."""
    cats = "".join(f'<category value="{v}" symbol="{i}" label="{label}" render="true"/>'
                   for i, (v, (label, _)) in enumerate(categories.items()))
    symbols = "".join(f'<symbol name="{i}" type="{kind}"><layer class="Simple"><Option type="Map">'
                      f'<Option name="color" value="{color},255" type="QString"/></Option></layer></symbol>'
                      for i, (_, color) in enumerate(categories.values()))
    path.write_text(f'<qgis><renderer-v2 type="categorizedSymbol" attr="{field}"><categories>{cats}</categories>'
                    f"<symbols>{symbols}</symbols></renderer-v2></qgis>")


def test_nc_demo_classes_get_the_colours_their_names_suggest(run_op, nc, tmp_path):
    out, _ = run_op("extract_patches", INPUT=str(nc / "landsat96_points.shp"),
                    SOURCE1=str(nc / "landsat_multiband.tif"), PATCH_SIZE1=4, CLASS_FIELD="id",
                    OUTPUT=str(tmp_path / "out" / "d.json"))
    classes = json.loads(open(out["OUTPUT"]).read())["classes"]
    looks = {c["name"]: c["color"] for c in classes}
    expected = {"water": "blue", "forest": "dark green", "developed": "red", "agriculture": "yellow",
                "herbaceous": "light green", "shrubland": "olive", "sediment": "beige"}
    assert set(looks) == set(expected)
    for name, look in expected.items():
        assert LOOKS[look](*rgb(looks[name])), f"{name} -> {looks[name]}, not {look}"


def test_qml_beside_the_sampled_polygons_colours_and_names_the_classes(run_op, nc, tmp_path):
    polygons = nc_copy(nc, tmp_path, "landsat96_polygons")
    # integer field 'id', named by the layer's 'label' field: the style colours them (over what the names
    # suggest); its labels only name classes the data leaves unnamed
    write_categorized_qml(tmp_path / "landsat96_polygons.qml", "id",
                          {"6": ("Open water", "255,0,255"), "5": ("Woods", "10,20,30")})
    out, _ = run_op("sample_vector", INPUT=polygons, RASTER=str(nc / "landsat_multiband.tif"), FIELD="id",
                    NUMBER=5, OUTPUT=str(tmp_path / "s.gpkg"))
    by_id = {c["id"]: (c["name"], c["color"]) for c in out["CLASSES"]}
    assert by_id[6] == ("water", "#ff00ff") and by_id[5] == ("forest", "#0a141e")
    assert by_id[1] == ("developed", semantic_color("developed"))  # not in the style: its name's colour
    without = tmp_path / "plain"
    without.mkdir()
    out, _ = run_op("sample_vector", INPUT=nc_copy(nc, without, "landsat96_polygons"),
                    RASTER=str(nc / "landsat_multiband.tif"), FIELD="id", NUMBER=5, OUTPUT=str(without / "s.gpkg"))
    assert {c["id"]: c["color"] for c in out["CLASSES"]}[6] == semantic_color("water")


def test_qml_beside_labelled_points_reaches_the_manifest(run_op, nc, tmp_path):
    points = nc_copy(nc, tmp_path, "landsat96_points")
    write_categorized_qml(tmp_path / "landsat96_points.qml", "id",
                          {"6": ("Water", "1,2,3"), "1": ("Developed", "200,200,0")}, kind="marker")
    out, _ = run_op("extract_patches", INPUT=points, SOURCE1=str(nc / "landsat_multiband.tif"), PATCH_SIZE1=4,
                    CLASS_FIELD="id", OUTPUT=str(tmp_path / "out" / "d.json"))
    colours = {c["id"]: c["color"] for c in json.loads(open(out["OUTPUT"]).read())["classes"]}
    assert colours[6] == "#010203" and colours[1] == "#c8c800" and colours[5] == semantic_color("forest")


def test_label_raster_colour_table_wins_over_the_names(run_op, gd, tmp_path):
    rng = np.random.default_rng(4)
    image = gd.write_raster(tmp_path / "img.tif", rng.normal(0, 1, (2, 48, 48)).astype(np.float32), origin=ORIGIN,
                            pixel=10.0)
    classes = rng.choice([1, 2, 3], (48, 48)).astype(np.uint8)
    labels = gd.write_raster(tmp_path / "classes.tif", classes, origin=ORIGIN, pixel=10.0,
                             color_table={1: (250, 0, 250, 255), 2: (10, 20, 30, 255), 3: (0, 0, 255, 255)},
                             category_names=["", "water", "forest", "Roads"])
    xs = ORIGIN[0] + 10.0 * np.array([10.5, 20.5, 30.2, 38.9])
    ys = ORIGIN[1] - 10.0 * np.array([12.5, 30.1, 20.5, 38.3])
    out, _ = run_op("extract_patches", INPUT=gd.write_points(tmp_path / "p.gpkg", xs, ys), SOURCE1=image,
                    PATCH_SIZE1=8, LABEL_RASTER=labels, OUTPUT=str(tmp_path / "s.json"))
    colours = {c["name"]: c["color"] for c in json.loads(open(out["OUTPUT"]).read())["classes"]}
    assert colours == {"water": "#fa00fa", "forest": "#0a141e", "Roads": "#0000ff"}  # the table's, not the names'
    unstyled = gd.write_raster(tmp_path / "plain.tif", classes, origin=ORIGIN, pixel=10.0,
                               category_names=["", "water", "forest", "Roads"])
    out, _ = run_op("extract_patches", INPUT=gd.write_points(tmp_path / "p2.gpkg", xs, ys), SOURCE1=image,
                    PATCH_SIZE1=8, LABEL_RASTER=unstyled, OUTPUT=str(tmp_path / "s2.json"))
    colours = {c["name"]: c["color"] for c in json.loads(open(out["OUTPUT"]).read())["classes"]}
    assert colours == {name: semantic_color(name) for name in ("water", "forest", "Roads")}


def test_style_labels_name_classes_the_data_leaves_unnamed(run_op, gd, tmp_path):
    image = gd.write_raster(tmp_path / "img.tif", np.ones((2, 40, 40), np.float32), origin=ORIGIN, pixel=10.0)
    xs = ORIGIN[0] + 10.0 * np.array([5.5, 15.5, 25.5, 35.5])
    ys = ORIGIN[1] - 10.0 * np.array([5.5, 15.5, 25.5, 35.5])
    points = gd.write_points(tmp_path / "p.shp", xs, ys, {"code": [3, 3, 8, 9]})
    write_categorized_qml(tmp_path / "p.qml", "code", {"3": ("Eaux", "0,0,200"), "8": ("Forêts", "")},
                          kind="marker")
    out, _ = run_op("extract_patches", INPUT=points, SOURCE1=image, PATCH_SIZE1=4, CLASS_FIELD="code",
                    OUTPUT=str(tmp_path / "out" / "d.json"))
    classes = {c["id"]: (c["name"], c["color"]) for c in json.loads(open(out["OUTPUT"]).read())["classes"]}
    # 3: the style's label and colour; 8: its label, no colour in the style -> the colour 'Forêts' suggests;
    # 9: not in the style, unnamed -> 'class 9' and the first palette colour
    assert classes == {3: ("Eaux", "#0000c8"), 8: ("Forêts", semantic_color("forest")), 9: ("class 9", PALETTE[0])}
