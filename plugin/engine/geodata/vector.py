"""Vector access through OGR: reading points and class fields, writing class-tagged points."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from osgeo import ogr, osr

from ..errors import PatchFlowError
from .classes import ClassInfo, complete
from .raster import crs_label

ogr.UseExceptions()

CLASS_NAME_FIELD = "class_name"
COLOR_FIELD = "color"

DRIVERS = {".gpkg": "GPKG", ".shp": "ESRI Shapefile", ".geojson": "GeoJSON", ".json": "GeoJSON", ".fgb": "FlatGeobuf"}


def split_uri(uri: str) -> tuple[str, str | None]:
    """'file.gpkg|layername=x' -> ('file.gpkg', 'x')."""
    path, _, options = uri.partition("|")
    layer = None
    for option in options.split("|"):
        key, _, value = option.partition("=")
        if key == "layername":
            layer = value
    return path, layer


def open_layer(uri: str, parameter: str) -> tuple[ogr.DataSource, ogr.Layer]:
    path, layer_name = split_uri(uri)
    if not path or not os.path.exists(path):
        raise PatchFlowError(f"vector file not found: {path or '(empty)'}. Check the path.", parameter)
    try:
        ds = ogr.Open(path)
    except RuntimeError as exc:
        raise PatchFlowError(f"cannot open {path} as a vector layer: {exc}", parameter) from None
    if ds is None or ds.GetLayerCount() == 0:
        raise PatchFlowError(f"{path} holds no vector layer.", parameter)
    layer = ds.GetLayerByName(layer_name) if layer_name else ds.GetLayer(0)
    if layer is None:
        raise PatchFlowError(f"{path} has no layer named {layer_name}.", parameter)
    return ds, layer


def layer_crs_wkt(layer: ogr.Layer) -> str:
    srs = layer.GetSpatialRef()
    return srs.ExportToWkt() if srs is not None else ""


def transformer(source_wkt: str, target_wkt: str) -> osr.CoordinateTransformation | None:
    """None when no transformation is needed (same CRS, or either unknown)."""
    if not source_wkt or not target_wkt:
        return None
    source, target = osr.SpatialReference(), osr.SpatialReference()
    source.ImportFromWkt(source_wkt)
    target.ImportFromWkt(target_wkt)
    if source.IsSame(target):
        return None
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return osr.CoordinateTransformation(source, target)


@dataclass
class ClassField:
    """How a class field's values become integer class ids, with names and colours."""

    name: str
    ids: dict[object, int]
    classes: dict[int, ClassInfo] = field(default_factory=dict)
    is_text: bool = False

    def id_of(self, value: object) -> int:
        return self.ids[str(value) if self.is_text else value]

    def class_list(self) -> list[ClassInfo]:
        return complete(sorted(set(self.ids.values())), self.classes)


def resolve_class_field(layer: ogr.Layer, field_name: str, parameter: str, uri: str = "") -> ClassField:
    """Integer fields keep their values; text fields map sorted values to 0..N-1. Names come from
    the text values, a ``class_name`` field, or a text field that matches the ids one to one; colours
    from a ``color`` field, overridden by a categorized style saved beside the layer ``uri`` (its .qml,
    whose labels also name the classes the data leaves unnamed)."""
    definition = layer.GetLayerDefn()
    index = definition.GetFieldIndex(field_name)
    if index < 0:
        fields = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
        raise PatchFlowError(
            f"the layer has no field '{field_name}'. Its fields are: {', '.join(fields) or 'none'}.",
            parameter,
        )
    field_type = definition.GetFieldDefn(index).GetType()
    text_fields = [
        definition.GetFieldDefn(i).GetName()
        for i in range(definition.GetFieldCount())
        if definition.GetFieldDefn(i).GetType() == ogr.OFTString and i != index
    ]
    values: list = []
    extra: dict[str, list] = {name: [] for name in text_fields}
    layer.ResetReading()
    for feature in layer:
        value = feature.GetField(index)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        values.append(value)
        for name in text_fields:
            extra[name].append(feature.GetField(name))
    layer.ResetReading()
    if not values:
        raise PatchFlowError(f"field '{field_name}' is empty: no feature has a class value.", parameter)
    if field_type in (ogr.OFTInteger, ogr.OFTInteger64):
        ids = {v: int(v) for v in set(values)}
    elif field_type == ogr.OFTReal:
        if any(float(v) != int(v) for v in values):
            raise PatchFlowError(
                f"field '{field_name}' holds non-integer numbers; class ids must be integers or text.",
                parameter,
            )
        ids = {v: int(v) for v in set(values)}
    else:
        ids = {v: i for i, v in enumerate(sorted(set(map(str, values))))}
        values = [str(v) for v in values]
        classes = {i: ClassInfo(i, str(v), "") for v, i in ids.items()}
        return _styled(ClassField(field_name, ids, classes, is_text=True), uri)
    names = _names_from_text_fields(values, extra)
    colors = _one_to_one(values, extra.get(COLOR_FIELD, []))
    classes = {ids[v]: ClassInfo(ids[v], names.get(v, ""), colors.get(v, "")) for v in ids}
    return _styled(ClassField(field_name, ids, classes), uri)


def _styled(field: ClassField, uri: str) -> ClassField:
    from .vectorstyle import apply_style

    return apply_style(field, split_uri(uri)[0]) if uri else field


def _one_to_one(values: list, texts: list) -> dict:
    mapping: dict = {}
    if not texts:
        return mapping
    for value, text in zip(values, texts):
        if text is None or mapping.setdefault(value, text) != text:
            return {}
    return mapping


