"""Image quality of a produced image (a super-resolved one, say) against a reference: PSNR, SSIM, SAM and
ERGAS, with a bicubic upsampling of the low-resolution input as the baseline."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterVectorDestination,
)

from .base import PatchFlowAlgorithm

SCORES = (("PSNR", "PSNR (dB, all bands)"), ("SSIM", "SSIM (mean of bands)"), ("SAM", "SAM (degrees)"),
          ("ERGAS", "ERGAS"))


class AssessImageQuality(PatchFlowAlgorithm):
    NAME = "assessimagequality"
    DISPLAY_NAME = "Assess image quality"
    GROUP_ID = "accuracy"
    OPERATION = "assess_image_quality"
    HELP = (
        "Scores a produced image (a super-resolved one, say) against a reference image of the same area and "
        "bands: PSNR, SSIM, SAM (spectral angle) and ERGAS, per band and overall. Given the low-resolution "
        "input too, the same scores of its bicubic upsampling are reported as the baseline to beat.<br><br>"
        "<b>Grid</b>: the reference's. An image on another grid (same CRS) is resampled to it with bilinear "
        "interpolation (placed without interpolation when its pixels are the reference's); the "
        "low-resolution input is upsampled with GDAL's cubic convolution (bicubic). The log and the report "
        "say what was done. Images in another CRS are refused: reproject them first. Each input may be "
        "several rasters stacked as bands; all must have the reference's band count.<br>"
        "<b>Pixels</b>: those valid (not nodata in any band, finite) in every image compared; the extent "
        "limits them to part of the reference.<br><br>"
        "<b>Formulas</b> (R the data range, µ the reference band's mean):<ul>"
        "<li>PSNR = 10 log10(R² / MSE) per band; overall, 10 log10(1 / mean over bands of MSE / R²); "
        "inf for a perfect match. R is the <i>data range</i>, else the reference band's max − min.</li>"
        "<li>SSIM: scikit-image's structural_similarity defaults (7×7 uniform window, K1 0.01, K2 0.03, "
        "sample covariance), leaving out 3 pixels at the borders as it does; overall, the mean of the "
        "bands.</li>"
        "<li>SAM: the mean angle between the reference's and the image's spectra at each pixel, in degrees "
        "(2 bands or more).</li>"
        "<li>ERGAS = 100 (h/l) √(mean over bands of RMSE² / µ²), h/l the high- over the low-resolution pixel "
        "size: the <i>ERGAS ratio</i>, else the reference's pixel size over the low-resolution input's, "
        "else 1.</li></ul>"
        "Outputs: a CSV (a row per image and band, then an 'all' row per image), an HTML report (shown in "
        "the Results Viewer) and optionally the same table as a layer without geometry."
    )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        raster = QgsProcessing.TypeRaster
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "INPUT", "Produced image: raster(s), stacked", raster))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "REFERENCE", "Reference image: raster(s), stacked", raster))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "LOW_RESOLUTION", "Low-resolution input, for a bicubic baseline: raster(s), stacked", raster,
            optional=True))
        double = QgsProcessingParameterNumber.Double
        self.addParameter(QgsProcessingParameterNumber(
            "DATA_RANGE", "Data range for PSNR and SSIM (empty: the reference band's max - min)", double, None,
            optional=True, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(
            "SCALE_FOR_ERGAS", "ERGAS ratio h/l, high- over low-resolution pixel size (empty: from the pixel "
            "sizes, else 1)", double, None, optional=True, minValue=0.0))
        self.addParameter(QgsProcessingParameterExtent(
            "EXTENT", "Compared extent (empty: the whole reference)", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_CSV", "Scores (CSV)", "CSV files (*.csv)"))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_HTML", "Image quality report (HTML)", "HTML files (*.html)"))
        table = QgsProcessingParameterVectorDestination(
            "OUTPUT_TABLE", "Scores table", QgsProcessing.TypeVector, optional=True, createByDefault=False)
        table.setSupportsNonFileBasedOutput(False)
        self.addParameter(table)
        for name, label in SCORES:
            self.addOutput(QgsProcessingOutputNumber(name, label))
            self.addOutput(QgsProcessingOutputNumber(f"BASELINE_{name}", f"Bicubic baseline {label}"))
        self.addOutput(QgsProcessingOutputNumber("PIXELS", "Pixels compared"))

    def process(self, parameters, context, feedback) -> dict:
        job = {
            "INPUT": self.raster_paths(parameters, "INPUT", context),
            "REFERENCE": self.raster_paths(parameters, "REFERENCE", context),
            "LOW_RESOLUTION": self.raster_paths(parameters, "LOW_RESOLUTION", context) or None,
            "EXTENT": self.extent_text(parameters, context, "REFERENCE"),
            "OUTPUT_CSV": self.parameterAsFileOutput(parameters, "OUTPUT_CSV", context),
            "OUTPUT_HTML": self.parameterAsFileOutput(parameters, "OUTPUT_HTML", context),
            "OUTPUT_TABLE": self.parameterAsOutputLayer(parameters, "OUTPUT_TABLE", context) or None,
        }
        for name in ("DATA_RANGE", "SCALE_FOR_ERGAS"):
            if parameters.get(name) not in (None, ""):
                job[name] = self.parameterAsDouble(parameters, name, context)
        paths = [p for p in (job["OUTPUT_CSV"], job["OUTPUT_HTML"], job["OUTPUT_TABLE"]) if p]
        result = self.run_engine(job, paths, feedback)
        names = [name for name, _ in SCORES]
        return {name: result.get(name) for name in (
            *names, *(f"BASELINE_{n}" for n in names), "PIXELS", "OUTPUT_CSV", "OUTPUT_HTML", "OUTPUT_TABLE")}
