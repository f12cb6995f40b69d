"""The QGIS plugin: registers the Processing provider (also under qgis_process, without iface)."""

from __future__ import annotations

from qgis.core import QgsApplication

from .provider import PatchFlowProvider


class PatchFlowPlugin:
    def __init__(self, iface=None) -> None:
        self.iface = iface
        self.provider: PatchFlowProvider | None = None
        self.options_factory = None  # PatchFlow's page in Settings > Options (the desktop only)

    def initProcessing(self) -> None:  # noqa: N802 (QGIS's name)
        if self.provider is None:
            self.provider = PatchFlowProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()
        if self.iface is not None and hasattr(self.iface, "registerOptionsWidgetFactory"):
            from .settingspage import PatchFlowOptionsFactory

            self.options_factory = PatchFlowOptionsFactory()
            self.iface.registerOptionsWidgetFactory(self.options_factory)

    def unload(self) -> None:
        if self.options_factory is not None and self.iface is not None:
            self.iface.unregisterOptionsWidgetFactory(self.options_factory)
            self.options_factory = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
