"""Sources at their own resolutions (OTBTF TensorflowModelServe): SOURCE2 and SOURCE3 need only SOURCE1's
CRS and an overlapping extent. Each has a resolution ratio r = |dx| / |dx of SOURCE1| (4: pixels 4 times
coarser), its own receptive field (the card's patch size for its input, else the model's static input size,
else SOURCE1's divided by r), and a grid period P: the fewest SOURCE1 pixels that are a whole number of its
own pixels (4 for r = 4, 20 for 10 m over 1.5 m). Blocks of SOURCE1 that start and end on multiples of P
have a block of the source covering the same ground, at the same sub-pixel phase everywhere.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..errors import PatchFlowError
from ..geodata.gridoffset import offset_report
from ..geodata.raster import Grid

if TYPE_CHECKING:
    from ..models.modelcard import InputSpec, ModelCard
    from ..models.modelio import InferenceModel
    from ..reporting import Reporter
    from .binding import Source

MAX_PERIOD = 512  # SOURCE1 pixels
RATIO_TOLERANCE = 1e-6  # relative, across against down; and a period's whole number of pixels
CARD_RATIO_TOLERANCE = 0.01  # relative, the ratio given against the ratio at training


def resolution_ratio(reference: Grid, grid: Grid, parameter: str) -> float:
    across, down = abs(grid.dx) / abs(reference.dx), abs(grid.dy) / abs(reference.dy)
    if not math.isclose(across, down, rel_tol=RATIO_TOLERANCE):
        raise PatchFlowError(f"{parameter}'s pixels are {across:.6g}x SOURCE1's across but {down:.6g}x down: "
                             "the ratio of pixel sizes must be the same both ways. Resample it to square pixels "
                             f"(gdalwarp -tr {abs(grid.dx):g} {abs(grid.dx):g}).", parameter)
    return across


def grid_period(ratio: float, reference: Grid, parameter: str) -> int:
    """The fewest SOURCE1 pixels (1 to MAX_PERIOD) that are a whole number of the source's pixels."""
    for n in range(1, MAX_PERIOD + 1):
        q = n / ratio
        if abs(q - round(q)) <= RATIO_TOLERANCE * max(1.0, q) and round(q) >= 1:
            return n
    pixel = abs(reference.dx)
    raise PatchFlowError(f"{parameter}'s pixel size ({ratio * pixel:.6g}) is not a simple multiple of SOURCE1's "
                         f"({pixel:g}): no block of up to {MAX_PERIOD} SOURCE1 pixels is a whole number of its "
                         f"pixels. Resample it to a pixel size k x SOURCE1's (e.g. {max(1, round(ratio)) * pixel:g}).",
                         parameter)


def check_overlap(reference: Grid, grid: Grid, parameter: str) -> None:
    ax0, ay0, ax1, ay1 = reference.extent
    bx0, by0, bx1, by1 = grid.extent
    if min(ax1, bx1) <= max(ax0, bx0) or min(ay1, by1) <= max(ay0, by0):
        raise PatchFlowError(f"{parameter} ({bx0:g},{bx1:g},{by0:g},{by1:g}) does not overlap SOURCE1 ({ax0:g},"
                             f"{ax1:g},{ay0:g},{ay1:g}). Give rasters of the same area.", parameter)


def spec_of(card: ModelCard | None, name: str) -> InputSpec | None:
    if card is None:
        return None
    try:
        return card.input(name)
    except KeyError:
        return None


def check_grids(sources: list[Source], parameters: list[str], card: ModelCard | None = None) -> None:
    """Every source in SOURCE1's CRS, overlapping it, at a ratio of pixel sizes that nests in SOURCE1's grid
    and (card inputs with pixel sizes) is the ratio the model was trained with; sets each one's ratio and
    period."""
    reference = sources[0].stack.grid
    first_spec = spec_of(card, sources[0].name)
    for parameter, source in zip(parameters[1:], sources[1:]):
        grid = source.stack.grid
        if not reference.same_crs_as(grid):
            raise PatchFlowError(f"{parameter} is not in the CRS of SOURCE1. Reproject it first (gdalwarp).", parameter)
        check_overlap(reference, grid, parameter)
        ratio = resolution_ratio(reference, grid, parameter)
        spec = spec_of(card, source.name)
        if spec and first_spec and spec.pixel_size and first_spec.pixel_size:
            expected = spec.pixel_size / first_spec.pixel_size
            if abs(ratio / expected - 1.0) > CARD_RATIO_TOLERANCE:
                wanted = f"{expected * abs(reference.dx):g}"
                raise PatchFlowError(f"the model was trained with {parameter} at {expected:.4g}x SOURCE1's pixel size, "
                                     f"given {ratio:.4g}x; resample {parameter} to pixel size {wanted} (gdalwarp -tr "
                                     f"{wanted} {wanted}).", parameter)
        source.parameter, source.ratio = parameter, ratio
        source.period = grid_period(ratio, reference, parameter)


