"""Styles for PatchFlow outputs: the engine writes them as QML sidecars (``<output>.qml``) so the
desktop, later sessions and qgis_process runs all get them; the QGIS side only loads them."""

from __future__ import annotations

import os

from qgis.core import QgsMapLayer, QgsProcessingLayerPostProcessorInterface


class LoadSidecarStyle(QgsProcessingLayerPostProcessorInterface):
    """Applies the QML sidecar when Processing loads the output into the project."""

    def __init__(self, qml: str) -> None:
        super().__init__()
        self.qml = qml

    def postProcessLayer(self, layer: QgsMapLayer, context, feedback) -> None:  # noqa: N802
        if layer is not None and os.path.exists(self.qml):
            layer.loadNamedStyle(self.qml)
            layer.triggerRepaint()
