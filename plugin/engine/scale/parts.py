"""Part files: each window's output is a GeoTIFF in the run's staging folder (on the shared file system, beside
the output), written under a name of its own and renamed when complete (a recomputed window replaces, never
mixes); when every window is done, a VRT of the parts on the output grid is translated into the final tiled,
compressed GeoTIFF (the creation options of a one-process run) and the parts are removed. A failed or
cancelled run's parts go with its staging folder."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

from osgeo import gdal

from ..errors import PatchFlowError
from ..geodata.geotiff import create_geotiff
from ..geodata.raster import numpy_to_gdal_type
from ..serve.outputs import GTIFF_OPTIONS, OutputFormat, describe_bands, output_transform
from ..serve.plan import ServingPlan, output_size
from .windows import Window

PART_OPTIONS = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "BIGTIFF=IF_SAFER"]  # fast: joined soon
PART_PREFIX = "part-"


def part_path(staged_output: str, window: Window) -> str:
    """Where window ``window`` of the output staged at ``staged_output`` is written."""
    return str(Path(staged_output).with_name(f"{PART_PREFIX}{Path(staged_output).stem}-{window.index:06d}.tif"))


def writing_path(part: str) -> str:
    """A name of its own for one attempt at a part (a window recomputed elsewhere writes its own)."""
    return f"{part}.{uuid.uuid4().hex[:12]}.writing"


def create_part(path: str, plan: ServingPlan, fmt: OutputFormat) -> gdal.Dataset:
    """The part of ``plan``'s window (a window plan): on the output grid, nodata and band names as the output."""
    if not os.path.isdir(os.path.dirname(path)):
        raise PatchFlowError(f"the run's staging folder {os.path.dirname(path)} is gone (the run was cancelled or "
                             "failed); this window is not written.", "OUTPUT")
    width, height = output_size(plan)
    # pixels only: band names, nodata and classes are the output's (join_parts), no side file beside a part
    return create_geotiff(path, width, height, fmt.channels, fmt.dtype, PART_OPTIONS, "OUTPUT", output_transform(plan),
                          plan.sources[0].stack.grid.crs_wkt)


def _source(part: str, band: int, rect: tuple[int, int, int, int], dtype: str) -> str:
    ox, oy, width, height = rect
    return (f"<SimpleSource><SourceFilename relativeToVRT=\"0\">{escape(part)}</SourceFilename>"
            f"<SourceBand>{band}</SourceBand><SourceProperties RasterXSize=\"{width}\" RasterYSize=\"{height}\" "
            f"DataType=\"{dtype}\" BlockXSize=\"256\" BlockYSize=\"256\"/>"
            f"<SrcRect xOff=\"0\" yOff=\"0\" xSize=\"{width}\" ySize=\"{height}\"/>"
            f"<DstRect xOff=\"{ox}\" yOff=\"{oy}\" xSize=\"{width}\" ySize=\"{height}\"/></SimpleSource>")


def join_rasters(parts: list[tuple[str, tuple[int, int, int, int]]], staged_output: str, size: tuple[int, int],
                 bands: int, gdal_type: int, geotransform: tuple[float, ...] | None, crs_wkt: str, options: list[str],
                 describe: Callable[[gdal.Dataset], None]) -> gdal.Dataset:
    """The GeoTIFF at ``staged_output`` (``options``: a one-process run's) from ``parts`` (each file and its
    xoff, yoff, width, height on the output grid), described by ``describe`` (band names, nodata, classes) as a
    one-process run's; opened for update; the parts removed."""
    missing = [path for path, _ in parts if not os.path.isfile(path)]
    if missing:
        raise PatchFlowError(f"{len(missing)} part file(s) are missing (first: {missing[0]}); nothing was written.")
    vrt = gdal.GetDriverByName("VRT").Create("", size[0], size[1], bands, gdal_type)
    if geotransform is not None:  # None: not georeferenced (patches-images)
        vrt.SetGeoTransform(geotransform)
        vrt.SetProjection(crs_wkt or "")
    describe(vrt)
    dtype = gdal.GetDataTypeName(gdal_type)
    for index in range(bands):
        band = vrt.GetRasterBand(index + 1)
        for number, (path, rect) in enumerate(parts):
            band.SetMetadataItem(f"source_{number}", _source(path, index + 1, rect, dtype), "new_vrt_sources")
    try:
        done = gdal.Translate(staged_output, vrt, format="GTiff", creationOptions=options)
    except RuntimeError as exc:
        raise PatchFlowError(f"cannot write {staged_output} from its parts: {exc}. Check the free space.",
                             "OUTPUT") from None
    vrt = None
    if done is None:
        raise PatchFlowError(f"cannot write {staged_output} from its parts: {gdal.GetLastErrorMsg()}.", "OUTPUT")
    done = None
    remove_parts(staged_output)
    return gdal.Open(staged_output, gdal.GA_Update)


def join_parts(parts: dict[int, str], windows: list[Window], staged_output: str, plan: ServingPlan,
               fmt: OutputFormat) -> gdal.Dataset:
    """Apply model's output at ``staged_output`` from every window's part (opened for update: its style comes
    next); band names, nodata and class table as a one-process run's."""
    missing = [w.index for w in windows if w.index not in parts]
    if missing:
        raise PatchFlowError(f"{len(missing)} window(s) have no part file (first: {missing[0]}); nothing was written.")
    return join_rasters([(parts[w.index], w.output) for w in windows], staged_output, output_size(plan),
                        fmt.channels, numpy_to_gdal_type(fmt.dtype), output_transform(plan),
                        plan.sources[0].stack.grid.crs_wkt, GTIFF_OPTIONS, lambda ds: describe_bands(ds, plan, fmt))


def remove_parts(staged_output: str) -> None:
    """Every part of the output staged at ``staged_output``, and what attempts killed half-way left."""
    folder, prefix = Path(staged_output).parent, f"{PART_PREFIX}{Path(staged_output).stem}-"
    for path in [p for p in folder.iterdir() if p.name.startswith(prefix)] if folder.is_dir() else []:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