def assign_receptive(sources: list[Source], model: InferenceModel, receptive: int, given_names: bool,
                     reporter: Reporter | None = None) -> None:
    """Each source's receptive field: the card's patch size for its input, else the model's static input
    size, else SOURCE1's over the ratio; a static input size unlike it refused (naming the source, or
    INPUT_NAMES when the user bound the inputs), before any probe."""
    card = model.card
    sizes = getattr(model, "input_sizes", {}) or {}
    sources[0].receptive = receptive
    for source in sources[1:]:
        spec = spec_of(card, source.name)
        static = sizes.get(source.name)
        source.receptive = spec.patch_size if spec else (static or max(1, round(receptive / source.ratio)))
        if static and static != source.receptive:
            parameter = "INPUT_NAMES" if given_names else source.parameter
            raise PatchFlowError(f"the model's input '{source.name}' takes {static}x{static} px but {source.parameter} "
                                 f"would be given {source.receptive}x{source.receptive} px (its card's patch size). "
                                 "Bind each source to the input it was trained for (INPUT_NAMES), or fix the card.",
                                 parameter)
        if reporter is not None:
            line, warning = offset_report(source.parameter, sources[0].stack.grid, source.stack.grid, source.receptive)
            reporter.log(line)
            if warning:
                reporter.warning(warning)


def multi_resolution(sources: list[Source]) -> bool:
    """Whether a source is not read on SOURCE1's pixels (another pixel size, origin or patch size)."""
    return any(not aligned(sources[0], source) for source in sources[1:])


def aligned(first: Source, source: Source) -> bool:
    """On SOURCE1's pixel size with SOURCE1's patch size: read like SOURCE1, shifted by whole pixels."""
    return source is first or (source.period == 1 and math.isclose(source.ratio, 1.0, rel_tol=RATIO_TOLERANCE)
                                and source.receptive in (0, first.receptive))


def alignment(unit: int, sources: list[Source]) -> int:
    """L: SOURCE1 pixels that are whole units and whole periods of every source."""
    value = unit
    for source in sources:
        value = value * source.period // math.gcd(value, source.period)
    return value


def input_sizes(sources: list[Source], size: int, patch: bool = True) -> dict[str, int]:
    """The side of each source's input for a SOURCE1 input of ``size`` px: its receptive field for
    SOURCE1's (``patch``: a probe of one receptive field), else size / ratio, the same ground (PatchFlowError
    naming MODE when that is not whole)."""
    first = sources[0]
    sizes = {first.name: size}
    for source in sources[1:]:
        if patch and size == first.receptive and source.receptive:
            sizes[source.name] = source.receptive
            continue
        q = size / source.ratio
        if abs(q - round(q)) > RATIO_TOLERANCE * max(1.0, q) or round(q) < 1:
            raise PatchFlowError(f"a block of {size} px of SOURCE1 is {q:.4g} px of {source.parameter}, not a whole "
                                 f"number: blocks must be multiples of {source.period} px. Use MODE patch, or "
                                 "resample the sources to nesting pixel sizes.", "MODE")
        sizes[source.name] = int(round(q))
    return sizes


def to_source(reference: Grid, grid: Grid, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SOURCE1's fractional pixel coordinates as the source's fractional pixel coordinates."""
    return ((reference.x0 + np.asarray(cols, np.float64) * reference.dx - grid.x0) / grid.dx,
            (reference.y0 + np.asarray(rows, np.float64) * reference.dy - grid.y0) / grid.dy)


def block_start(reference: Grid, grid: Grid, col: int, row: int) -> tuple[int, int]:
    """The source's pixel nearest to SOURCE1's pixel corner (col, row): where its block of the same ground
    starts."""
    u, v = to_source(reference, grid, np.array([col]), np.array([row]))
    return int(np.floor(u[0] + 0.5)), int(np.floor(v[0] + 0.5))


def describe(sizes: dict[str, int], sources: list[Source]) -> str:
    """'x1 32x32x4, x2 4x4x177'."""
    return ", ".join(f"{s.name} {sizes[s.name]}x{sizes[s.name]}x{s.stack.band_count}" for s in sources)