def _names_from_text_fields(values: list, extra: dict[str, list]) -> dict:
    ordered = sorted(extra, key=lambda name: name != CLASS_NAME_FIELD)
    for name in ordered:
        if name == COLOR_FIELD:
            continue
        mapping = _one_to_one(values, extra[name])
        if mapping and len(set(mapping.values())) == len(mapping):
            return mapping
    return {}


@dataclass
class Points:
    xs: np.ndarray
    ys: np.ndarray
    fids: np.ndarray
    class_ids: np.ndarray | None = None


def read_points(uri: str, parameter: str, target_wkt: str, class_field: ClassField | None = None) -> Points:
    """Point coordinates in ``target_wkt`` (multi-points give one point each), with class ids."""
    _, layer = open_layer(uri, parameter)
    geometry_type = ogr.GT_Flatten(layer.GetGeomType())
    if geometry_type not in (ogr.wkbPoint, ogr.wkbMultiPoint, ogr.wkbUnknown):
        raise PatchFlowError(
            f"the layer holds {ogr.GeometryTypeToName(layer.GetGeomType())} geometries; points are needed "
            "(use a sample selection algorithm to make them).",
            parameter,
        )
    transform = transformer(layer_crs_wkt(layer), target_wkt)
    xs, ys, fids, classes = [], [], [], []
    for feature in layer:
        geometry = feature.GetGeometryRef()
        if geometry is None or geometry.IsEmpty():
            continue
        class_id = -1
        if class_field is not None:
            value = feature.GetField(class_field.name)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            class_id = class_field.id_of(value)
        geometry = geometry.Clone()
        if transform is not None:
            try:
                geometry.Transform(transform)
            except RuntimeError as exc:
                source = crs_label(layer_crs_wkt(layer))
                raise PatchFlowError(
                    f"point {feature.GetFID()} cannot be moved from the layer's CRS ({source}) into the raster's "
                    f"({crs_label(target_wkt)}): {exc}. Check the layer's CRS (a GeoJSON file is always WGS 84), "
                    "or save the points in the raster's CRS.", parameter) from None
        for x, y in _point_coordinates(geometry):
            xs.append(x)
            ys.append(y)
            fids.append(feature.GetFID())
            classes.append(class_id)
    return Points(
        np.asarray(xs, dtype=np.float64),
        np.asarray(ys, dtype=np.float64),
        np.asarray(fids, dtype=np.int64),
        np.asarray(classes, dtype=np.int64) if class_field is not None else None,
    )


def _point_coordinates(geometry: ogr.Geometry) -> list[tuple[float, float]]:
    if geometry.GetGeometryCount() > 0:
        return [g.GetPoint_2D() for g in (geometry.GetGeometryRef(i) for i in range(geometry.GetGeometryCount()))]
    return [geometry.GetPoint_2D()]


class PointWriter:
    """Writes class-tagged points (class, class_name, color, extra integer fields) in batches."""

    def __init__(self, path: str, crs_wkt: str, parameter: str, extra_fields: Sequence[str] = ()) -> None:
        extension = os.path.splitext(path)[1].lower()
        driver_name = DRIVERS.get(extension)
        if driver_name is None:
            raise PatchFlowError(
                f"unsupported vector format '{extension}'. Use one of: {', '.join(sorted(DRIVERS))}.",
                parameter,
            )
        self.ds = ogr.GetDriverByName(driver_name).CreateDataSource(path)
        srs = None
        if crs_wkt:
            srs = osr.SpatialReference()
            srs.ImportFromWkt(crs_wkt)
        name = os.path.splitext(os.path.basename(path))[0]
        self.layer = self.ds.CreateLayer(name, srs, ogr.wkbPoint)
        self.layer.CreateField(ogr.FieldDefn("class", ogr.OFTInteger))
        name_field = ogr.FieldDefn(CLASS_NAME_FIELD, ogr.OFTString)
        name_field.SetWidth(80)
        self.layer.CreateField(name_field)
        color_field = ogr.FieldDefn(COLOR_FIELD, ogr.OFTString)
        color_field.SetWidth(9)
        self.layer.CreateField(color_field)
        self.extra_fields = list(extra_fields)
        for extra in self.extra_fields:
            self.layer.CreateField(ogr.FieldDefn(extra, ogr.OFTInteger))
        self.definition = self.layer.GetLayerDefn()
        self.count = 0

    def write(
        self,
        xs: np.ndarray,
        ys: np.ndarray,
        class_ids: np.ndarray | None,
        classes: dict[int, ClassInfo],
        extra: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.layer.StartTransaction()
        for i in range(len(xs)):
            feature = ogr.Feature(self.definition)
            if class_ids is not None:
                class_id = int(class_ids[i])
                feature.SetField("class", class_id)
                info = classes.get(class_id)
                if info is not None:
                    feature.SetField(CLASS_NAME_FIELD, info.name)
                    feature.SetField(COLOR_FIELD, info.color)
            for name, values in (extra or {}).items():
                feature.SetField(name, int(values[i]))
            point = ogr.Geometry(ogr.wkbPoint)
            point.AddPoint_2D(float(xs[i]), float(ys[i]))
            feature.SetGeometryDirectly(point)
            self.layer.CreateFeature(feature)
        self.layer.CommitTransaction()
        self.count += len(xs)

    def close(self) -> None:
        self.layer = None
        self.ds = None
