"""Checks that the sources of Extract patches can be extracted together: one CRS, patches no bigger than
their raster, and patches of every image source covering the same ground as source 1's."""

from __future__ import annotations

from ..errors import PatchFlowError
from ..geodata.raster import crs_label
from .patches import Source


def check_sources(sources: list[Source]) -> None:
    reference = sources[0]
    for source in sources:
        if not reference.grid.same_crs_as(source.grid):
            raise PatchFlowError(
                f"{source.stack.paths[0]} is in {crs_label(source.grid.crs_wkt)} but {reference.parameter} is in "
                f"{crs_label(reference.grid.crs_wkt)}. All sources must share one CRS: reproject it first "
                "(gdalwarp -t_srs).", source.parameter)
        if source.patch_size > min(source.grid.width, source.grid.height):
            raise PatchFlowError(
                f"patch size {source.patch_size} is bigger than the raster ({source.grid.width}x"
                f"{source.grid.height} px). Use a smaller patch size.",
                "LABEL_PATCH_SIZE" if source.role == "label" else source.parameter.replace("SOURCE", "PATCH_SIZE"))
        if source is not reference and source.role == "image":
            check_footprint(reference, source)


def check_footprint(reference: Source, source: Source) -> None:
    """Patches of several sources cover the same ground: patch size x pixel size differ by less than one
    pixel of the coarser source, across and down; else an error naming the patch size, with those that would."""
    for axis, (ref_pixel, pixel) in (("across", (reference.grid.dx, source.grid.dx)),
                                     ("down", (reference.grid.dy, source.grid.dy))):
        ref_pixel, pixel = abs(ref_pixel), abs(pixel)
        ground, own = reference.patch_size * ref_pixel, source.patch_size * pixel
        if abs(own - ground) < max(ref_pixel, pixel) * (1 - 1e-9):  # less than one coarse pixel apart
            continue
        parameter = source.parameter.replace("SOURCE", "PATCH_SIZE")
        first = reference.parameter.replace("SOURCE", "PATCH_SIZE")
        raise PatchFlowError(
            f"the patches of {source.parameter} ({source.patch_size} px of {pixel:g}) cover {own:g} map units "
            f"{axis}, those of {reference.parameter} ({reference.patch_size} px of {ref_pixel:g}) {ground:g}: the "
            f"sources must cover the same ground (to less than one pixel of the coarser). Use {parameter} "
            f"{max(1, round(ground / pixel))} (or {first} {max(1, round(own / ref_pixel))}).", parameter)
