"""Majority aggregation of a finer class raster onto a coarser grid of the same CRS, for Assess
accuracy when the map and its reference label raster have different pixel sizes.

Each fine pixel votes for the coarse pixel that holds its centre (with an integer ratio on aligned
grids: blocks of k x k fine pixels; with a non-integer ratio or offset grids: by area, through the
centres). A coarse pixel takes the class most of its valid fine pixels hold, ties going to the
smallest class id; fine nodata does not vote, and a coarse pixel without a valid fine pixel is
nodata. A coarse pixel is *mixed* when its valid fine pixels hold more than one class. Read window
by window: neither raster is held whole."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from osgeo import gdal

from ..errors import PatchFlowError
from ..geodata.raster import Grid, Window

# fine pixels read at once (a coarse window is cut into row strips below this)
FINE_PIXELS_PER_READ = 1 << 22
COARSE_TILE = 256  # columns and rows of a coarse window at most

# raw values of a window -> (integer class ids, where they are valid)
ToClasses = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Axis:
    """Where the fine pixels of one axis fall on the coarse grid: coarse index = floor(offset + (i + 0.5) * ratio)."""

    offset: float  # the fine grid's origin in coarse pixels
    ratio: float  # a fine pixel in coarse pixels (< 1)
    fine_size: int

    def coarse_index(self, fine: np.ndarray) -> np.ndarray:
        return np.floor(self.offset + (fine + 0.5) * self.ratio).astype(np.int64)

    def fine_range(self, start: int, stop: int) -> tuple[int, int]:
        """Fine indices [first, last) whose centres may fall in coarse [start, stop) (one spare each side)."""
        first = math.floor((start - self.offset) / self.ratio - 0.5) - 1
        last = math.ceil((stop - self.offset) / self.ratio - 0.5) + 1
        return max(first, 0), min(last, self.fine_size)

    def covered(self, coarse_size: int) -> tuple[int, int]:
        """The coarse indices [first, last) that receive a fine pixel (within the coarse grid)."""
        ends = self.coarse_index(np.array([0, self.fine_size - 1]))
        return max(int(ends[0]), 0), min(int(ends[1]) + 1, coarse_size)


def _axis(fine_origin: float, fine_step: float, coarse_origin: float, coarse_step: float, size: int) -> Axis:
    return Axis((fine_origin - coarse_origin) / coarse_step, fine_step / coarse_step, size)


def factor_text(fine: Grid, coarse: Grid) -> str:
    """'4' (square, integer), '4 x 2', or '2.5 (not an integer: by area ...)'."""
    fx, fy = abs(coarse.dx / fine.dx), abs(coarse.dy / fine.dy)
    integer = all(math.isclose(f, round(f), rel_tol=1e-6) for f in (fx, fy))
    size = f"{fx:.6g}" if math.isclose(fx, fy, rel_tol=1e-6) else f"{fx:.6g} x {fy:.6g}"
    return size if integer else f"{size} (not an integer: by area, each fine pixel voting where its centre falls)"


def finer_side(map_grid: Grid, ref_grid: Grid) -> str | None:
    """'reference' or 'map': which of the two is to be aggregated onto the other's grid (None: same pixel size)."""
    sizes = [(abs(map_grid.dx), abs(ref_grid.dx)), (abs(map_grid.dy), abs(ref_grid.dy))]
    same = [math.isclose(m, r, rel_tol=1e-6) for m, r in sizes]
    if all(same):
        return None
    if all(s or r < m for s, (m, r) in zip(same, sizes)):
        return "reference"
    if all(s or m < r for s, (m, r) in zip(same, sizes)):
        return "map"
    raise PatchFlowError(
        f"the reference's pixels ({abs(ref_grid.dx):g} x {abs(ref_grid.dy):g}) are finer than the map's "
        f"({abs(map_grid.dx):g} x {abs(map_grid.dy):g}) along one axis and coarser along the other, so neither can be "
        "aggregated onto the other. Resample one onto the other's grid first (gdalwarp -tr, nearest neighbour).",
        "REFERENCE_RASTER")


class Aggregated:
    """A fine class band read on a coarse grid: majority class, validity and mixed pixels per window."""

    def __init__(self, band: gdal.Band, fine: Grid, coarse: Grid, to_classes: ToClasses) -> None:
        self.band, self.fine, self.grid, self.to_classes = band, fine, coarse, to_classes
        self.x = _axis(fine.x0, fine.dx, coarse.x0, coarse.dx, fine.width)
        self.y = _axis(fine.y0, fine.dy, coarse.y0, coarse.dy, fine.height)

    def windows(self) -> Iterator[Window]:
        """Coarse windows over the part of the coarse grid the fine raster covers, each read in one go."""
        x_first, x_last = self.x.covered(self.grid.width)
        y_first, y_last = self.y.covered(self.grid.height)
        fine_per_coarse = 1.0 / (self.x.ratio * self.y.ratio)
        for x0 in range(x_first, x_last, COARSE_TILE):
            width = min(COARSE_TILE, x_last - x0)
            rows = max(1, min(COARSE_TILE, int(FINE_PIXELS_PER_READ / (fine_per_coarse * width))))
            for y0 in range(y_first, y_last, rows):
                yield x0, y0, width, min(rows, y_last - y0)

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(majority class ids, valid, mixed) of the coarse window."""
        x0, y0, width, height = window
        shape = (height, width)
        c0, c1 = self.x.fine_range(x0, x0 + width)
        r0, r1 = self.y.fine_range(y0, y0 + height)
        if c1 <= c0 or r1 <= r0:
            return np.zeros(shape, np.int64), np.zeros(shape, bool), np.zeros(shape, bool)
        ids, valid = self.to_classes(self.band.ReadAsArray(c0, r0, c1 - c0, r1 - r0))
        cols = self.x.coarse_index(np.arange(c0, c1)) - x0
        rows = self.y.coarse_index(np.arange(r0, r1)) - y0
        keep = valid & ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
        cells = (rows[:, None] * width + cols[None, :])[keep]
        return majority(cells, ids[keep], shape)


def majority(cells: np.ndarray, classes: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray,
                                                                                     np.ndarray]:
    """Per cell of ``shape`` (cells: flat indices, one per vote): the class with the most votes (ties:
    the smallest), whether it has any vote, and whether its votes hold more than one class."""
    size = shape[0] * shape[1]
    winner, voted = np.zeros(size, np.int64), np.zeros(size, bool)
    mixed = np.zeros(size, bool)
    if len(cells):
        present, index = np.unique(classes, return_inverse=True)
        keys, counts = np.unique(cells.astype(np.int64) * len(present) + index.reshape(-1), return_counts=True)
        cell, klass = keys // len(present), keys % len(present)
        order = np.lexsort((klass, -counts, cell))  # by cell, then most votes, then smallest class
        first = order[np.r_[True, cell[order][1:] != cell[order][:-1]]]
        winner[cell[first]], voted[cell[first]] = present[klass[first]], True
        mixed = np.bincount(cell, minlength=size) > 1
    return winner.reshape(shape), voted.reshape(shape), mixed.reshape(shape)
