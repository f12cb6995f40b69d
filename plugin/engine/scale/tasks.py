"""What a Dask worker runs for one window of Apply model: the model opened from its shared path through the
gate (its files must hash to the digest the client computed once its own safety check had passed), the
sources bound, the client's plan rebuilt on the window (the same geometry, margin, tiles, batch: no measuring
again), the window served with the one-process pipeline (serve.pipeline) into a part file, renamed when complete.
A refusal (a changed model, a bad input) comes back as the result's error, not as an exception Dask would retry."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from ..errors import PatchFlowError
from ..serve.outputs import OutputFormat
from ..serve.plan import ServingPlan
from .windows import Window

WORKER_MODELS = 2  # models a Dask worker keeps loaded between windows (models/modelcache.py)
_READY: list[bool] = []


@dataclass(frozen=True)
class PlanSpec:
    """A serving plan without its model and rasters (what travels to the workers)."""
    outputs: list[str]
    geometry: object  # serve.geometry.Geometry
    mode: str
    margin_units: int
    tile_units: int
    stride: int
    stitch: bool
    batch: int
    alignment: int
    sources: list[tuple[float, int, int]]  # each source's ratio, period, receptive field

    @classmethod
    def of(cls, plan: ServingPlan) -> PlanSpec:
        return cls(list(plan.outputs), plan.geometry, plan.mode, plan.margin_units, plan.tile_units, plan.stride,
                   plan.stitch, plan.batch, plan.alignment, [(s.ratio, s.period, s.receptive) for s in plan.sources])


@dataclass(frozen=True)
class WindowJob:
    values: dict  # the job's parameters
    labels: dict
    digest: str  # the model's SHA-256, computed on the client after its safety check
    plan: PlanSpec
    fmt: OutputFormat
    channels: dict[str, int]  # each output's channel count (CLIP)
    window: Window
    part: str  # the part file to write (in the run's staging folder)


@dataclass
class WindowResult:
    index: int
    part: str = ""
    counts: dict[int, int] = field(default_factory=dict)
    clipped: tuple[int, int] = (0, 0)
    error: tuple[str, str | None] | None = None  # (message, parameter): refused, not to be retried


def prepare_worker() -> None:
    """Once per worker process: GDAL errors as exceptions (as in the PatchFlow worker), models kept loaded."""
    if _READY:
        return
    from osgeo import gdal

    from ..models import modelcache

    gdal.UseExceptions()
    modelcache.enable(WORKER_MODELS)
    _READY.append(True)


def window_plan_on_worker(job: WindowJob, reporter) -> ServingPlan:
    """The client's plan, on this worker's model and rasters, restricted to the job's window."""
    from ...declarations import OPERATIONS
    from ..models.modelsafety import open_model
    from ..params import Params
    from ..serve.binding import bind_sources

    params = Params(job.values, job.labels, OPERATIONS["apply_model"])
    model = open_model(params.string("MODEL"), params.boolean("TRUST_MODEL"), "MODEL", reporter, digest=job.digest)
    sources = bind_sources(params, model)
    for source, (ratio, period, receptive) in zip(sources, job.plan.sources):
        source.ratio, source.period, source.receptive = ratio, period, receptive
    spec = job.plan
    return ServingPlan(model, sources, spec.outputs, spec.geometry, spec.mode, spec.margin_units,  # type: ignore[arg-type]
                       spec.tile_units, spec.stride, spec.stitch, spec.batch, job.window.inputs, spec.alignment,
                       job.window.output[2:])


def serve_window(job: WindowJob) -> WindowResult:
    """Serve one window into its part file (the Dask task)."""
    from ...declarations import OPERATIONS
    from ..params import Params, RunContext
    from ..reporting import Reporter
    from ..serve.clipping import clip_for
    from ..serve.pipeline import serve
    from ..staging import OutputStaging
    from .parts import create_part, writing_path

    prepare_worker()
    reporter = Reporter()
    writing = writing_path(job.part)
    try:
        plan = window_plan_on_worker(job, reporter)
        params = Params(job.values, job.labels, OPERATIONS["apply_model"])
        clip = clip_for(params, plan, job.channels, reporter)
        ds = create_part(writing, plan, job.fmt)
        try:
            context = RunContext(f"window-{job.window.index}", reporter, OutputStaging("unused"), threading.Event())
            counts = serve(plan, ds, job.fmt, context, clip)
        finally:
            ds = None
        os.replace(writing, job.part)
    except PatchFlowError as exc:
        remove_file(writing)
        return WindowResult(job.window.index, error=(exc.message, exc.parameter))
    except BaseException:
        remove_file(writing)
        raise
    return WindowResult(job.window.index, job.part, counts, (0, 0) if clip is None else (clip.below, clip.above))


def remove_file(path: str) -> None:
    for name in (path, path + ".aux.xml"):
        try:
            os.remove(name)
        except OSError:
            pass
