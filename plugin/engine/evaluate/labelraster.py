"""Assess accuracy's label-raster reference (REFERENCE_RASTER): read on the map's grid when both have the
same pixel size (nearest neighbour when their extents or origins differ), else the finer of the two is
aggregated onto the coarser one's grid (majority class, evaluate/majority.py) and the pairs are counted
there, with the share of mixed pixels."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from osgeo import gdal

from ..errors import PatchFlowError
from ..geodata.classes import ClassInfo, classes_from_raster
from ..geodata.raster import Grid, Window, crs_label, nodata_mask, open_raster
from ..reporting import Reporter
from .assess import MapBand, Tally, _check_cancel, _tally_window, classes_and_mask
from .majority import Aggregated, factor_text, finer_side

# a window's (class ids, valid, mixed) on the grid the pairs are counted on
Reader = Callable[[Window], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass
class RasterReference:
    """What the label raster gave beside the pairs: how it was read, and the mixed pixels when aggregated."""

    described: str
    extent: tuple[float, float, float, float]
    aggregated: str | None = None  # what was aggregated to what, by which factor
    mixed: int = 0  # scored pixels whose aggregated (fine) pixels hold more than one class
    scored: int = 0  # scored pixels (pairs)

    @property
    def mixed_share(self) -> float | None:
        return self.mixed / self.scored if self.aggregated is not None and self.scored else None


def reference_on_map_grid(ref: gdal.Dataset, ref_path: str, band_index: int,
                          grid: Grid) -> tuple[gdal.Dataset, gdal.Band]:
    """The reference band (of the map's pixel size) on the map's pixel grid, with the dataset that owns it
    (keep it while reading): the reference itself when the grids are the same, else a nearest-neighbour
    warped VRT, read lazily window by window (NaN outside the reference). The caller keeps ``ref`` open too."""
    if Grid.of(ref, "REFERENCE_RASTER").same_as(grid):
        return ref, ref.GetRasterBand(band_index)
    xmin, ymin, xmax, ymax = grid.extent
    source_nodata = ref.GetRasterBand(band_index).GetNoDataValue()
    options = gdal.WarpOptions(
        format="VRT", outputBounds=(xmin, ymin, xmax, ymax), xRes=abs(grid.dx), yRes=abs(grid.dy),
        dstSRS=grid.crs_wkt or None, resampleAlg="near", outputType=gdal.GDT_Float64, dstNodata=float("nan"),
        srcNodata=source_nodata)
    warped = gdal.Warp("", ref, options=options)
    if (warped.RasterXSize, warped.RasterYSize) != (grid.width, grid.height):
        raise PatchFlowError("the reference could not be resampled onto the map's grid. Resample it first "
                             "(gdalwarp, nearest neighbour, the map's extent and pixel size).", "REFERENCE_RASTER")
    return warped, warped.GetRasterBand(band_index)


def reference_nodata(band: gdal.Band, override: float | None, named: dict[int, ClassInfo]) -> list[float]:
    """Values of the reference that are 'no label': the override, else its nodata; and 0 unless the
    reference names 0 as a class."""
    values = [override if override is not None else band.GetNoDataValue()]
    if 0 not in named:
        values.append(0.0)
    return [v for v in values if v is not None]


def labels_of(raw: np.ndarray, no_label: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Reference class ids and where they are labelled (not 'no label', finite)."""
    labelled = np.ones(raw.shape, dtype=bool)
    for value in no_label:
        labelled &= ~nodata_mask(raw, value)
    reference, valid = classes_and_mask(raw, None)
    return reference, labelled & valid


def tally_rasters(map_band: MapBand, ref_band: gdal.Band, no_label: list[float], reporter: Reporter,
                  cancelled: Callable[[], bool], tally: Tally | None = None) -> Tally:
    """The pairs of a reference on the map's grid, window by window."""
    tally = tally or Tally()
    windows = map_band.windows()
    for index, window in enumerate(windows):
        _check_cancel(cancelled)
        reference, labelled = labels_of(ref_band.ReadAsArray(*window), no_label)
        _tally_window(tally, map_band, window, reference, labelled)
        reporter.stage(f"reading the map and the reference: windows {index + 1}/{len(windows)}",
                       100.0 * (index + 1) / len(windows), log=False)
    return tally


def tally_aggregated(map_read: Reader, ref_read: Reader, windows: Iterable[Window], grid: Grid, tally: Tally,
                     reporter: Reporter, cancelled: Callable[[], bool]) -> tuple[int, int]:
    """The pairs counted on the coarser grid; returns (mixed, scored) pixels."""
    mixed = scored = 0
    windows = list(windows)
    for index, window in enumerate(windows):
        _check_cancel(cancelled)
        reference, labelled, ref_mixed = ref_read(window)
        if labelled.any():
            values, valid, map_mixed = map_read(window)
            rows, cols = np.nonzero(labelled)
            tally.add(reference[labelled], values[labelled], valid[labelled],
                      grid.pixel_centres(cols + window[0], rows + window[1]))
            counted = valid[labelled]
            mixed += int(((ref_mixed | map_mixed)[labelled] & counted).sum())
            scored += int(counted.sum())
        reporter.stage(f"reading the map and the reference on the coarser grid: windows {index + 1}/{len(windows)}",
                       100.0 * (index + 1) / len(windows), log=False)
    return mixed, scored


def _size(grid: Grid) -> str:
    return f"{abs(grid.dx):g} x {abs(grid.dy):g}"


def tally_label_raster(map_band: MapBand, ref_path: str, band_index: int, override: float | None,
                       reporter: Reporter, cancelled: Callable[[], bool],
                       tally: Tally) -> tuple[Tally, dict[int, ClassInfo], RasterReference]:
    """The pairs of the map against a label raster, the reference's class names and how it was read."""
    grid = map_band.grid
    ref = open_raster(ref_path, "REFERENCE_RASTER")
    ref_grid = Grid.of(ref, "REFERENCE_RASTER")
    if not grid.same_crs_as(ref_grid):
        raise PatchFlowError(
            f"{ref_path} is in {crs_label(ref_grid.crs_wkt)} but the map is in {crs_label(grid.crs_wkt)}. "
            "Reproject the reference onto the map's grid first (gdalwarp -t_srs, nearest neighbour).",
            "REFERENCE_RASTER")
    if not 1 <= band_index <= ref.RasterCount:
        raise PatchFlowError(f"band {band_index} does not exist; the reference has {ref.RasterCount}.",
                             "REFERENCE_BAND")
    known_ref = classes_from_raster(ref_path, band_index)
    no_label = reference_nodata(ref.GetRasterBand(band_index), override, known_ref)
    described = "label raster (no label: " + ", ".join(f"{v:g}" for v in no_label) + ")"
    found = RasterReference(described, ref_grid.extent)
    finer = finer_side(grid, ref_grid)
    if finer is None:
        on_grid, ref_band = reference_on_map_grid(ref, ref_path, band_index, grid)
        tally = tally_rasters(map_band, ref_band, no_label, reporter, cancelled, tally)
        del on_grid  # held until here: a band does not keep its dataset alive
        return tally, known_ref, found
    ref_band = ref.GetRasterBand(band_index)

    def unmixed(read: Callable[[Window], tuple[np.ndarray, np.ndarray]]) -> Reader:
        """The side read as it is: no pixel of it is mixed."""
        def reader(window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            values, valid = read(window)
            return values, valid, np.zeros(valid.shape, bool)
        return reader

    if finer == "reference":
        aggregated = Aggregated(ref_band, ref_grid, grid, lambda raw: labels_of(raw, no_label))
        map_read: Reader = unmixed(map_band.read)
        ref_read: Reader = aggregated.read
        found.aggregated = (f"the reference ({_size(ref_grid)}) aggregated onto the map's grid ({_size(grid)}) by a "
                            f"factor of {factor_text(ref_grid, grid)}: the majority class of the reference pixels in "
                            "each map pixel, ties to the smallest class id, 'no label' not voting")
    else:
        aggregated = Aggregated(map_band.band, grid, ref_grid, lambda raw: classes_and_mask(raw, map_band.nodata))
        map_read = aggregated.read
        ref_read = unmixed(lambda window: labels_of(ref_band.ReadAsArray(*window), no_label))
        found.aggregated = (f"the map ({_size(grid)}) aggregated onto the reference's grid ({_size(ref_grid)}) by a "
                            f"factor of {factor_text(grid, ref_grid)}: the majority class of the map pixels in each "
                            "reference pixel, ties to the smallest class id, map nodata not voting; scored there")
    reporter.log(f"Pixel sizes differ: {found.aggregated}.")
    found.mixed, found.scored = tally_aggregated(map_read, ref_read, aggregated.windows(), aggregated.grid, tally,
                                                 reporter, cancelled)
    if found.scored:
        fine = "reference" if finer == "reference" else "map"
        reporter.log(f"{found.mixed} of the {found.scored} scored pixels ({found.mixed / found.scored:.1%}) are mixed: "
                     f"their {fine} pixels hold more than one class (the majority decides, the rest disagree).")
    del ref
    return tally, known_ref, found

