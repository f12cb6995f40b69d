"""The four versions of the image: LR (a real LR image of another sensor, else the HR degraded by SCALE
with Wald's protocol, data/srdegrade.py), bicubic (the LR warped onto the HR grid with GDAL's cubic
convolution, true bicubic), SR (the zoo's SR generator trained on LR/HR pairs of the training part
only, Build super-resolution dataset + Train model, then applied to the whole LR by Apply model) and
HR (the input itself)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from osgeo import gdal

from ..data.srdegrade import degrade
from ..geodata.raster import Grid, RasterStack, open_raster
from ..params import RunContext
from ..reporting import Reporter
from .srscene import Scene
from .steps import run_step

KEYS = ("lr", "bicubic", "sr", "hr")
NAMES = {"lr": "LR", "bicubic": "bicubic", "sr": "SR", "hr": "HR"}
WORDS = {"lr": "LR image", "bicubic": "bicubic-upsampled LR (cubic convolution)", "sr": "super-resolved LR",
         "hr": "HR image"}


@dataclass(frozen=True)
class Version:
    key: str
    path: str
    grid: Grid

    @property
    def name(self) -> str:
        return NAMES[self.key]


@dataclass(frozen=True)
class SrSettings:
    epochs: int
    patch: int  # LR pixels
    width: int = 32
    batch: int = 16


def version(key: str, path: str) -> Version:
    return Version(key, path, Grid.of(open_raster(path, key.upper()), key.upper()))


def degraded_lr(hr: str, scale: int, path: str, reporter: Reporter, context: RunContext) -> str:
    """The HR degraded by ``scale`` (Wald's protocol: Gaussian blur at the Nyquist gain, decimation)."""
    stack = RasterStack([hr], "HR")
    nodata = next((v for v in stack.nodata if v is not None), None)
    if nodata is None and stack.dtype.kind in "fc":
        nodata = float("nan")
    degrade(stack, scale, path, nodata, reporter, context.cancelled)
    del stack
    return path


def bicubic(lr: str, grid: Grid, path: str) -> str:
    """The LR warped onto the HR grid with cubic convolution (GDAL's "cubic": bicubic, not "cubicspline")."""
    bounds = (grid.x0, grid.y0 + grid.dy * grid.height, grid.x0 + grid.dx * grid.width, grid.y0)
    gdal.Warp(path, lr, format="GTiff", outputBounds=bounds, width=grid.width, height=grid.height,
              resampleAlg="cubic", creationOptions=["TILED=YES", "COMPRESS=DEFLATE"])
    return path


def training_window(scene: Scene, scale: int) -> tuple[int, int, int, int]:
    """Column, row, width and height of the training part's bounding box, in whole LR pixels."""
    rows, cols = np.nonzero(scene.train)
    c0, r0 = cols.min() // scale * scale, rows.min() // scale * scale
    c1 = min(scene.grid.width, -(-(cols.max() + 1) // scale) * scale)
    r1 = min(scene.grid.height, -(-(rows.max() + 1) // scale) * scale)
    return int(c0), int(r0), int(c1 - c0), int(r1 - r0)


def training_hr(hr: str, scene: Scene, scale: int, path: str) -> str:
    """A float32 copy of the HR over the training part's bounding box, NaN (nodata) outside the training
    part: SR pairs touching the held-out part are dropped by Build super-resolution dataset, so the SR
    model never sees it."""
    source = open_raster(hr, "HR")
    c0, r0, width, height = training_window(scene, scale)
    values = source.ReadAsArray(c0, r0, width, height).astype(np.float32).reshape(source.RasterCount, height, width)
    for index in range(source.RasterCount):
        nodata = source.GetRasterBand(index + 1).GetNoDataValue()
        if nodata is not None:
            values[index][values[index] == nodata] = np.nan
    values[:, ~scene.train[r0:r0 + height, c0:c0 + width]] = np.nan
    ds = gdal.GetDriverByName("GTiff").Create(path, width, height, source.RasterCount, gdal.GDT_Float32,
                                              ["TILED=YES", "COMPRESS=DEFLATE"])
    g = scene.grid
    ds.SetGeoTransform((g.x0 + c0 * g.dx, g.dx, 0.0, g.y0 + r0 * g.dy, 0.0, g.dy))
    ds.SetProjection(source.GetProjection())
    for index in range(source.RasterCount):
        band = ds.GetRasterBand(index + 1)
        band.WriteArray(values[index])
        band.SetNoDataValue(float("nan"))
        band.SetDescription(source.GetRasterBand(index + 1).GetDescription())
    ds = None
    return path


def super_resolve(hr_training: str, lr: str, real_lr: bool, scale: int, settings: SrSettings, folder: str,
                  sr_path: str, context: RunContext, reporter: Reporter) -> dict:
    """Train the SR generator on the training part's pairs and apply it to the whole LR; the training
    result (epochs, PSNR against bicubic on the validation pairs) is returned."""
    dataset = os.path.join(folder, "sr_pairs")
    model = os.path.join(folder, "sr_model")
    reporter.stage("super-resolution: LR/HR pairs of the training part", 0)
    pairs = run_step("build_sr_dataset", {
        "HR": [hr_training], "LR": [lr] if real_lr else None, "SCALE": None if real_lr else scale,
        "PATCH_SIZE": settings.patch, "STEP": max(1, settings.patch // 2), "VALID": 0.2, "BLOCK_SIZE": 2,
        "SEED": 0,
        "OUTPUT_TRAIN": os.path.join(dataset, "train.json"), "OUTPUT_VALID": os.path.join(dataset, "valid.json"),
    }, context, reporter.span(0, 10), "building the SR pairs of the training part")
    epochs = f"{settings.epochs} epoch{'s' if settings.epochs != 1 else ''}"
    reporter.stage(f"super-resolution: training the SR generator ({epochs})", 10)
    trained = run_step("train_model", {
        "TRAIN": os.path.join(dataset, "train.json"), "VALID": os.path.join(dataset, "valid.json"),
        "ARCHITECTURE": "sr_generator", "WIDTH": settings.width, "EPOCHS": settings.epochs,
        "BATCH_SIZE": settings.batch, "SEED": 0, "OUTPUT": model,
    }, context, reporter.span(10, 85), "training the SR generator")
    reporter.stage("super-resolution: applying the SR generator to the LR image", 85)
    run_step("apply_model", {"MODEL": model, "SOURCE1": [lr], "OUTPUTS": "image", "OUTPUT": sr_path},
             context, reporter.span(85, 100), "applying the SR generator")
    return {"pairs": pairs.get("COUNT_TRAIN"), "valid_pairs": pairs.get("COUNT_VALID"),
            "epochs": trained.get("EPOCHS_RUN"), "psnr": trained.get("PSNR"),
            "bicubic_psnr": trained.get("BICUBIC_PSNR"), "model": model}
