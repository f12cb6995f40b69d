"""Apply model on Dask, the client's side: the model's digest (after the safety check), the plan's windows,
one task per window (retried by Dask; a window of a worker that died is computed again elsewhere), progress as
the fraction of windows done, cancel (the futures cancelled; the parts go with the staging folder), per-class
counts and clipped values summed over the windows, and the parts joined into the output once all are done. A
scheduler that stops answering ends the run with an error naming it; the staging machinery removes the rest."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from osgeo import gdal

from ..errors import Cancelled, PatchFlowError
from ..params import Params, RunContext
from ..serve.clipping import Clip
from ..serve.outputs import OutputFormat
from ..serve.pipeline import TILES_END, TILES_START
from ..serve.plan import ServingPlan
from .execution import PLUGIN_PARENT, Execution, dask_client
from .parts import join_parts, part_path
from .windows import windows

RETRIES = 2  # a task that raised is run again this many times (a worker that died: the scheduler's own count)
POLL_SECONDS = 0.2  # between checks for done windows, cancel and the scheduler
LOST_SECONDS = 10.0  # a scheduler unreachable this long has stopped answering


def _lost(address: str, why: str) -> PatchFlowError:
    return PatchFlowError(f"the Dask scheduler at {address} stopped answering: {why}. Nothing was written; start "
                          "the scheduler (and its workers) again and run again.", "SCHEDULER")


def _failure(exc: BaseException, index: int, address: str, client: Any) -> PatchFlowError:
    """A window's task that failed, as an error the user can act on."""
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return PatchFlowError(f"window {index} was lost with every Dask worker that ran it ({exc}): they were killed "
                              "or ran out of memory. Give the workers more memory, or fewer tiles per window "
                              "(WINDOW_TILES).", "WORKERS")
    if client.status != "running" or type(exc).__name__ in ("CancelledError", "FutureCancelledError"):
        return _lost(address, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ImportError) or "deserializ" in str(exc):
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return PatchFlowError(f"the Dask scheduler at {address} or its workers cannot import PatchFlow ({first}): "
                              f"start them with PYTHONPATH={PLUGIN_PARENT} (the folder holding the plugin, on a shared "
                              "file system) and the packages of requirements.txt.", "SCHEDULER")
    return PatchFlowError(f"window {index} failed on a Dask worker: {type(exc).__name__}: {exc}")


def run_windows(client: Any, task: Callable, jobs: list, context: RunContext, address: str,
                what: str = "windows") -> Iterator[Any]:
    """Each job's task run on Dask (``task(job)`` returns a result with ``error``: a refusal), its results
    yielded as they come; progress is the fraction done ("windows i/N"); cancel, a failed task or a scheduler
    gone cancel the rest."""
    reporter = context.reporter
    run = f"patchflow-{context.job_id}-{uuid.uuid4().hex[:8]}"  # keys of this run alone on a shared scheduler
    futures = {client.submit(task, job, key=f"{run}-{what}-{index}", retries=RETRIES, pure=False): index
               for index, job in enumerate(jobs)}
    pending = set(futures)
    unreachable_since: float | None = None
    finished = 0
    reporter.stage(f"{what} 0/{len(jobs)}", TILES_START, log=False)
    try:
        while pending:
            if context.cancelled():
                raise Cancelled()
            done = {future for future in pending if future.done()}
            pending -= done
            if not done:
                time.sleep(POLL_SECONDS)
            if client.status != "running":
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > LOST_SECONDS:
                    raise _lost(address, f"no answer for {LOST_SECONDS:g} s (client {client.status})")
            else:
                unreachable_since = None
            for future in done:
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - each kind told apart in _failure
                    raise _failure(exc, futures[future], address, client) from None
                if result.error is not None:
                    message, parameter = result.error
                    raise PatchFlowError(message, parameter)
                finished += 1
                yield result
            if done:
                reporter.stage(f"{what} {finished}/{len(jobs)}", log=False)
                reporter.progress(TILES_START + (TILES_END - TILES_START) * finished / len(jobs))
    except BaseException:
        if client.status == "running":
            client.cancel(list(futures), force=True)
        raise


def describe_run(client: Any, execution: Execution, count: int, reporter: Any) -> str:
    """The scheduler's address, logged with the windows and workers."""
    address = execution.scheduler or str(client.scheduler.address)
    reporter.log(f"Dask ({execution.mode}): {count} window(s) on the scheduler at {address}, "
                 f"{len(client.scheduler_info(n_workers=-1).get('workers', {}))} worker(s) now")
    return address


def serve_on_dask(params: Params, context: RunContext, plan: ServingPlan, fmt: OutputFormat,
                  channels: dict[str, int], staged: str, execution: Execution, digest: str,
                  clip: Clip | None) -> tuple[gdal.Dataset, dict[int, int]]:
    """The output staged at ``staged`` served window by window on Dask; (the output open for update, counts)."""
    from .tasks import PlanSpec, WindowJob, serve_window

    reporter = context.reporter
    found = windows(plan, params.integer("WINDOW_TILES"))
    spec = PlanSpec.of(plan)
    jobs = [WindowJob(dict(params.values), dict(params.labels), digest, spec, fmt, channels, window,
                      part_path(staged, window)) for window in found]
    counts: dict[int, int] = {}
    parts: dict[int, str] = {}
    with dask_client(execution, reporter) as client:
        address = describe_run(client, execution, len(found), reporter)
        for result in run_windows(client, serve_window, jobs, context, address):
            parts[result.index] = result.part
            for value, number in result.counts.items():
                counts[value] = counts.get(value, 0) + number
            if clip is not None:
                clip.below, clip.above = clip.below + result.clipped[0], clip.above + result.clipped[1]
    reporter.stage(f"joining {len(parts)} part(s) into the output", TILES_END, log=True)
    start = time.monotonic()
    joined = join_parts(parts, found, staged, plan, fmt)
    reporter.log(f"{len(parts)} part(s) joined in {time.monotonic() - start:.1f} s")
    return joined, counts
