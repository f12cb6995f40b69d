"""Bench section 7 (`bench/run.py --only dask`): Apply model in one process against a local Dask cluster
(EXECUTION local, WORKERS 1 and 2) on the same input, the serving section's 4096 x 4096 window and FCNN
(section 4), each run in a fresh process: wall time, the time until the windows are on the scheduler (the
cluster's start: worker processes importing TensorFlow), the windows, the join, and whether the class maps are
identical (they must be). docs/scaling.md's cost model uses these figures.
"""

from __future__ import annotations

import hashlib
import os
import re
import time

DASK_SIZE = 4096
DASK_MODEL = "fcnn"
DASK_RUNS = (("one process", "process", 0, 0), ("local cluster, 1 worker", "local", 1, 0),
             ("local cluster, 2 workers", "local", 2, 0),
             ("1 worker, 1 tile a window", "local", 1, 1))  # many small windows: the cost of a window
WINDOWS_LINE = re.compile(r"Dask \(\w+\): (\d+) window\(s\)")
JOINED_LINE = re.compile(r"(\d+) part\(s\) joined in ([\d.]+) s")


def child_dask_serve(workdir: str, mode: str, workers: str, window_tiles: str, runner, serving_params) -> dict:
    from osgeo import gdal

    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    marks: dict[str, float] = {}

    class Clock(Reporter):
        def log(self, text: str) -> None:
            if WINDOWS_LINE.search(text):
                marks["windows_at"] = time.perf_counter()
            super().log(text)

    clock = Clock()
    output = os.path.join(workdir, f"dask_{mode}_{workers}_{window_tiles}.tif")
    params = serving_params(DASK_MODEL, DASK_SIZE, output)
    if mode != "process":
        params.update({"EXECUTION": mode, "WORKERS": int(workers), "WINDOW_TILES": int(window_tiles)})
    start = time.perf_counter()
    run_job(protocol.Job("apply_model", params, "bench"), clock)
    seconds = time.perf_counter() - start
    windows = joined = None
    for line in clock.logs:
        found = WINDOWS_LINE.search(line)
        windows = int(found.group(1)) if found else windows
        found = JOINED_LINE.search(line)
        joined = float(found.group(2)) if found else joined
    digest = hashlib.sha256(gdal.Open(output).ReadAsArray().tobytes()).hexdigest()
    os.remove(output)
    return {"seconds": seconds, "windows": windows, "join": joined, "digest": digest,
            "to_windows": marks["windows_at"] - start if "windows_at" in marks else None,
            "pixels": DASK_SIZE ** 2}


def section_dask(workdir, run_child) -> list[tuple[str, str]]:
    print(f"\n7. Apply model ({DASK_MODEL}, {DASK_SIZE}x{DASK_SIZE} px) in one process and on a local Dask cluster, "
          f"each run in a fresh process ({os.cpu_count()} cores):")
    rows, digests, base = [], set(), None
    timed: dict[tuple[int, int], dict] = {}
    for label, mode, workers, window_tiles in DASK_RUNS:
        answer = run_child("dask-serve", workdir, mode, str(workers), str(window_tiles))
        timed[workers, window_tiles] = answer
        digests.add(answer["digest"])
        rate = answer["pixels"] / answer["seconds"] / 1e6
        base = base or answer["seconds"]
        detail = "" if mode == "process" else (
            f"; windows on the scheduler after {answer['to_windows']:.1f} s, {answer['windows']} window(s),"
            f" joined in {answer['join']:.1f} s")
        print(f"  {label:<25} {answer['seconds']:6.1f} s = {rate:5.2f} Mpixel/s{detail}")
        rows.append((f"dask, Apply model {DASK_SIZE}² {label}",
                     f"{answer['seconds']:6.1f} s   ({rate:.2f} Mpixel/s; "
                     f"{base / answer['seconds']:.2f}x one process)"))
    default, small = timed[1, 0], timed[1, 1]
    if small["windows"] and default["windows"] and small["windows"] > default["windows"]:
        per_window = (small["seconds"] - small["join"] - default["seconds"] + default["join"]) / (
            small["windows"] - default["windows"])
        print(f"  the cost of one more window (1 worker, {default['windows']} -> {small['windows']} windows, joins"
              f" aside): {per_window * 1000:.0f} ms")
        rows.append(("dask, cost of one more window (1 worker)", f"{per_window * 1000:6.0f} ms"))
    same = len(digests) == 1
    print(f"  the class maps are identical: {'yes' if same else 'NO'}")
    rows.append(("dask, class maps identical to one process", "yes" if same else "NO"))
    return rows
