"""The output raster: its format (kind, data type, nodata, band names), the tiled, compressed GeoTIFF created
on the output grid, tiles encoded, counted and written, and the style written beside it (colour table and QML
for a class map, pseudocolour for probabilities, a stretch for images and features).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from osgeo import gdal

from ..errors import PatchFlowError
from ..geodata.classes import complete
from ..geodata.geotiff import class_map_encoding, create_geotiff, creation_options
from ..params import Params
from ..report.rasterstyle import class_qml, set_class_table, write_qml
from .binding import ARGMAX
from .plan import ServingPlan, output_size
from .servingstyle import image_qml, probability_qml
from .tiles import Tile

GTIFF_OPTIONS = creation_options(tiled=True, block=256, deflate=True, threads=2)


@dataclass
class OutputFormat:
    kind: str  # class, probabilities, features, image
    dtype: np.dtype
    nodata: float
    channels: int
    names: list[str]


def output_format(params: Params, plan: ServingPlan, channels: int, class_count: int | None = None) -> OutputFormat:
    card = plan.model.card
    kinds = set()
    for name in plan.outputs:
        try:
            kinds.add("class" if name.endswith(ARGMAX) else card.output(name).kind if card
                      else ("class" if name.startswith("class") else "image"))
        except KeyError:
            kinds.add("class" if name.startswith("class") else "image")
    kind = kinds.pop() if len(kinds) == 1 else "image"
    wanted = params.choice("OUTPUT_TYPE")
    nodata = params.nodata("NODATA")
    default_nodata: float
    if kind == "class":
        ids = card.class_ids if card and card.classes else list(range(class_count or 256))
        dtype, default_nodata = class_map_encoding(ids)
    else:
        dtype, default_nodata = np.dtype(np.float32), -9999.0
    if wanted != "auto":
        dtype = np.dtype(wanted)
    nodata = default_nodata if nodata is None else nodata
    if dtype.kind in "iu" and not (np.iinfo(dtype).min <= nodata <= np.iinfo(dtype).max):
        raise PatchFlowError(f"NODATA {nodata:g} does not fit the output type {dtype.name}.", "NODATA")
    class_names = [c["name"] for c in card.classes] if card and card.classes else []
    if kind == "probabilities" and len(class_names) == channels:
        names = [f"probability {n}" for n in class_names]
    else:
        names = [plan.outputs[0] if channels == 1 else f"{plan.outputs[0]} {i + 1}" for i in range(channels)]
    return OutputFormat(kind, dtype, float(nodata), channels, names)


def output_transform(plan: ServingPlan) -> tuple[float, float, float, float, float, float]:
    """The output grid's geotransform: the window's corner, pixels of the stride or of the scale factor."""
    grid, (x0, y0, _, _) = plan.sources[0].stack.grid, plan.window
    if plan.mode == "patch":
        dx, dy = grid.dx * plan.stride, grid.dy * plan.stride
    else:
        dx, dy = grid.dx / plan.geometry.factor, grid.dy / plan.geometry.factor
    return grid.x0 + x0 * grid.dx, dx, 0.0, grid.y0 + y0 * grid.dy, 0.0, dy


def create_output(path: str, plan: ServingPlan, fmt: OutputFormat, options: list[str] | None = None) -> gdal.Dataset:
    """The output GeoTIFF (``options``: GTIFF_OPTIONS unless given) on the plan's output grid, bands described."""
    out_w, out_h = output_size(plan)
    ds = create_geotiff(path, out_w, out_h, fmt.channels, fmt.dtype, GTIFF_OPTIONS if options is None else options,
                        "OUTPUT", output_transform(plan), plan.sources[0].stack.grid.crs_wkt)
    describe_bands(ds, plan, fmt)
    return ds


def describe_bands(ds: gdal.Dataset, plan: ServingPlan, fmt: OutputFormat) -> None:
    """Nodata, band names and (a class map of a card with classes) the colour table."""
    for index in range(fmt.channels):
        band = ds.GetRasterBand(index + 1)
        band.SetNoDataValue(fmt.nodata)
        band.SetDescription(fmt.names[index])
    card = plan.model.card
    if fmt.kind == "class" and card and card.classes:  # before any block is written: TIFF tags are fixed then
        set_class_table(ds.GetRasterBand(1), card.classes)


def encode(values: np.ndarray, invalid: np.ndarray, fmt: OutputFormat) -> np.ndarray:
    if fmt.dtype.kind in "iu":
        info = np.iinfo(fmt.dtype)
        values = np.clip(np.rint(values) if values.dtype.kind == "f" else values, info.min, info.max)
    data = values.astype(fmt.dtype)
    data[invalid] = fmt.nodata
    return data


def write_tile(ds: gdal.Dataset, fmt: OutputFormat, tile: Tile, result: np.ndarray | None,
               counts: dict[int, int]) -> None:
    """Encode a tile's outputs (nodata where its input is), count its classes, write it."""
    if result is None:
        data = np.full((tile.out_h, tile.out_w, fmt.channels), fmt.nodata, fmt.dtype)
    else:
        data = encode(result, tile.invalid, fmt)
        if fmt.kind == "class":
            count_classes(data[..., 0][~tile.invalid], counts)
    for index in range(data.shape[-1]):
        ds.GetRasterBand(index + 1).WriteArray(data[..., index], tile.out_x, tile.out_y)


def count_classes(values: np.ndarray, counts: dict[int, int]) -> None:
    if values.dtype.kind == "u":
        found = np.bincount(values.ravel())
        for value in np.flatnonzero(found).tolist():
            counts[value] = counts.get(value, 0) + int(found[value])
        return
    for value, number in zip(*(a.tolist() for a in np.unique(values, return_counts=True))):
        counts[value] = counts.get(value, 0) + number


def set_category_names(band: gdal.Band, classes: list[dict]) -> None:
    ids = [int(c["id"]) for c in classes]
    if ids and 0 <= min(ids) and max(ids) < 65536:
        names = [""] * (max(ids) + 1)
        for info in classes:
            names[int(info["id"])] = str(info["name"])
        band.SetCategoryNames(names)


def style(ds: gdal.Dataset, qml_path: str, plan: ServingPlan, fmt: OutputFormat, found: list[int]) -> list[dict]:
    """Colour table and QML for a class map (the card's classes, else those found); pseudocolour for
    probabilities; an RGB (or grey) stretch for images and features."""
    card = plan.model.card
    classes = list(card.classes) if card and card.classes else []
    if fmt.kind == "class":
        if not classes:  # known only now: names (kept beside the TIFF) and the QML; no colour table
            classes = [{"id": c.id, "name": c.name, "color": c.color} for c in complete(found, {})]
            set_category_names(ds.GetRasterBand(1), classes)
        text = class_qml(classes)
    elif fmt.kind == "probabilities":
        text = probability_qml()
    else:
        text = image_qml(ds, fmt.nodata)
    write_qml(qml_path, text)
    return classes if fmt.kind == "class" else []
