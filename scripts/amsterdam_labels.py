#!/usr/bin/env python3
"""Writes the Amsterdam building labels on the Spot-6 scene's grid, from the OTBTF patches.

    .venv/bin/python scripts/amsterdam_labels.py [--data DIR] [--output PATH]

The Spot-6 sample data (``../shared/data/spot6_amsterdam``) ships patches-images
(``amsterdam_patches_{A,B}.tif``: 64 x 64 x 4 patches stacked in rows) with their building masks
(``amsterdam_labels_{A,B}.tif``: 1 building, 0 not), but no label raster on the scene. Each patch is
an exact crop of ``fake_spot6.jp2``: this script finds where, by looking up the first row's first
values of band 1 in a dictionary of the scene's n-grams (row-wise), keeps the position whose whole
crop (4 bands) equals the patch, and writes the masks there: 1 building, 2 background, 0 no label
(nodata). Where patches overlap, their masks must agree (checked). A patch found nowhere is reported
and skipped: no label is invented.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "spot6_amsterdam"
SCENE = "fake_spot6.jp2"
SETS = ("A", "B")
NGRAM = 8
BUILDING, BACKGROUND, NO_LABEL = 1, 2, 0

gdal.UseExceptions()


@dataclass
class Located:
    found: int
    missing: list[str]  # "A#12"
    ambiguous: int  # patches that matched more than one position (the first is used)
    labelled_pixels: int


def read_patches(path: Path) -> np.ndarray:
    """(n, p, p, bands) from an OTBTF patches-image (patches stacked in rows, p = its width)."""
    ds = gdal.Open(str(path))
    array = ds.ReadAsArray()
    array = array[None] if array.ndim == 2 else array
    bands, height, width = array.shape
    return array.reshape(bands, height // width, width, width).transpose(1, 2, 3, 0)


def ngram_index(band: np.ndarray, n: int) -> dict[bytes, list[tuple[int, int]]]:
    """Every row-wise run of n values of the band -> its (row, col) positions."""
    index: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    windows = np.lib.stride_tricks.sliding_window_view(band, n, axis=1)
    for row in range(windows.shape[0]):
        for col in range(windows.shape[1]):
            index[windows[row, col].tobytes()].append((row, col))
    return index


def locate(patch: np.ndarray, scene: np.ndarray, index: dict[bytes, list[tuple[int, int]]]) -> list[tuple[int, int]]:
    """Positions (row, col) of the scene's crops equal to the patch (all bands)."""
    size = patch.shape[0]
    key = patch[0, :NGRAM, 0].astype(scene.dtype).tobytes()
    if not np.array_equal(patch[0, :NGRAM, 0], patch[0, :NGRAM, 0].astype(scene.dtype)):
        return []  # not whole numbers: cannot be a crop of the Int16 scene
    hits = []
    for row, col in index.get(key, []):
        if row + size <= scene.shape[0] and col + size <= scene.shape[1]:
            if np.array_equal(scene[row:row + size, col:col + size], patch):
                hits.append((row, col))
    return hits


def build_labels(data: Path) -> tuple[np.ndarray, Located, gdal.Dataset]:
    ds = gdal.Open(str(data / SCENE))
    scene = ds.ReadAsArray().transpose(1, 2, 0)  # (rows, cols, bands)
    index = ngram_index(scene[:, :, 0], NGRAM)
    labels = np.full(scene.shape[:2], NO_LABEL, np.uint8)
    missing, found, ambiguous = [], 0, 0
    for name in SETS:
        patches = read_patches(data / f"amsterdam_patches_{name}.tif")
        masks = read_patches(data / f"amsterdam_labels_{name}.tif")[..., 0]
        for i, (patch, mask) in enumerate(zip(patches, masks)):
            hits = locate(patch, scene, index)
            if not hits:
                missing.append(f"{name}#{i}")
                continue
            ambiguous += len(hits) > 1
            row, col = hits[0]
            size = patch.shape[0]
            values = np.where(mask > 0, BUILDING, BACKGROUND).astype(np.uint8)
            window = labels[row:row + size, col:col + size]
            clash = (window != NO_LABEL) & (window != values)
            if clash.any():
                raise SystemExit(f"amsterdam_labels: patch {name}#{i} at row {row}, col {col} disagrees with an "
                                 f"overlapping patch on {int(clash.sum())} pixels")
            window[...] = values
            found += 1
    return labels, Located(found, missing, ambiguous, int((labels != NO_LABEL).sum())), ds


def write_labels(labels: np.ndarray, like: gdal.Dataset, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = gdal.GetDriverByName("GTiff").Create(str(path), labels.shape[1], labels.shape[0], 1, gdal.GDT_Byte,
                                               options=["COMPRESS=DEFLATE"])
    out.SetGeoTransform(like.GetGeoTransform())
    out.SetProjection(like.GetProjection())
    band = out.GetRasterBand(1)
    band.WriteArray(labels)
    band.SetNoDataValue(NO_LABEL)
    band.SetCategoryNames(["no label", "building", "background"])
    out.FlushCache()


def make_labels(data: Path, output: Path) -> Located:
    for name in [SCENE] + [f"amsterdam_{kind}_{s}.tif" for s in SETS for kind in ("patches", "labels")]:
        if not (data / name).exists():
            raise SystemExit(f"amsterdam_labels: {data / name} is missing (the Spot-6 Amsterdam sample data, "
                             "../shared/data/spot6_amsterdam; pass --data DIR)")
    labels, located, scene = build_labels(data)
    write_labels(labels, scene, output)
    return located


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--output", type=Path, default=ROOT / "sr-experiment-output" / "amsterdam_labels.tif")
    args = parser.parse_args(argv)
    located = make_labels(args.data, args.output)
    print(f"{located.found} patches located ({len(located.missing)} not found: {', '.join(located.missing) or '-'}; "
          f"{located.ambiguous} at more than one place), {located.labelled_pixels} labelled pixels -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
