"""The QGIS plugin: registers the Processing provider (also under qgis_process, without iface)."""

from __future__ import annotations

from qgis.core import QgsApplication

from .provider import PatchFlowProvider


class PatchFlowPlugin:
    def __init__(self, iface=None) -> None:
        self.iface = iface
        self.provider: PatchFlowProvider | None = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS's name)
        if self.provider is None:
            self.provider = PatchFlowProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
