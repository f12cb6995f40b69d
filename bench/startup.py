"""Bench section 5 (`bench/run.py --only startup`): the start-up overhead of a tiny Apply model run
(a 64 x 64 extent) through the QGIS side's client, as an algorithm run makes it: a new worker for
every run (idle time 0: worker start, TensorFlow, the model) against a warm worker (the second and
later runs of a session, the model kept loaded). The target is <= 1.0 s warm.

The parent process runs the client (plugin/client.py uses the standard library only); the data is
made once by a child (``startup-data``): a 4-band Int16 GeoTIFF and an untrained zoo FCNN.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

STARTUP_SIZE = 512  # pixels of the raster; each run serves a STARTUP_EXTENT-pixel square of it
STARTUP_EXTENT = 64
STARTUP_COLD_RUNS = 3
STARTUP_WARM_RUNS = 5  # after the session's first run
STARTUP_TARGET = 1.0  # seconds, warm
ORIGIN, PIXEL, EPSG = (300000.0, 5000000.0), 10.0, 32631


def startup_paths(cache: Path, version: str) -> tuple[Path, Path]:
    return cache / f"startup_{STARTUP_SIZE}_{version}.tif", cache / f"startup_fcnn_{version}"


def child_startup_data(cache: Path, version: str, runner) -> dict:
    """The raster and the model, made once."""
    import numpy as np

    from patchflow.tests.helpers import write_raster

    image, model = startup_paths(cache, version)
    made = []
    if not image.exists():
        rng = np.random.default_rng(0)
        values = rng.integers(0, 2000, size=(4, STARTUP_SIZE, STARTUP_SIZE), dtype=np.int16)
        partial = image.with_suffix(".partial.tif")
        write_raster(partial, values, None, ORIGIN, PIXEL, EPSG, ("TILED=YES", "COMPRESS=DEFLATE"))
        os.replace(partial, image)
        made.append(image.name)
    if not model.exists():
        runner("create_model", {"ARCHITECTURE": "fcnn", "BANDS": 4, "PATCH_SIZE": 64, "N_CLASSES": 5,
                                "SEED": 0, "OUTPUT": str(model)})
        made.append(model.name)
    return {"made": made}


class _Quiet:
    """The client's feedback, keeping nothing."""

    def setProgress(self, value: float) -> None:  # noqa: N802
        pass

    def pushInfo(self, text: str) -> None:  # noqa: N802
        pass

    pushWarning = pushDebugInfo = setProgressText = pushInfo  # noqa: N815

    def isCanceled(self) -> bool:  # noqa: N802
        return False


def _tiny_run(client, image: Path, model: Path, output: Path) -> float:
    x0, y0 = ORIGIN[0] + 128 * PIXEL, ORIGIN[1] - 128 * PIXEL  # on whole blocks of the FCNN (64 px)
    extent = f"{x0},{x0 + STARTUP_EXTENT * PIXEL},{y0 - STARTUP_EXTENT * PIXEL},{y0}"
    started = time.perf_counter()
    outputs = client.run("apply_model", {"MODEL": str(model), "SOURCE1": [str(image)], "EXTENT": extent,
                                         "OUTPUT": str(output)}, _Quiet(), [str(output)])
    seconds = time.perf_counter() - started
    assert (outputs["WIDTH"], outputs["HEIGHT"]) == (STARTUP_EXTENT, STARTUP_EXTENT), outputs
    return seconds


def section_startup(workdir: Path, cache: Path, version: str, run_child, links: Path) -> list[tuple[str, str]]:
    print(f"\n5. start-up: Apply model on a {STARTUP_EXTENT}x{STARTUP_EXTENT} extent of a {STARTUP_SIZE}x"
          f"{STARTUP_SIZE} 4-band image\n   (an untrained zoo FCNN) through the QGIS side's client: a new worker "
          f"per run (cold, {STARTUP_COLD_RUNS} runs)\n   against one warm worker (the session's first run, then "
          f"{STARTUP_WARM_RUNS} more). Medians, wall time of client.run.")
    for name in run_child("startup-data", workdir)["made"]:
        print(f"  made {name}")
    if str(links) not in sys.path:
        sys.path.insert(0, str(links))
    from patchflow.plugin.client import POOL, WorkerClient

    image, model = startup_paths(cache, version)
    python = str(Path(sys.executable))
    cold = [_tiny_run(WorkerClient(python, idle_seconds=0), image, model, workdir / f"cold{i}.tif")
            for i in range(STARTUP_COLD_RUNS)]
    client = WorkerClient(python, idle_seconds=600)
    first = _tiny_run(client, image, model, workdir / "first.tif")
    warm = []
    for index in range(STARTUP_WARM_RUNS):
        warm.append(_tiny_run(client, image, model, workdir / f"warm{index}.tif"))
        assert client.reused, "the warm worker was not reused"
    POOL.shutdown()
    print("  cold: " + ", ".join(f"{s:.2f}" for s in cold) + f" s; first: {first:.2f} s; warm: "
          + ", ".join(f"{s:.2f}" for s in warm) + " s")
    warm_median = statistics.median(warm)
    verdict = "met" if warm_median <= STARTUP_TARGET else "NOT met"
    return [
        (f"start-up: tiny Apply model ({STARTUP_EXTENT}x{STARTUP_EXTENT}), a new worker per run",
         f"{statistics.median(cold):6.2f} s"),
        ("start-up: the same, a session's first run (starts the warm worker)", f"{first:6.2f} s"),
        ("start-up: the same, warm worker (2nd and later runs)",
         f"{warm_median:6.2f} s   (target <= {STARTUP_TARGET}: {verdict})"),
    ]
