"""Checks before the run, on the QGIS side: an algorithm's ``checkParameterValues`` runs the engine's
cheap checks (plugin/engine/preflight.py: band counts against the model card, patch sizes, CRS,
extents) in this process, in a fraction of a second, so that a bad input shows in the dialog before
any worker or TensorFlow starts, as QGIS's own checks do.

Whatever cannot be judged here is left to the worker, which runs the same checks first: vector
layers (reading or exporting them is the run's job), a layer that is not a file, an input that does
not exist yet (a batch or a model whose earlier step makes it), a QGIS Python without numpy, or any
unexpected failure of the checks themselves. GDAL's exceptions setting (the engine turns them on)
is restored afterwards, so the rest of QGIS and other plugins keep theirs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

INPUT_KINDS = ("raster", "rasters", "file", "files", "model")
SKIPPED_KINDS = ("vector",)


@contextmanager
def gdal_exceptions() -> Iterator[None]:
    """GDAL, OGR and OSR raise exceptions meanwhile (the engine's way), as they did before afterwards."""
    from osgeo import gdal, ogr, osr

    before = [(module, module.GetUseExceptions()) for module in (gdal, ogr, osr)]
    for module, _ in before:
        module.UseExceptions()
    try:
        yield
    finally:
        for module, used in reversed(before):  # GDAL keeps a stack of their error handlers
            if not used:
                module.DontUseExceptions()


def _paths(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def preflight_job(algorithm, parameters: dict, context) -> dict[str, Any] | None:
    """The job the worker would get, without its vector layers; None when the checks cannot be run
    here (a layer that is not a file, an input path that does not exist)."""
    from qgis.core import QgsProcessingException

    job: dict[str, Any] = {}
    for param in algorithm.declaration.parameters:
        if param.kind in SKIPPED_KINDS:
            continue
        try:
            value = algorithm.job_value(param, parameters, context, None)
        except QgsProcessingException:
            return None  # e.g. a raster layer that is not a file: the run says so
        if param.kind in INPUT_KINDS and not all(os.path.exists(p) for p in _paths(value)):
            return None
        job[param.name] = value
    return job


def check_before_run(algorithm, parameters: dict, context) -> tuple[str | None, str] | None:
    """(parameter, message) of the first bad input the engine's checks find, or None."""
    if algorithm.OPERATION not in _preflights():
        return None
    job = preflight_job(algorithm, parameters, context)
    if job is None:
        return None
    labels = {definition.name(): definition.description() for definition in algorithm.parameterDefinitions()}
    try:
        with gdal_exceptions():
            from .engine.errors import PatchFlowError
            from .engine.preflight import preflight

            try:
                preflight(algorithm.OPERATION, job, labels)
            except PatchFlowError as exc:
                return exc.parameter, exc.message
    except Exception:  # noqa: BLE001 - the checks could not run here: the worker runs them and reports
        return None
    return None


def _preflights() -> tuple[str, ...]:
    try:
        from .engine.preflight import PREFLIGHTS
    except Exception:  # noqa: BLE001 - no numpy or GDAL in this Python: the worker checks
        return ()
    return tuple(PREFLIGHTS)
