"""The scene of a "does super-resolution help?" experiment: the labels on the HR image's grid (a label
raster on that grid, or polygons / points burnt on it, as sampling burns them), the spatial split into
a training part and a held-out part (the left TRAIN_SHARE of the width, or TRAIN_AREA / TEST_AREA
polygons), and the label rasters the steps read (training labels only: held-out labels never reach a
training step)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from osgeo import gdal, ogr

from ..errors import PatchFlowError
from ..geodata.classcolors import default_colors
from ..geodata.classes import ClassInfo, classes_from_raster, complete
from ..geodata.raster import Grid, open_raster
from ..geodata.vector import layer_crs_wkt, open_layer, resolve_class_field, transformer
from ..report.rasterstyle import set_class_table

NONE = -1  # no label, in the arrays here


@dataclass
class Scene:
    grid: Grid  # the HR image's
    labels: np.ndarray  # class id per HR pixel, NONE where unlabelled
    train: np.ndarray  # bool per HR pixel: in the training part
    test: np.ndarray  # bool per HR pixel: in the held-out part
    classes: list[ClassInfo]
    column: int | None  # the split column (TRAIN_SHARE), else None (polygons)
    split_text: str

    @property
    def nodata(self) -> int:
        """The 'no label' value of the label rasters written: 0 unless 0 is a class."""
        ids = [c.id for c in self.classes]
        return 0 if 0 not in ids else max(ids) + 1

    def held_out(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, columns and classes of the labelled held-out pixels."""
        rows, cols = np.nonzero(self.test & (self.labels != NONE))
        return rows, cols, self.labels[rows, cols]


def hr_grid(path: str) -> Grid:
    return Grid.of(open_raster(path, "HR"), "HR")


def raster_labels(path: str, grid: Grid) -> tuple[np.ndarray, list[ClassInfo]]:
    """A label raster on the HR grid: its nodata (else 0) means no label."""
    ds = open_raster(path, "LABELS")
    if not Grid.of(ds, "LABELS").same_as(grid):
        raise PatchFlowError("the label raster is not on the HR image's grid (same size, origin and pixel size). "
                             "Warp it to the HR image (gdalwarp -tr -te, nearest), or give polygons or points.",
                             "LABELS")
    band = ds.GetRasterBand(1)
    values = band.ReadAsArray().astype(np.float64)
    nodata = band.GetNoDataValue()
    nodata = 0.0 if nodata is None else nodata
    unlabelled = (values == nodata) | ~np.isfinite(values)
    labels = np.where(unlabelled, NONE, np.where(unlabelled, 0, values)).astype(np.int64)
    ids = sorted(int(v) for v in np.unique(labels[labels != NONE]))
    return labels, complete(ids, classes_from_raster(path))


def vector_labels(uri: str, field_name: str, grid: Grid) -> tuple[np.ndarray, list[ClassInfo]]:
    """Polygons (a pixel whose centre is inside) or points (the pixel holding them) burnt on the HR grid."""
    from ..data.sampling import NO_CLASS, VectorLabels, _class_id_layer

    if not field_name:
        raise PatchFlowError("labelled polygons or points need their class field: choose the field holding each "
                             "feature's class (integer or text).", "CLASS_FIELD")
    _, layer = open_layer(uri, "REFERENCE")
    field = resolve_class_field(layer, field_name, "CLASS_FIELD", uri)
    memory, burn = _class_id_layer(layer, field, grid.crs_wkt, transformer(layer_crs_wkt(layer), grid.crs_wkt))
    labels = VectorLabels(burn, grid, memory).read((0, 0, grid.width, grid.height))
    labels[labels == NO_CLASS] = NONE
    ids = sorted(int(v) for v in np.unique(labels[labels != NONE]))
    return labels, [c for c in field.class_list() if c.id in ids] or complete(ids, {})


def area_mask(uri: str, grid: Grid, parameter: str) -> np.ndarray:
    """Pixels whose centre is inside the polygons of ``uri``."""
    _, layer = open_layer(uri, parameter)
    if ogr.GT_Flatten(layer.GetGeomType()) not in (ogr.wkbPolygon, ogr.wkbMultiPolygon, ogr.wkbUnknown):
        raise PatchFlowError("the layer holds no polygons: give polygons covering the part.", parameter)
    target = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 1, gdal.GDT_Byte)
    target.SetGeoTransform(grid.geotransform)
    target.SetProjection(grid.crs_wkt)
    gdal.RasterizeLayer(target, [1], layer, burn_values=[1])  # reprojected to the grid's CRS by GDAL
    return target.ReadAsArray().astype(bool)


