"""Bench section 6 (`bench/run.py --only join`): the cost of joining part files into one output, the step
a run on Dask ends with (docs/scaling.md). Each window of a distributed run writes its part (a tiled,
DEFLATE GeoTIFF in the run's staging folder); when all are done the parts are joined through a VRT into
the final tiled, compressed GeoTIFF. The join is the one serial step, so it bounds how far more workers help.

The parts are class maps (UInt8, classes 1-7 in irregular regions of 4-64 px, about as compressible as a
real class map): one part is made with numpy, then copied to every position of the grid with its own
geotransform (distinct files: GDAL's block cache cannot serve one part's blocks to another). The join is
measured at three sizes, up to JOIN_SIZES[-1] pixels square (100 000 x 100 000 = 10 Gpixel, 100 parts of
10 000 x 10 000 by default), each in a fresh process, the parts read into the OS page cache beforehand.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

JOIN_PART = 10_000  # pixels square, each part
JOIN_SIZES = (20_000, 50_000, 100_000)  # output pixels square
CLASSES = 7


def parts_folder(cache: Path, version: str) -> Path:
    return cache / f"join_parts_{JOIN_PART}_{version}"


def part_name(row: int, col: int) -> str:
    return f"part_{row:03d}_{col:03d}.tif"


def make_part_values(size: int, seed: int = 5):
    """A class map: regions of classes 1..CLASSES, blocky at several scales, like a served map."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values = np.ones((size, size), np.uint8)
    for cell in (64, 16, 4):
        coarse = rng.integers(1, CLASSES + 1, (-(-size // cell), -(-size // cell)), dtype=np.uint8)
        keep = rng.random(coarse.shape) < (0.6 if cell > 4 else 0.1)  # finer cells change a few regions
        layer = np.repeat(np.repeat(coarse, cell, 0), cell, 1)[:size, :size]
        mask = np.repeat(np.repeat(keep, cell, 0), cell, 1)[:size, :size]
        values[mask] = layer[mask]
    return values


def child_join_data(cache: Path, version: str) -> dict:
    """The parts of the largest grid (the smaller grids use its top-left parts)."""
    from osgeo import gdal

    from patchflow.plugin.engine.serve.outputs import GTIFF_OPTIONS

    gdal.UseExceptions()
    folder = parts_folder(cache, version)
    per_side = JOIN_SIZES[-1] // JOIN_PART
    done = folder / ".complete"
    if done.exists():
        return {"made": 0.0}
    start = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    first = folder / part_name(0, 0)
    ds = gdal.GetDriverByName("GTiff").Create(str(first), JOIN_PART, JOIN_PART, 1, gdal.GDT_Byte, GTIFF_OPTIONS)
    ds.GetRasterBand(1).WriteArray(make_part_values(JOIN_PART))
    ds.GetRasterBand(1).SetNoDataValue(0)
    ds = None
    for row in range(per_side):
        for col in range(per_side):
            path = folder / part_name(row, col)
            if (row, col) != (0, 0):
                shutil.copyfile(first, path)
            ds = gdal.Open(str(path), gdal.GA_Update)
            ds.SetGeoTransform((300000.0 + col * JOIN_PART * 10.0, 10.0, 0.0,
                                5000000.0 - row * JOIN_PART * 10.0, 0.0, -10.0))
            ds = None
    done.touch()
    return {"made": time.perf_counter() - start,
            "part_mib": first.stat().st_size / 2**20, "parts": per_side * per_side}


def child_join(cache: Path, version: str, size: str, workdir: str) -> dict:
    """Joins the parts of a ``size`` x ``size`` grid into one tiled, compressed GeoTIFF."""
    from osgeo import gdal

    from patchflow.plugin.engine.serve.outputs import GTIFF_OPTIONS

    gdal.UseExceptions()
    per_side = int(size) // JOIN_PART
    parts = [str(parts_folder(cache, version) / part_name(r, c)) for r in range(per_side) for c in range(per_side)]
    for part in parts:  # into the OS page cache: the join's reading, not the disk's, is measured
        with open(part, "rb") as handle:
            while handle.read(1 << 24):
                pass
    output = str(Path(workdir) / f"joined_{size}.tif")
    start = time.perf_counter()
    vrt = gdal.BuildVRT(str(Path(workdir) / f"parts_{size}.vrt"), parts)
    vrt_seconds = time.perf_counter() - start
    gdal.Translate(output, vrt, creationOptions=GTIFF_OPTIONS)
    vrt = None
    seconds = time.perf_counter() - start
    mib = Path(output).stat().st_size / 2**20
    Path(output).unlink()
    return {"seconds": seconds, "vrt_seconds": vrt_seconds, "parts": len(parts), "output_mib": mib,
            "gpixels": int(size) ** 2 / 1e9}


def section_join(workdir: Path, cache: Path, version: str, run_child) -> list[tuple[str, str]]:
    print(f"\n6. joining part files (class maps, UInt8, {JOIN_PART}x{JOIN_PART} px parts, tiled DEFLATE) into one "
          "tiled DEFLATE GeoTIFF through a VRT, as a run on Dask ends:")
    made = run_child("join-data", workdir)
    if made.get("made"):
        print(f"  parts made in {made['made']:.0f} s ({made['parts']} parts of {made['part_mib']:.1f} MiB)")
    rows = []
    for size in JOIN_SIZES:
        answer = run_child("join", workdir, str(size))
        rate = answer["gpixels"] * 1000 / answer["seconds"]
        print(f"  {size}x{size} px ({answer['parts']} parts, {answer['gpixels']:.1f} Gpixel):"
              f" {answer['seconds']:6.1f} s"
              f" = {rate:5.0f} Mpixel/s (the VRT {answer['vrt_seconds']:.2f} s), output {answer['output_mib']:.0f} MiB")
        rows.append((f"join, {size}x{size} px of parts into one GeoTIFF",
                     f"{answer['seconds']:6.1f} s   ({rate:.0f} Mpixel/s, {answer['parts']} parts)"))
    return rows
