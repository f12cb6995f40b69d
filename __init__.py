"""PatchFlow: deep learning on remote-sensing images in QGIS Processing.

Nothing here imports QGIS at module level, so the engine (``plugin.engine``) can run in a
worker interpreter that has no QGIS.
"""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    from .plugin.patchflow_plugin import PatchFlowPlugin

    return PatchFlowPlugin(iface)