def column_split(labels: np.ndarray, share: float, scale: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The left ``share`` of the width trains (the column a multiple of the scale: whole LR pixels)."""
    width = labels.shape[1]
    column = int(width * share) // scale * scale
    if column < scale or column > width - scale:
        raise PatchFlowError(f"{share:g} of {width} pixels leaves no training or no held-out part at scale {scale}.",
                             "TRAIN_SHARE")
    left = np.zeros(labels.shape, bool)
    left[:, :column] = True
    return left, ~left, column


def make_scene(labels: np.ndarray, classes: list[ClassInfo], grid: Grid, share: float, scale: int,
               areas: tuple[str, str] | None) -> Scene:
    """The split: TRAIN_AREA / TEST_AREA polygons when given, else the left ``share`` of the width."""
    if len(classes) < 2:
        raise PatchFlowError(f"the labels hold {len(classes)} class on the HR image; 2 or more are needed. Check "
                             "that they cover the image (same CRS), and the class field.", "LABELS")
    if areas is not None:
        train, test = area_mask(areas[0], grid, "TRAIN_AREA"), area_mask(areas[1], grid, "TEST_AREA")
        overlap = int((train & test & (labels != NONE)).sum())
        if overlap:
            raise PatchFlowError(f"TRAIN_AREA and TEST_AREA overlap at {overlap} labelled pixels: a pixel can only be "
                                 "in one part. Make the polygons disjoint.", "TEST_AREA")
        column, text = None, "TRAIN_AREA polygons train, TEST_AREA polygons are held out"
    else:
        train, test, column = column_split(labels, share, scale)
        text = f"the left {column} of {grid.width} columns ({share:g} of the width) train, the rest is held out"
    for name, part in (("TRAIN_AREA", train), ("TEST_AREA", test)):
        if not ((labels != NONE) & part).any():
            raise PatchFlowError(f"the {'training' if name == 'TRAIN_AREA' else 'held-out'} part holds no labelled "
                                 "pixel. Move the split, or check the labels.", name if areas else "TRAIN_SHARE")
    colours = default_colors([c.name for c in classes], [c.color for c in classes])
    classes = [ClassInfo(c.id, c.name or f"class {c.id}", colour) for c, colour in zip(classes, colours)]
    return Scene(grid, labels, train, test, classes, column, text)


def write_labels(scene: Scene, keep: np.ndarray, path: str, grid: Grid | None = None) -> str:
    """The labels where ``keep`` (else no label) as a GeoTIFF with the class names and colours; on
    ``grid`` (a coarser one: the majority of the labelled HR pixels of each cell) when given."""
    nodata = scene.nodata
    values = np.where(keep & (scene.labels != NONE), scene.labels, nodata)
    dtype, gdal_type = (np.uint8, gdal.GDT_Byte) if values.max() < 256 else (np.uint16, gdal.GDT_UInt16)
    driver = gdal.GetDriverByName("MEM" if grid is not None else "GTiff")
    g = scene.grid
    ds = driver.Create("" if grid is not None else path, g.width, g.height, 1, gdal_type)
    ds.SetGeoTransform(g.geotransform)
    ds.SetProjection(g.crs_wkt)
    band = ds.GetRasterBand(1)
    band.WriteArray(values.astype(dtype))
    band.SetNoDataValue(nodata)
    set_class_table(band, scene.classes)
    if grid is None:
        ds = None
        return path
    x1, y1 = grid.x0 + grid.dx * grid.width, grid.y0 + grid.dy * grid.height
    out = gdal.Warp(path, ds, format="GTiff", outputBounds=(grid.x0, y1, x1, grid.y0), width=grid.width,
                    height=grid.height, resampleAlg="mode", srcNodata=nodata, dstNodata=nodata)
    set_class_table(out.GetRasterBand(1), scene.classes)
    out = None
    return path


def centres_labels(scene: Scene, patch: int, path: str) -> str:
    """Training labels whose patch (``patch`` HR pixels) stays inside the training part: the patch
    centres a CNN samples (left of the split column by half a patch; polygons: any training pixel)."""
    keep = scene.train.copy()
    if scene.column is not None:
        keep[:, max(0, scene.column - patch // 2):] = False
    return write_labels(scene, keep, path)
