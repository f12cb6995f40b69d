"""How a source's pixel grid sits against SOURCE1's: the resolution ratio and the sub-pixel offset of its
origin (in its own pixels, the distance to the nearest whole pixel, across and down). Extract patches and
Apply model report it the same way: a patch of the coarser source is centred at the nearest pixel, so an
offset near half a pixel moves it by up to half a pixel against the finer source's patch.
"""

from __future__ import annotations

from osgeo import osr

from .raster import Grid

OFFSET_WARNING = 0.25  # source pixels: beyond it, the sources' patches are noticeably off each other


def grid_offset(reference: Grid, grid: Grid) -> tuple[float, float]:
    """(across, down): ``reference``'s origin in ``grid``'s pixels, its distance to the nearest whole pixel."""
    u = (reference.x0 - grid.x0) / grid.dx
    v = (reference.y0 - grid.y0) / grid.dy
    return abs(u - round(u)), abs(v - round(v))


def units(grid: Grid) -> str:
    """The grid's linear unit as a suffix (" m"), empty when unknown."""
    if not grid.crs_wkt:
        return ""
    srs = osr.SpatialReference()
    srs.ImportFromWkt(grid.crs_wkt)
    if srs.IsGeographic():
        return "°"
    name = (srs.GetLinearUnitsName() or "").lower()
    return " m" if name in ("metre", "meter", "m") else (f" {name}" if name else "")


def offset_report(parameter: str, reference: Grid, grid: Grid, patch_size: int,
                  reference_name: str = "SOURCE1") -> tuple[str, str | None]:
    """The log line ("SOURCE2: 4x SOURCE1's pixel size (6 m vs 1.5 m), patches of 4 px, grid offset 0.25 px
    across, 0 down") and a warning when the offset exceeds OFFSET_WARNING (else None)."""
    ratio = abs(grid.dx) / abs(reference.dx)
    unit = units(reference)
    across, down = grid_offset(reference, grid)
    line = (f"{parameter}: {ratio:.4g}x {reference_name}'s pixel size ({abs(grid.dx):g}{unit} vs "
            f"{abs(reference.dx):g}{unit}), patches of {patch_size} px, grid offset {across:.3g} px across, "
            f"{down:.3g} down")
    warning = None
    if max(across, down) > OFFSET_WARNING:
        warning = (f"{parameter}'s pixels are offset from {reference_name}'s grid by {across:.3g} px across, "
                   f"{down:.3g} down (of its own pixels): its patches, centred at the nearest pixel, lie up to "
                   f"{max(across, down):.3g} px off {reference_name}'s. Resample it so that its pixel edges meet "
                   f"{reference_name}'s (gdalwarp -tap or -te) if that matters.")
    return line, warning
