"""Labelled polygons as the label source of a segmentation dataset (extract_patches LABEL_POLYGONS +
LABEL_FIELD): the polygons, moved once into SOURCE1's CRS, are burnt on SOURCE1's pixel grid one
window (a chunk of patches, or one patch) at a time in memory, exactly as a label raster on that
grid would give them: a pixel whose centre lies in a polygon gets its class id, every other pixel
the nodata value (no label, which training ignores). Class names come from the field (text values
-> ids 0..N-1, as for sample points), colours from a QML beside the layer, else from the class names (classcolors)."""

from __future__ import annotations

import numpy as np
from osgeo import ogr

from ..errors import PatchFlowError
from ..geodata.classes import ClassInfo, complete
from ..geodata.raster import BandRef, Grid, RasterStack, Window
from ..geodata.vector import ClassField, layer_crs_wkt, open_layer, resolve_class_field, transformer
from ..params import Params
from .patches import Source

POLYGON_TYPES = (ogr.wkbPolygon, ogr.wkbMultiPolygon, ogr.wkbCurvePolygon, ogr.wkbMultiSurface, ogr.wkbUnknown)
SOURCE_NAME = "labels_polygons"


def label_type(ids: list[int]) -> tuple[np.dtype, int]:
    """The smallest integer type holding every class id and a nodata value that is none of them."""
    low, high = (min(ids), max(ids)) if ids else (0, 0)
    if low >= 0 and high < 255:
        return np.dtype(np.uint8), 255
    for dtype in (np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min < low and high <= info.max:
            return np.dtype(dtype), int(info.min)
    raise PatchFlowError(f"class ids {low}..{high} do not fit a 32-bit label raster.", "LABEL_FIELD")


class PolygonLabels(RasterStack):
    """A one-band 'raster' of class ids on ``grid``, burnt from polygons window by window (what
    extraction reads from a label raster, without writing one)."""

    def __init__(self, uri: str, field: ClassField, layer: ogr.Layer, grid: Grid) -> None:  # noqa: D107
        from .sampling import VectorLabels, _class_id_layer

        self.parameter = "LABEL_POLYGONS"
        self.paths = [uri]
        self.datasets = []  # nothing opened: the patches are burnt, not read
        self.grid = grid
        self.field = field
        memory, burn = _class_id_layer(layer, field, grid.crs_wkt, transformer(layer_crs_wkt(layer), grid.crs_wkt))
        self.burner = VectorLabels(burn, grid, memory)
        self.dtype, nodata = label_type(sorted(set(field.ids.values())))
        self.bands = [BandRef(uri, 1, f"class ({field.name})", float(nodata))]

    def read(self, window: Window) -> np.ndarray:
        from .sampling import NO_CLASS

        labels = self.burner.read(window)
        labels[labels == NO_CLASS] = int(self.bands[0].nodata or 0)
        return labels.astype(self.dtype)[np.newaxis]


def polygon_source(params: Params, reference: Source) -> tuple[Source, ClassField]:
    """The label source burnt from LABEL_POLYGONS (classes of LABEL_FIELD) on SOURCE1's grid."""
    uri = params.string("LABEL_POLYGONS")
    field_name = params.string("LABEL_FIELD")
    if not field_name:
        raise PatchFlowError("labelled polygons need their class field: choose the field holding each polygon's "
                             "class (integer or text).", "LABEL_FIELD")
    _, layer = open_layer(uri, "LABEL_POLYGONS")
    kind = ogr.GT_Flatten(layer.GetGeomType())
    if kind not in POLYGON_TYPES:
        raise PatchFlowError(f"the layer holds {ogr.GeometryTypeToName(layer.GetGeomType())} geometries; labelled "
                             "polygons are needed (points give one label per patch: use INPUT's CLASS_FIELD).",
                             "LABEL_POLYGONS")
    field = resolve_class_field(layer, field_name, "LABEL_FIELD", uri)
    stack = PolygonLabels(uri, field, layer, reference.grid)
    size = params.integer("LABEL_PATCH_SIZE", reference.patch_size)
    return Source(SOURCE_NAME, "LABEL_POLYGONS", stack, size, role="label"), field


def polygon_classes(stack: PolygonLabels, pixel_counts: dict[int, int]) -> list[ClassInfo]:
    """The classes found in the label patches (nodata left out), named by the field, coloured by a QML
    beside the layer (else as their names suggest, classcolors), with their pixel counts."""
    nodata = stack.bands[0].nodata
    counts = {k: v for k, v in pixel_counts.items() if k != nodata}
    if not counts:
        raise PatchFlowError("no label patch has a pixel inside a polygon: the polygons do not reach the patches. "
                             "Check that LABEL_POLYGONS covers the points (INPUT) and SOURCE1, in the right CRS.",
                             "LABEL_POLYGONS")
    found = complete(list(counts), stack.field.classes)  # the field's names, the QML's colours (resolve_class_field)
    for info in found:
        info.count = int(counts.get(info.id, 0))
    return found
