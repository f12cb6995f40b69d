"""Default class colours: what a class is called says how a map usually shows it (water blue, forest
dark green, built-up red...), in English and French; classes whose name says nothing get a qualitative
palette, skipping the colours other classes already have. Colours that travel with the data (a colour
table, a QML, a colour field) always win: these are only for classes that bring none."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# A qualitative palette (Tableau 20 order) for classes that bring no colour and whose name says nothing.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip

# (colour, words or phrases that name it), the first rule one of whose phrases is in the name wins:
# specific phrases ("low vegetation", "sol nu", "forest road" is a road) before the words they contain.
# Words are matched accent-free, case-free, singular or plural.
SEMANTIC: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("#ffffff", ("snow", "ice", "glacier", "neige", "glace", "névé")),
    ("#d9d9d9", ("cloud", "nuage", "cloudy", "nuageux")),
    ("#808080", ("road", "pavement", "paved", "street", "asphalt", "parking", "highway", "route", "chaussée",
                 "voirie", "rue", "asphalte", "bitume", "autoroute", "revêtement")),
    ("#a6d96a", ("low vegetation", "grass", "grassland", "herbaceous", "herb", "meadow", "pasture", "lawn",
                 "prairie", "pelouse", "herbe", "herbacé", "herbacée", "végétation basse", "pâturage")),
    ("#808000", ("shrub", "shrubland", "scrub", "scrubland", "bush", "heath", "arbuste", "arbustive",
                 "arbustif", "lande", "broussaille", "fourré", "maquis", "garrigue")),
    ("#1b7837", ("forest", "tree", "wood", "woodland", "high vegetation", "canopy", "forêt", "arbre", "bois",
                 "végétation haute", "conifer", "coniferous", "deciduous", "broadleaf", "feuillu", "conifère")),
    ("#e31a1c", ("built", "built up", "building", "roof", "developed", "urban", "settlement", "artificial",
                 "impervious", "bâti", "bâtiment", "toit", "toiture", "urbain", "construit", "artificialisé",
                 "habitat", "développé")),
    ("#1f78b4", ("water", "river", "lake", "sea", "ocean", "pond", "reservoir", "stream", "canal", "eau",
                 "rivière", "fleuve", "lac", "mer", "océan", "étang", "plan d'eau", "hydrographie")),
    ("#41ae76", ("wetland", "marsh", "swamp", "bog", "zone humide", "marais", "marécage", "tourbière")),
    ("#ffd92f", ("crop", "cropland", "agriculture", "agricultural", "cultivated", "farmland", "field", "arable",
                 "culture", "agricole", "champ", "terre arable", "cultivé", "vigne", "vineyard", "orchard",
                 "verger")),
    ("#f5deb3", ("sediment", "sand", "beach", "dune", "sable", "plage", "sédiment", "grève")),
    ("#a0522d", ("bare", "soil", "bare soil", "bare ground", "barren", "dirt", "sol nu", "sol", "terre",
                 "sol à nu", "friche")),
    ("#9e9a91", ("rock", "stone", "gravel", "quarry", "roche", "rocher", "pierre", "gravier", "carrière")),
    ("#4daf4a", ("vegetation", "végétation", "green", "vert", "verdure")),
)  # fmt: skip


def _words(text: str) -> list[str]:
    """Lower-case, accent-free words of ``text`` (camelCase and snake_case split)."""
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return [word for word in re.split(r"[^a-z0-9]+", plain) if word]


def _forms(word: str) -> set[str]:
    """The word and its singular (English -s/-es, French -s/-x: trees, roofs, bushes, eaux, forêts)."""
    forms = {word}
    if len(word) > 3 and word[-1] in "sx":
        forms.add(word[:-1])
        if word.endswith("es"):
            forms.add(word[:-2])
    return forms


_RULES = [(color, [_words(phrase) for phrase in phrases]) for color, phrases in SEMANTIC]


def semantic_color(name: str) -> str:
    """'#rrggbb' a map usually gives a class called ``name`` ('' when the name says nothing we know)."""
    forms = [_forms(word) for word in _words(name or "")]
    for color, phrases in _RULES:
        for phrase in phrases:
            for start in range(len(forms) - len(phrase) + 1):
                if all(word in forms[start + i] for i, word in enumerate(phrase)):
                    return color
    return ""


def palette_colors(count: int, taken: Iterable[str] = ()) -> list[str]:
    """``count`` palette colours, those in ``taken`` left out while the palette lasts (then it cycles)."""
    used = {color.lower() for color in taken}
    free = [color for color in PALETTE if color not in used] or list(PALETTE)
    return [free[position % len(free)] for position in range(count)]


def default_colors(names: list[str], colors: list[str]) -> list[str]:
    """Every class's colour: its own (``colors[i]``, when not ''), else the semantic colour of its name,
    else the next palette colour no other class has."""
    filled = [color or semantic_color(name) for name, color in zip(names, colors)]
    missing = [i for i, color in enumerate(filled) if not color]
    for i, color in zip(missing, palette_colors(len(missing), filled)):
        filled[i] = color
    return filled
