"""Super-resolution dataset: LR / HR patch pairs, the LR given or degraded from the HR (Wald's protocol)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from .base import PatchFlowAlgorithm

INTEGER = QgsProcessingParameterNumber.Integer
DOUBLE = QgsProcessingParameterNumber.Double


class BuildSrDataset(PatchFlowAlgorithm):
    NAME = "buildsrdataset"
    DISPLAY_NAME = "Build super-resolution dataset"
    GROUP_ID = "patches"
    OPERATION = "build_sr_dataset"
    HELP = (
        "Pairs of low-resolution (LR) and high-resolution (HR) patches covering the same ground, for training "
        "a super-resolution model (SR4RS-style), split spatially into training and validation datasets."
        "<br><b>With an LR image</b>: both must share a CRS and overlap; the ratio is measured from the pixel "
        "sizes (e.g. 10 m / 2.5 m = 4; non-integer ratios such as 2.5 work when patch size and step times the "
        "ratio are whole numbers of HR pixels) and HR pixel edges must fall on LR pixel edges (the error says "
        "how far off they are, in LR pixels).<br><b>Without an LR image</b>, the HR image is degraded by "
        "Wald's protocol: a Gaussian low-pass whose gain at the LR Nyquist frequency is 0.25 (sigma = 0.53 x "
        "scale HR pixels), sampled at the centre of each scale x scale block; the degraded image can be saved."
        "<br>Patch centres lie on a grid (patch size and step in LR pixels; HR patches are scale times larger); "
        "pairs touching nodata are left out. Blocks of patches go to training or validation, and training "
        "patches that would overlap validation ones are dropped.<br><b>Radiometric matching</b> fits, per "
        "band, LR = gain x HR + offset (HR averaged over each LR pixel) and writes the HR patches in LR units."
        "<br>Outputs: for each set, a manifest (JSON) and two OTBTF patches-images beside it, "
        "&lt;name&gt;_lr.tif and &lt;name&gt;_hr.tif. Train a model with input 'lr' and target 'hr'."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "HR", "High-resolution image: raster(s), stacked", QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "LR", "Low-resolution image: raster(s), stacked (empty: degrade the HR image)", QgsProcessing.TypeRaster,
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "SCALE", "Scale factor when degrading (whole number; empty: 4; with an LR image it is measured)", DOUBLE,
            None, optional=True, minValue=1.0))
        self.addParameter(QgsProcessingParameterNumber(
            "PATCH_SIZE", "LR patch size (pixels)", INTEGER, 32, minValue=1))
        self.addParameter(QgsProcessingParameterNumber(
            "STEP", "Step between patch centres (LR pixels; default: the patch size)", INTEGER, None, optional=True,
            minValue=1))
        self.addParameter(QgsProcessingParameterNumber(
            "VALID", "Validation fraction", DOUBLE, 0.3, minValue=0.0, maxValue=0.95))
        self.addParameter(QgsProcessingParameterNumber(
            "BLOCK_SIZE", "Block size (patches per side that go to the same set)", INTEGER, 4, minValue=1))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Random seed", INTEGER, 0))
        self.addParameter(QgsProcessingParameterBoolean(
            "RADIOMETRIC", "Match the HR radiometry to the LR (per-band linear fit)", False))
        self.addParameter(QgsProcessingParameterNumber(
            "NODATA", "Nodata value of the images (default: the rasters')", DOUBLE, None, optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_TRAIN", "Training dataset manifest", "JSON files (*.json)"))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_VALID", "Validation dataset manifest", "JSON files (*.json)", optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "OUTPUT_LR", "Degraded LR image (when no LR image is given)", optional=True, createByDefault=False))
        for name, label in (("COUNT_TRAIN", "Training patch pairs"), ("COUNT_VALID", "Validation patch pairs"),
                            ("SCALE", "Scale (LR pixel / HR pixel)"),
                            ("OFFSET_X", "HR grid offset from the LR grid, across (LR pixels)"),
                            ("OFFSET_Y", "HR grid offset from the LR grid, down (LR pixels)")):
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def process(self, parameters, context, feedback) -> dict:
        job = {
            "HR": self.raster_paths(parameters, "HR", context),
            "LR": self.raster_paths(parameters, "LR", context),
            "PATCH_SIZE": self.parameterAsInt(parameters, "PATCH_SIZE", context),
            "VALID": self.parameterAsDouble(parameters, "VALID", context),
            "BLOCK_SIZE": self.parameterAsInt(parameters, "BLOCK_SIZE", context),
            "SEED": self.parameterAsInt(parameters, "SEED", context),
            "RADIOMETRIC": self.parameterAsBoolean(parameters, "RADIOMETRIC", context),
            "OUTPUT_TRAIN": self.parameterAsFileOutput(parameters, "OUTPUT_TRAIN", context),
            "OUTPUT_VALID": self.parameterAsFileOutput(parameters, "OUTPUT_VALID", context) or None,
            "OUTPUT_LR": self.parameterAsOutputLayer(parameters, "OUTPUT_LR", context) or None,
        }
        for name in ("SCALE", "STEP", "NODATA"):
            if parameters.get(name) not in (None, ""):
                job[name] = self.parameterAsDouble(parameters, name, context)
        paths = [job[name] for name in ("OUTPUT_TRAIN", "OUTPUT_VALID", "OUTPUT_LR") if job[name]]
        return self.run_engine(job, paths, feedback)
