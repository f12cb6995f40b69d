"""PNG thumbnails of one zoomed area of the held-out part: the four images (the first three bands, or
the first, stretched alike: 2-98 % of the HR there) and the four maps (class colours), each at the HR
pixel size (the LR shown with its own blocks: nearest neighbour)."""

from __future__ import annotations

import os

import numpy as np
from osgeo import gdal

from ..geodata.classes import ClassInfo
from ..report.rasterstyle import rgb
from .srscene import Scene

ZOOM = 96  # HR pixels a side, at most


def zoom_bounds(scene: Scene) -> tuple[tuple[float, float, float, float], int, int]:
    """(xmin, ymin, xmax, ymax), width and height of a square around the middle of the held-out labels."""
    rows, cols, _ = scene.held_out()
    rows, cols = (rows, cols) if len(rows) else np.nonzero(scene.test)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    size = int(min(ZOOM, r1 - r0, c1 - c0))
    top, left = (r0 + r1) // 2 - size // 2, (c0 + c1) // 2 - size // 2
    g = scene.grid
    x0, y0 = g.x0 + left * g.dx, g.y0 + top * g.dy
    return (x0, y0 + size * g.dy, x0 + size * g.dx, y0), size, size


def _window(path: str, bounds: tuple[float, float, float, float], width: int, height: int) -> np.ndarray:
    ds = gdal.Warp("", path, format="MEM", outputBounds=bounds, width=width, height=height, resampleAlg="near")
    values = ds.ReadAsArray().astype(np.float64)
    values = values.reshape(ds.RasterCount, height, width)
    nodata = ds.GetRasterBand(1).GetNoDataValue()
    if nodata is not None:
        values[values == nodata] = np.nan
    return values


def _png(rgb_values: np.ndarray, path: str) -> str:
    bands, height, width = rgb_values.shape
    memory = gdal.GetDriverByName("MEM").Create("", width, height, bands, gdal.GDT_Byte)
    for index in range(bands):
        memory.GetRasterBand(index + 1).WriteArray(rgb_values[index])
    gdal.GetDriverByName("PNG").CreateCopy(path, memory)
    aux = path + ".aux.xml"
    if os.path.exists(aux):
        os.remove(aux)
    return path


def image_pngs(images: dict[str, str], hr_key: str, scene: Scene, folder: str) -> dict[str, str]:
    """One PNG per image, stretched alike (2-98 % of each band of ``images[hr_key]`` in the zoom)."""
    bounds, width, height = zoom_bounds(scene)
    windows = {key: _window(path, bounds, width, height) for key, path in images.items()}
    bands = min(3, min(w.shape[0] for w in windows.values()))
    reference = windows[hr_key][:bands]
    low = np.array([np.nanpercentile(b, 2) if np.isfinite(b).any() else 0.0 for b in reference])
    high = np.array([np.nanpercentile(b, 98) if np.isfinite(b).any() else 1.0 for b in reference])
    span = np.where(high > low, high - low, 1.0)
    out = {}
    for key, values in windows.items():
        scaled = (values[:bands] - low[:, None, None]) / span[:, None, None]
        bytes_ = np.nan_to_num(np.clip(scaled, 0, 1) * 255, nan=0).astype(np.uint8)
        out[key] = _png(bytes_, os.path.join(folder, f"image_{key}.png"))
    return out


def map_pngs(maps: dict[str, str], classes: list[ClassInfo], scene: Scene, folder: str) -> dict[str, str]:
    """One PNG per class map, in the classes' colours (white where no class)."""
    bounds, width, height = zoom_bounds(scene)
    colours = {c.id: rgb(c.color) for c in classes}
    out = {}
    for key, path in maps.items():
        values = _window(path, bounds, width, height)[0]
        picture = np.full((3, height, width), 255, np.uint8)
        for class_id, colour in colours.items():
            where = values == class_id
            for index in range(3):
                picture[index][where] = colour[index]
        out[key] = _png(picture, os.path.join(folder, f"map_{key}.png"))
    return out
