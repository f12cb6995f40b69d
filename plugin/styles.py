"""Styles for PatchFlow outputs, saved as QML sidecars (``<output>.qml``) so the desktop, later
sessions and qgis_process runs all get them."""

from __future__ import annotations

import os

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsMapLayer,
    QgsProcessingLayerPostProcessorInterface,
    QgsRendererCategory,
    QgsSymbol,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtGui import QColor


def sidecar_path(path: str) -> str:
    return os.path.splitext(path.split("|")[0])[0] + ".qml"


def class_renderer(classes: list[dict], field: str = "class") -> QgsCategorizedSymbolRenderer:
    categories = []
    for info in classes:
        symbol = QgsSymbol.defaultSymbol(QgsWkbTypes.PointGeometry)
        symbol.setColor(QColor(info["color"]))
        categories.append(QgsRendererCategory(info["id"], symbol, f"{info['id']} {info['name']}"))
    return QgsCategorizedSymbolRenderer(field, categories)


def style_class_points(path: str, classes: list[dict]) -> str | None:
    """Write the categorized-by-class QML sidecar of a point output; returns its path."""
    if not classes:
        return None
    layer = QgsVectorLayer(path, os.path.basename(path), "ogr")
    if not layer.isValid():
        return None
    layer.setRenderer(class_renderer(classes))
    qml = sidecar_path(path)
    message, ok = layer.saveNamedStyle(qml)
    return qml if ok else None


class LoadSidecarStyle(QgsProcessingLayerPostProcessorInterface):
    """Applies the QML sidecar when Processing loads the output into the project."""

    def __init__(self, qml: str) -> None:
        super().__init__()
        self.qml = qml

    def postProcessLayer(self, layer: QgsMapLayer, context, feedback) -> None:  # noqa: N802
        if layer is not None and os.path.exists(self.qml):
            layer.loadNamedStyle(self.qml)
            layer.triggerRepaint()
