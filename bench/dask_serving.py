"""Apply model in one process against a local Dask cluster (EXECUTION local, WORKERS 1 and 2) on the same
input: the NC Landsat scene tiled 4 x 4 (1956 x 1772 px, made once in .cache/bench/) and an FCNN of width 48;
prints each run's wall time, its windows and join time, and whether the outputs are identical (they must be).
Used for the figures of docs/scaling.md (Running on Dask).

    .venv/bin/python bench/dask_serving.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NC = ROOT.parent / "shared" / "data" / "nc_landsat7" / "landsat_multiband.tif"


def scene(folder: Path) -> str:
    """The NC scene tiled 4 x 4 as one GeoTIFF."""
    import numpy as np
    from osgeo import gdal

    path = folder / "nc_4x4.tif"
    if not path.exists():
        source = gdal.Open(str(NC))
        tiled = np.tile(source.ReadAsArray(), (1, 4, 4))
        ds = gdal.GetDriverByName("GTiff").Create(str(path), tiled.shape[2], tiled.shape[1], tiled.shape[0],
                                                  source.GetRasterBand(1).DataType, ["TILED=YES"])
        ds.SetGeoTransform(source.GetGeoTransform())
        ds.SetProjection(source.GetProjection())
        for index, band in enumerate(tiled):
            ds.GetRasterBand(index + 1).WriteArray(band)
        ds = None
    return str(path)


def model(folder: Path) -> str:
    from patchflow.plugin.engine.models.modelcard import InputSpec, Normalization
    from patchflow.plugin.engine.models.zoo import build_model, export_model

    path = folder / "wide_fcnn"
    if not path.exists():
        network, card = build_model("fcnn", [InputSpec("x1", 5, 64, "source1",
                                                       Normalization("standard", [80.0] * 5, [20.0] * 5))],
                                    [{"id": 1, "name": "a", "color": "#ff0000"}, {"id": 2, "name": "b",
                                                                                   "color": "#00ff00"}],
                                    width=48, seed=1)
        export_model(network, card, str(path))
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    links = ROOT / ".cache" / "plugins"
    sys.path.insert(0, str(links))
    import numpy as np
    from osgeo import gdal

    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    folder = ROOT / ".cache" / "bench" / "dask"
    folder.mkdir(parents=True, exist_ok=True)
    image, network = scene(folder), model(folder)
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
    runs = (("one process", {}), ("local, 1 worker", {"EXECUTION": "local", "WORKERS": 1}),
            ("local, 2 workers", {"EXECUTION": "local", "WORKERS": 2}))
    for repeat in range(args.repeat):
        outputs = []
        for label, extra in runs:
            out = folder / f"out-{repeat}-{len(outputs)}"
            out.mkdir(exist_ok=True)
            for old in out.iterdir():
                old.unlink()
            reporter = Reporter()
            start = time.monotonic()
            result = run_job(protocol.Job("apply_model", {"MODEL": network, "SOURCE1": [image],
                                                          "OUTPUT": str(out / "map.tif"), **extra}, "bench"), reporter)
            seconds = time.monotonic() - start
            notes = [line for line in reporter.logs if "window(s)" in line or "joined" in line]
            print(f"{label}: {seconds:.1f} s {'; '.join(notes)}", flush=True)
            outputs.append(gdal.Open(result["OUTPUT"]).ReadAsArray())
        print("identical:", all(np.array_equal(outputs[0], other) for other in outputs[1:]), flush=True)


if __name__ == "__main__":
    main()
