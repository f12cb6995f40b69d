"""Apply model: a SavedModel (or .keras) streamed over whole scenes, block by block, seamless. The model
and its inputs (binding), its geometry (geometry), the plan (plan), reading blocks (tiles), inference
(inference), the output raster and its style (outputs) and the threads that overlap them (pipeline) each have
their module; this one runs the operation.
"""

from __future__ import annotations

from ..errors import PatchFlowError
from ..models.modeldigest import model_digest
from ..models.modelio import import_tensorflow
from ..params import Params, RunContext
from ..report.rasterstyle import sidecar_path
from ..scale.dispatch import serve_on_dask
from ..scale.execution import execution_of, share_the_gpu
from .binding import ARGMAX, MAX_SOURCES, base_name
from .clipping import clip_for
from .geometry import probe
from .outputs import create_output, output_format, style
from .pipeline import serve
from .plan import make_plan, output_size


def run_apply_model(params: Params, context: RunContext) -> dict:
    """Apply a model to whole rasters: a tiled, compressed GeoTIFF with a QML style beside it."""
    from .. import checks

    checks.writable(params, "OUTPUT")
    checks.rasters(params, "SOURCE1", "SOURCE2", "SOURCE3", reporter=context.reporter)
    card = checks.card_of(params.string("MODEL"))
    checks.sources_against_card(params, card, MAX_SOURCES)
    checks.outputs_in_card(params.string("MODEL"), card, str(params.values.get("OUTPUTS") or "").split(";"), "OUTPUTS")
    checks.extent_overlaps(params, "SOURCE1")
    output = params.string("OUTPUT")
    execution = execution_of(params)  # checked before TensorFlow: a bad address or cluster file names itself
    if execution.distributed:
        share_the_gpu()
    import_tensorflow(context.reporter, 1, 4)
    checked = model_digest(params.string("MODEL")) if execution.distributed else ""
    plan = make_plan(params, context)  # stages up to 10 %, then the tiles (pipeline.serve) up to 97 %
    g = plan.geometry
    out_w, out_h = output_size(plan)
    probe_values = probe(plan.model, plan.sources, plan.outputs, g.receptive)
    channels = sum(v.shape[-1] for v in probe_values.values())
    class_count = None
    if any(name.endswith(ARGMAX) for name in plan.outputs):  # the classes are the channels' indices
        base = probe(plan.model, plan.sources, [base_name(plan.outputs[0])], g.receptive)
        class_count = next(iter(base.values())).shape[-1]
    fmt = output_format(params, plan, channels, class_count)
    context.reporter.log(
        f"{plan.mode.replace('_', ' ')} serving: receptive field {g.receptive} px, expression field {g.expression} "
        f"px, scale factor {g.factor:g}" + (f", margin {plan.margin_units * g.unit} px, tiles of "
                                            f"{plan.tile_units * g.expression} px" if plan.mode != "patch"
                                            else f", stride {plan.stride}") +
        (f", blocks aligned to {plan.alignment} px of SOURCE1 (whole pixels of every source)"
         if plan.alignment > g.unit else "") +
        f"; output {out_w}x{out_h} px, {fmt.channels} band(s) {fmt.dtype.name}")
    staged = context.staging.stage(output, "OUTPUT")
    staged_style = context.staging.stage(sidecar_path(output), "OUTPUT")
    channel_counts = {name: v.shape[-1] for name, v in probe_values.items()}
    clip = clip_for(params, plan, channel_counts, context.reporter)
    if execution.distributed:  # windows on Dask workers, each checking the model's files hash as checked here
        digest = model_digest(params.string("MODEL"))
        if digest != checked:
            raise PatchFlowError("the model changed while it was being checked and loaded. Leave it as it is while "
                                 "it is served, and run again.", "MODEL")
        ds, counts = serve_on_dask(params, context, plan, fmt, channel_counts, staged, execution, digest, clip)
    else:
        ds = create_output(staged, plan, fmt)
        counts = serve(plan, ds, fmt, context, clip)
    if clip is not None:
        clip.report(context.reporter)
    classes = style(ds, staged_style, plan, fmt, sorted(counts))
    ds = None
    for info in classes:
        count = counts.get(int(info["id"]), 0)
        context.reporter.log(f"{info['id']} {info.get('name', '')}: {count} px")
    context.reporter.progress(100)
    return {"OUTPUT": output, "STYLE": sidecar_path(output), "KIND": fmt.kind, "WIDTH": out_w, "HEIGHT": out_h,
            "CLASSES": classes, "CLIPPED": None if clip is None else clip.below + clip.above}
