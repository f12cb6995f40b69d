"""The PatchFlow Processing provider (id ``patchflow``) and its settings."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .declarations import EXECUTION_SETTINGS
from .settings import (
    DEFAULT_EXECUTION,
    DEFAULT_IDLE_SECONDS,
    DEFAULT_MAX_MIB,
    EXECUTION_MODES,
    IDLE_SETTING,
    MEMORY_SETTING,
    PLUGIN_ROOT,
    PYTHON_SETTING,
)

ICON = PLUGIN_ROOT / "resources" / "icon.svg"  # the plugin's and the provider's
GROUP_ICONS = PLUGIN_ROOT / "resources" / "icons"  # an algorithm's: its toolbox group's, <group id>.svg
# the page every algorithm's Help button opens, at the algorithm's anchor (its name, e.g. #trainmodel):
# docs/algorithms.md, one section per algorithm; change it here alone if that page moves (tests/qgis/test_conventions.py
# checks that every anchor is in the file this URL names)
HELP_PAGE = "https://github.com/patchflow/patchflow/blob/main/docs/algorithms.md"


def _algorithms() -> list:
    from ..algorithms.apply_model import ApplyModel
    from ..algorithms.assess_accuracy import AssessAccuracy
    from ..algorithms.assess_image_quality import AssessImageQuality
    from ..algorithms.build_sr_dataset import BuildSrDataset
    from ..algorithms.classify import Classify
    from ..algorithms.compare_accuracy import CompareAccuracy
    from ..algorithms.compare_sr import CompareSr
    from ..algorithms.create_model import CreateModel
    from ..algorithms.describe_patches import DescribePatches
    from ..algorithms.extract_patches import ExtractPatches
    from ..algorithms.grid_split import GridSplit
    from ..algorithms.sample_label_raster import SampleFromLabelRaster
    from ..algorithms.sample_vector import SampleFromVector
    from ..algorithms.train_classifier import TrainClassifier
    from ..algorithms.train_model import TrainModel

    return [SampleFromLabelRaster(), SampleFromVector(), GridSplit(), ExtractPatches(), DescribePatches(),
            BuildSrDataset(),
            CreateModel(), TrainModel(), AssessAccuracy(), CompareAccuracy(), TrainClassifier(), Classify(),
            ApplyModel(), AssessImageQuality(), CompareSr()]


class PatchFlowProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "patchflow"

    def name(self) -> str:
        return "PatchFlow"

    def longName(self) -> str:  # noqa: N802
        return "PatchFlow: deep learning on remote-sensing images"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def svgIconPath(self) -> str:  # noqa: N802
        return str(ICON)

    def load(self) -> bool:
        try:
            from processing.core.ProcessingConfig import ProcessingConfig, Setting
        except ImportError:
            return super().load()
        ProcessingConfig.settingIcons[self.name()] = self.icon()
        ProcessingConfig.addSetting(Setting(
            self.name(), PYTHON_SETTING,
            "Python interpreter for the worker (empty: PATCHFLOW_PYTHON, else the plugin's .venv, else QGIS's; "
            "Settings > Options > PatchFlow shows the one in effect and checks it)",
            "", valuetype=Setting.FILE))
        ProcessingConfig.addSetting(Setting(
            self.name(), IDLE_SETTING, "Seconds a worker left running waits for the next run (0: a new worker "
            "for every run)", DEFAULT_IDLE_SECONDS, valuetype=Setting.INT))
        ProcessingConfig.addSetting(Setting(
            self.name(), MEMORY_SETTING, "Memory (MiB) above which a worker is not reused",
            DEFAULT_MAX_MIB, valuetype=Setting.INT))
        ProcessingConfig.addSetting(Setting(
            self.name(), EXECUTION_SETTINGS["EXECUTION"], "Where Apply model, Classify and Extract patches run when "
            "EXECUTION is 'the PatchFlow setting' (process: the worker itself; local: a local Dask cluster; scheduler; "
            "jobqueue: SLURM/PBS)",
            DEFAULT_EXECUTION["EXECUTION"], valuetype=Setting.SELECTION, options=list(EXECUTION_MODES)))
        ProcessingConfig.addSetting(Setting(
            self.name(), EXECUTION_SETTINGS["WORKERS"], "Local Dask cluster: worker processes",
            DEFAULT_EXECUTION["WORKERS"], valuetype=Setting.INT))
        ProcessingConfig.addSetting(Setting(
            self.name(), EXECUTION_SETTINGS["SCHEDULER"], "Dask scheduler address (tcp://host:8786)", ""))
        ProcessingConfig.addSetting(Setting(
            self.name(), EXECUTION_SETTINGS["CLUSTER_CONFIG"], "SLURM/PBS cluster file (JSON or YAML, docs/scaling.md)",
            "", valuetype=Setting.FILE))
        ProcessingConfig.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        from .client import POOL

        POOL.shutdown()  # the warm workers end with the plugin
        try:
            from processing.core.ProcessingConfig import ProcessingConfig
        except ImportError:
            return
        for name in (PYTHON_SETTING, IDLE_SETTING, MEMORY_SETTING, *EXECUTION_SETTINGS.values()):
            ProcessingConfig.removeSetting(name)

    def loadAlgorithms(self) -> None:  # noqa: N802
        for algorithm in _algorithms():
            self.addAlgorithm(algorithm)

    def supportedOutputVectorLayerExtensions(self) -> list[str]:  # noqa: N802
        return ["gpkg", "shp", "geojson", "fgb"]

    def defaultVectorFileExtension(self, hasGeometry: bool = True) -> str:  # noqa: N802,N803
        return "gpkg"

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802
        return ["tif"]
