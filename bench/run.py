"""PatchFlow benchmark (`make bench`): patch extraction throughput against a naive GDAL loop, peak
memory of label-raster sampling at two raster sizes, training throughput streamed from disk
against Keras on the same samples in memory, and serving throughput (apply_model) against the
model alone and GDAL I/O alone, with its peak memory at two raster sizes. See bench/README.md.

Everything that imports numpy or GDAL runs in a subprocess of its own (fresh interpreter, fresh
GDAL block cache); the parent uses the standard library only, starts the children and prints what
they report. Test data is made once with GDAL in .cache/bench/ (gitignored) and reused.

    .venv/bin/python bench/run.py              # everything (extraction timings: best of 3)
    .venv/bin/python bench/run.py --repeat 1   # one run per extraction method
    .venv/bin/python bench/run.py --only serving     # one section (extraction, sampling, training,
                                                     # serving, startup, join, dask)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"
LINKS = ROOT / ".cache" / "plugins"

# Patch extraction data: a Sentinel-2-tile-sized 4-band Int16 raster and random points over it.
RASTER_SIZE = 10980
RASTER_BANDS = 4
TILE = 256
N_POINTS = 10_000
PATCH = 32
POINTS_SEED = 42
EPSG = 32631
PIXEL = 10.0
ORIGIN = (300000.0, 5000000.0)
# Both extraction children run with this GDAL block cache (MiB): the same, bounded value for both,
# a quarter of the raster's 1849 tiles (512 KiB each decompressed).
EXTRACT_CACHEMAX_MB = 256
EXTRACT_DEFAULT_TARGET = 3.0  # PatchFlow / naive, each with its own default settings (issue 14)

# Sampling data: UInt8 label rasters 4x apart in pixels, ~5 classes.
LABEL_SIZES = (6000, 12000)  # 36 and 144 MB: the larger is over the engine's 64 MiB GDAL cache
SAMPLE_NUMBER = 1000
SAMPLE_SMALL_CACHEMAX_MB = 8  # the second sampling pair: GDAL's block cache too small to matter
RSS_TARGET = 1.25  # large/small peak RSS at or below this: memory does not grow with the raster

DATA_VERSION = "v1"  # bump when the generated data changes


def raster_path() -> Path:
    return CACHE / f"image_{RASTER_SIZE}_{RASTER_BANDS}b_int16_{DATA_VERSION}.tif"


def points_path() -> Path:
    return CACHE / f"points_{N_POINTS}_seed{POINTS_SEED}_{DATA_VERSION}.gpkg"


def labels_path(size: int) -> Path:
    return CACHE / f"labels_{size}_uint8_{DATA_VERSION}.tif"


# ---- data -----------------------------------------------------------------------------------


def _link_checkout() -> None:
    """The checkout importable as package ``patchflow`` (as QGIS would install it), through the link
    tests/conftest.py makes too."""
    LINKS.mkdir(parents=True, exist_ok=True)
    if not (LINKS / "patchflow").exists():
        (LINKS / "patchflow").symlink_to(ROOT)
    if str(LINKS) not in sys.path:
        sys.path.insert(0, str(LINKS))


def _create_tiled(path: Path, size: int, bands: int, gdal_type: int, extra: list[str]):
    _link_checkout()
    from patchflow.tests.helpers import create_raster

    options = ["TILED=YES", f"BLOCKXSIZE={TILE}", f"BLOCKYSIZE={TILE}", "COMPRESS=DEFLATE",
               "NUM_THREADS=ALL_CPUS", "BIGTIFF=IF_SAFER"] + extra
    return create_raster(path, size, size, bands, gdal_type, options, ORIGIN, PIXEL, EPSG)


def make_image(path: Path) -> None:
    """Gradient + 6-bit noise per band, written one row of tiles at a time."""
    import numpy as np
    from osgeo import gdal

    tmp = path.with_suffix(".partial.tif")
    ds = _create_tiled(tmp, RASTER_SIZE, RASTER_BANDS, gdal.GDT_Int16, ["PREDICTOR=2"])
    rng = np.random.default_rng(0)
    x = np.arange(RASTER_SIZE, dtype=np.int16)[None, :] // 4
    for y0 in range(0, RASTER_SIZE, TILE):
        h = min(TILE, RASTER_SIZE - y0)
        y = (np.arange(y0, y0 + h, dtype=np.int16) // 4)[:, None]
        strip = np.empty((RASTER_BANDS, h, RASTER_SIZE), np.int16)
        for b in range(RASTER_BANDS):
            strip[b] = x + y + 1000 * b + rng.integers(0, 64, size=(h, RASTER_SIZE), dtype=np.int16)
        ds.WriteRaster(0, y0, RASTER_SIZE, h, strip.tobytes(), buf_type=gdal.GDT_Int16)
    for b in range(RASTER_BANDS):
        ds.GetRasterBand(b + 1).SetDescription(f"B{b + 1}")
    ds = None
    os.replace(tmp, path)


def make_points(path: Path) -> None:
    """N_POINTS uniform random points (seeded) over the whole raster extent."""
    import numpy as np

    _link_checkout()
    from patchflow.tests.helpers import write_points

    rng = np.random.default_rng(POINTS_SEED)
    extent = RASTER_SIZE * PIXEL
    xs = ORIGIN[0] + rng.uniform(0, extent, N_POINTS)
    ys = ORIGIN[1] - rng.uniform(0, extent, N_POINTS)
    tmp = path.with_suffix(".partial.gpkg")
    if tmp.exists():
        tmp.unlink()
    write_points(tmp, xs, ys, epsg=EPSG, layer_name="points")
    os.replace(tmp, path)


def make_labels(path: Path, size: int) -> None:
    """Classes 1..5 in irregular blocks (so every window holds several classes), one row of tiles
    at a time."""
    import numpy as np
    from osgeo import gdal

    tmp = path.with_suffix(".partial.tif")
    ds = _create_tiled(tmp, size, 1, gdal.GDT_Byte, [])
    x = np.arange(size, dtype=np.int64)[None, :]
    for y0 in range(0, size, TILE):
        h = min(TILE, size - y0)
        y = np.arange(y0, y0 + h, dtype=np.int64)[:, None]
        classes = ((x // 97 + 3 * (y // 61) + (x * y) // 50021) % 5 + 1).astype(np.uint8)
        ds.GetRasterBand(1).WriteArray(classes, 0, y0)
    ds = None
    os.replace(tmp, path)


def prepare_data() -> float:
    CACHE.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    jobs = [(raster_path(), make_image, (), f"{RASTER_SIZE}x{RASTER_SIZE} {RASTER_BANDS}-band Int16 raster"),
            (points_path(), make_points, (), f"{N_POINTS} random points")]
    jobs += [(labels_path(s), make_labels, (s,), f"{s}x{s} UInt8 label raster") for s in LABEL_SIZES]
    for path, make, args, what in jobs:
        if path.exists():
            print(f"  reusing {what}: {path.relative_to(ROOT)}")
            continue
        t = time.perf_counter()
        make(path, *args)
        print(f"  made {what} in {time.perf_counter() - t:.1f} s: {path.relative_to(ROOT)} "
              f"({path.stat().st_size / 2**20:.0f} MiB)")
    return time.perf_counter() - start


def warm_page_cache(path: Path) -> None:
    """Read the file once so both extraction children find it in the OS page cache."""
    with open(path, "rb") as handle:
        while handle.read(16 << 20):
            pass


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM). Unlike ru_maxrss it is not inherited from the
    process that spawned this one (Linux folds the parent's high-water mark into ru_maxrss at
    vfork + exec); ru_maxrss is the fallback off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    divisor = 2**20 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / divisor


# ---- children (each measured run is one of these, in its own process) -----------------------


def _engine_runner():
    """``run(operation, parameters) -> outputs``: the engine in this process, imported as QGIS
    would (the checkout as package ``patchflow``)."""
    _link_checkout()
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    def run(operation: str, parameters: dict) -> dict:
        return run_job(protocol.Job(operation, parameters, "bench"), Reporter())

    return run


def child_extract_patchflow(workdir: str) -> dict:
    run = _engine_runner()
    output = os.path.join(workdir, "dataset.json")
    params = {"SOURCE1": str(raster_path()), "PATCH_SIZE1": PATCH, "INPUT": str(points_path()), "OUTPUT": output}
    start, cpu = time.perf_counter(), cpu_seconds()
    outputs = run("extract_patches", params)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu": cpu_seconds() - cpu, "patches": outputs["COUNT"], "image": outputs["PATCHES1"]}


def child_extract_naive(workdir: str) -> dict:
    """The obvious loop: points in input order, one ReadAsArray and one WriteRaster per patch."""
    import numpy  # noqa: F401  (imported before the clock starts, as the engine's imports are)
    from osgeo import gdal, gdal_array, ogr  # noqa: F401

    gdal.UseExceptions()
    ogr.UseExceptions()
    start, cpu = time.perf_counter(), cpu_seconds()
    src = gdal.Open(str(raster_path()))
    x0, dx, _, y0, _, dy = src.GetGeoTransform()
    width, height, bands = src.RasterXSize, src.RasterYSize, src.RasterCount
    vector = ogr.Open(str(points_path()))
    origins = []
    for feature in vector.GetLayer(0):
        x, y = feature.GetGeometryRef().GetPoint_2D()
        col = math.floor((x - x0) / dx) - PATCH // 2  # the point's pixel is the patch's centre pixel
        row = math.floor((y - y0) / dy) - PATCH // 2
        if 0 <= col and 0 <= row and col + PATCH <= width and row + PATCH <= height:
            origins.append((col, row))
    path = os.path.join(workdir, "naive_patches.tif")
    # Same creation options as PatchFlow's patches-images, so both write the same kind of file.
    out = gdal.GetDriverByName("GTiff").Create(path, PATCH, len(origins) * PATCH, bands, gdal.GDT_Int16,
                                               ["BIGTIFF=IF_SAFER", f"BLOCKYSIZE={PATCH}"])
    for index, (col, row) in enumerate(origins):
        patch = src.ReadAsArray(col, row, PATCH, PATCH)
        out.WriteRaster(0, index * PATCH, PATCH, PATCH, patch.tobytes(), buf_type=gdal.GDT_Int16)
    out = None
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu": cpu_seconds() - cpu, "patches": len(origins), "image": path}


def child_baseline(workdir: str) -> dict:  # noqa: ARG001
    """Interpreter + numpy + GDAL + engine imports: the fixed part of every child's RSS."""
    _engine_runner()
    from patchflow.plugin.engine import operations  # noqa: F401

    return {}


def child_sample(workdir: str, size: str) -> dict:
    run = _engine_runner()
    params = {"INPUT": str(labels_path(int(size))), "STRATEGY": "constant", "NUMBER": SAMPLE_NUMBER,
              "SEED": 1, "OUTPUT": os.path.join(workdir, f"samples_{size}.gpkg")}
    start = time.perf_counter()
    outputs = run("sample_label_raster", params)
    return {"seconds": time.perf_counter() - start, "samples": outputs["COUNT"]}


def child_prepare(workdir: str) -> dict:  # noqa: ARG001
    import numpy
    from osgeo import gdal

    gdal.UseExceptions()
    return {"seconds": prepare_data(), "gdal": gdal.__version__, "numpy": numpy.__version__}


def child_compare(workdir: str, image_a: str, image_b: str) -> dict:  # noqa: ARG001
    """Whether both patches-images hold the same patches, whatever their order."""
    import numpy as np
    from osgeo import gdal

    gdal.UseExceptions()

    def fingerprints(path: str) -> np.ndarray:
        values = gdal.Open(path).ReadAsArray().astype(np.int64)  # bands, n * p, p
        bands, rows, p = values.shape
        patches = values.reshape(bands, rows // p, p, p).transpose(1, 0, 2, 3).reshape(rows // p, -1)
        return np.sort(patches @ np.arange(1, patches.shape[1] + 1, dtype=np.int64))

    a, b = fingerprints(image_a), fingerprints(image_b)
    return {"same": a.shape == b.shape and bool((a == b).all())}


# ---- training throughput (section 3) --------------------------------------------------------

# Per model: (architecture, patch size, samples per class drawn from the label raster). 5 classes.
TRAIN_MODELS = {"patch_cnn": (16, 6000), "fcnn": (64, 400)}
TRAIN_LABELS_SIZE = LABEL_SIZES[0]  # the 6000x6000 label raster, over the image's top-left corner
TRAIN_BATCH = 32  # Train model's default BATCH_SIZE
TRAIN_EPOCHS = 4  # the first one (tracing, warm-up) is not timed
TRAIN_TARGET = 0.85  # streamed / in-memory samples/s at or above this
TRAIN_REPEAT = 2  # runs per mode, alternating
TRAIN_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3"}  # TensorFlow's start-up chatter off


def train_dataset_path(model: str) -> Path:
    return CACHE / f"train_{model}_{DATA_VERSION}" / "dataset.json"


def make_train_dataset(run, model: str) -> None:
    """Points drawn from the label raster (constant per class), then 'extract_patches' from the
    image with the points' class (labels image) and the label raster (label patches)."""
    patch, per_class = TRAIN_MODELS[model]
    final = train_dataset_path(model).parent
    folder = final.with_name(final.name + ".partial")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    points = str(folder / "points.gpkg")
    run("sample_label_raster", {"INPUT": str(labels_path(TRAIN_LABELS_SIZE)), "STRATEGY": "constant",
                                "NUMBER": per_class, "PATCH_SIZE": patch, "SEED": 3, "OUTPUT": points})
    run("extract_patches", {"SOURCE1": str(raster_path()), "PATCH_SIZE1": patch, "INPUT": points,
                            "CLASS_FIELD": "class", "LABEL_RASTER": str(labels_path(TRAIN_LABELS_SIZE)),
                            "OUTPUT": str(folder / "dataset.json")})
    shutil.rmtree(final, ignore_errors=True)
    os.replace(folder, final)


def child_train_data(workdir: str) -> dict:  # noqa: ARG001
    run = _engine_runner()
    made = {}
    for model in TRAIN_MODELS:
        if not train_dataset_path(model).exists():
            start = time.perf_counter()
            make_train_dataset(run, model)
            made[model] = time.perf_counter() - start
    return {"made": made}


def child_train(workdir: str, model: str, mode: str) -> dict:  # noqa: ARG001
    """Fits ``model`` for TRAIN_EPOCHS epochs, its samples streamed from disk (``mode`` 'streamed',
    as Train model does) or held in memory as numpy arrays ('memory'); times every epoch."""
    _engine_runner()
    import warnings

    import keras

    from patchflow.plugin.engine.data.datasets import LABELS, BatchStream, Feed, PatchDataset, Target, load_in_memory
    from patchflow.plugin.engine.models.modelcard import InputSpec, Normalization
    from patchflow.plugin.engine.models.zoo import build_model
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.train.fitting import compile_model, training_data
    from patchflow.plugin.engine.train.trainsettings import Settings, seed_everything

    dataset = PatchDataset(str(train_dataset_path(model)), "TRAIN")
    source = dataset.source("source1")
    patch, bands = int(source["patch_size"]), len(source["bands"])
    normalization = Normalization.from_stats(source["bands"])
    ids = [int(c["id"]) for c in dataset.classes]
    target = (Target(LABELS, "classes", (1, 1), ids) if model == "patch_cnn"
              else Target("labels_raster", "classes", (patch, patch), ids))
    stream = BatchStream(dataset, [Feed("x1", "source1", patch, bands, normalization)], target, TRAIN_BATCH,
                         shuffle=True, augment=False, seed=0)
    seed_everything(0)
    network, _ = build_model(model, [InputSpec("x1", bands, patch, "source1", normalization)], dataset.classes,
                             seed=0)
    settings = Settings(TRAIN_EPOCHS, TRAIN_BATCH, 1e-3, "adam", "auto", "none", False, 0, 0, "cpu")
    compile_model(network, settings, target)

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)

    clock = Clock()
    warnings.filterwarnings("ignore", message=".*shuffle=True. was passed")  # fit's default, a tf.data input
    cache_seconds = 0.0  # streamed: the record cache written; in memory: the arrays loaded
    if mode == "streamed":  # as Train model feeds fit: a record cache in its work folder, read back by TensorFlow
        context = SimpleNamespace(reporter=Reporter(), cancelled=lambda: False)
        with tempfile.TemporaryDirectory(dir=CACHE) as work:
            started = time.perf_counter()
            data = training_data(stream, os.path.join(work, "records"), context)
            cache_seconds = time.perf_counter() - started
            network.fit(data, steps_per_epoch=stream.steps, epochs=TRAIN_EPOCHS, verbose=0, callbacks=[clock])
    else:
        started = time.perf_counter()
        inputs, targets, weights = load_in_memory(stream)
        cache_seconds = time.perf_counter() - started
        network.fit(inputs["x1"], targets, sample_weight=weights, batch_size=TRAIN_BATCH, epochs=TRAIN_EPOCHS,
                    shuffle=True, verbose=0, callbacks=[clock])
    return {"samples": dataset.count, "seconds": clock.seconds, "ready_seconds": cache_seconds, "patch": patch,
            "bands": bands,
            "parameters": int(network.count_params())}


def bench_training(workdir: Path) -> dict:
    """Per model, in-memory and streamed runs alternate, each in a fresh process; a mode's rate
    is its fastest timed epoch over its runs."""
    made = run_child("train-data", workdir, env=TRAIN_ENV)["made"]
    for model, seconds in made.items():
        print(f"  made the {model} dataset in {seconds:.1f} s: {train_dataset_path(model).parent.relative_to(ROOT)}")
    results = {}
    for model in TRAIN_MODELS:
        fastest: dict[str, float] = {}
        for attempt in range(TRAIN_REPEAT):
            for mode in ("memory", "streamed"):
                answer = run_child("train", workdir, model, mode, env=TRAIN_ENV)
                timed = min(answer["seconds"][1:])
                fastest[mode] = min(fastest.get(mode, timed), timed)
                epochs = ", ".join(f"{s:.2f}" for s in answer["seconds"])
                print(f"  {model:<9} {mode:<8} run {attempt + 1}/{TRAIN_REPEAT}: {answer['samples']} patches "
                      f"{answer['patch']}x{answer['patch']}x{answer['bands']}, data ready in "
                      f"{answer['ready_seconds']:.1f} s, epochs {epochs} s -> "
                      f"{answer['samples'] / timed:6.0f} samples/s (peak RSS {answer['peak_rss_mib']:.0f} MiB)")
        results[model] = {mode: answer["samples"] / seconds for mode, seconds in fastest.items()}
    return results


# ---- serving throughput and memory (section 4) ----------------------------------------------

# Zoo models, untrained (seeded weights; they do not change the speed): (training patch size, classes).
SERVING_MODELS = {"fcnn": (64, 5), "patch_cnn": (16, 5), "fusion_unet": (64, 5)}
# Two-source models: a second source over the same ground, this many times coarser (source 2 of the
# fusion U-Net: the window averaged 4x, 40 m pixels, 16 px patches), upsampled inside the network
TWO_SOURCES = {"fusion_unet": 4}
SERVING_WIDTHS = {"fusion_unet": 8}  # the U-Net's width (32 by default: 7.8 M parameters) brought near the fcnn's size
SERVING_SIZE = 4096  # the window timed, over the image's top-left corner
SERVING_RSS_SIZES = (4096, 8192)  # 4x apart in pixels; the smaller one already has several blocks in flight
SERVING_PATCH_SIZE = 1024  # the window of the patch-mode row (informative only)
SERVING_REPEAT = 3  # runs of serving and of the bounds, alternating; the fastest counts
SERVING_CPU_TARGET = 0.9  # serving time / (compute + I/O time) at or below this without a GPU
SERVING_GPU_TARGET = 1.1  # serving time / max(compute, I/O time) at or below this with one
SERVING_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3"}
SERVING_LOG = " serving: receptive field"  # the engine's log line once the model is loaded and planned


def serving_window_path(size: int) -> Path:
    return CACHE / f"serving_{size}_{DATA_VERSION}.vrt"


def serving_model_path(model: str) -> Path:
    return CACHE / f"serving_{model}_{DATA_VERSION}"


def serving_coarse_path(size: int, ratio: int) -> Path:
    return CACHE / f"serving_{size}_coarse{ratio}_{DATA_VERSION}.tif"


def serving_params(model: str, size: int, output: str, mode: str = "fully_convolutional") -> dict:
    params = {"MODEL": str(serving_model_path(model)), "SOURCE1": [str(serving_window_path(size))], "MODE": mode,
              "OUTPUT": output}
    if model in TWO_SOURCES:
        params["SOURCE2"] = [str(serving_coarse_path(size, TWO_SOURCES[model]))]
    return params


def cpu_seconds() -> float:
    """User + system CPU time of this process, all its threads."""
    times = os.times()
    return times.user + times.system


def child_serving_data(workdir: str) -> dict:  # noqa: ARG001
    """VRT windows over the image's top-left corner, and the zoo models exported as SavedModels,
    standardised with the timed window's band statistics (so the class maps are not uniform)."""
    _engine_runner()
    from osgeo import gdal

    from patchflow.plugin.engine.geodata.classes import complete
    from patchflow.plugin.engine.models.modelcard import InputSpec, Normalization
    from patchflow.plugin.engine.models.zoo import build_model, export_model

    gdal.UseExceptions()
    made = []
    for size in sorted({SERVING_SIZE, *SERVING_RSS_SIZES, SERVING_PATCH_SIZE}):
        path = serving_window_path(size)
        if not path.exists():
            partial = path.with_suffix(".partial.vrt")
            gdal.Translate(str(partial), str(raster_path()), format="VRT", srcWin=[0, 0, size, size])
            os.replace(partial, path)
            made.append(f"{size}x{size} window (VRT): {path.relative_to(ROOT)}")
        for ratio in sorted(set(TWO_SOURCES.values())):
            coarse = serving_coarse_path(size, ratio)
            if not coarse.exists():
                partial = coarse.with_suffix(".partial.tif")
                gdal.Translate(str(partial), str(path), width=size // ratio, height=size // ratio,
                               resampleAlg="average", creationOptions=["TILED=YES", "COMPRESS=DEFLATE"])
                os.replace(partial, coarse)
                made.append(f"{size // ratio}x{size // ratio} second source ({ratio}x coarser): "
                            f"{coarse.relative_to(ROOT)}")
    stats = None
    for model, (patch, n_classes) in SERVING_MODELS.items():
        final = serving_model_path(model)
        if final.exists():
            continue
        if stats is None:
            window = gdal.Open(str(serving_window_path(SERVING_SIZE)))
            stats = [window.GetRasterBand(b + 1).ComputeStatistics(True) for b in range(window.RasterCount)]
        normalization = Normalization("standard", [s[2] for s in stats], [s[3] for s in stats])
        classes = [{"id": c.id, "name": c.name, "color": c.color} for c in complete(list(range(1, n_classes + 1)), {})]
        inputs = [InputSpec("x1" if model in TWO_SOURCES else "source1", len(stats), patch, "source1", normalization,
                            PIXEL)]
        if model in TWO_SOURCES:  # the coarse source: the same bands averaged, so the same statistics
            ratio = TWO_SOURCES[model]
            inputs.append(InputSpec("x2", len(stats), patch // ratio, "source2", normalization, PIXEL * ratio))
        network, card = build_model(model, inputs, classes, width=SERVING_WIDTHS.get(model), seed=0)
        partial = final.with_name(final.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        export_model(network, card, str(partial))
        os.replace(partial, final)
        made.append(f"{model} SavedModel ({card.parameters['n_parameters']} parameters): {final.relative_to(ROOT)}")
    return {"made": made}


def child_serve(workdir: str, model: str, size: str, mode: str) -> dict:
    """apply_model on the ``size`` window; 'seconds' from the engine's plan log line (model
    loaded, geometry probed) to the end: reading, inference, writing, styling, closing."""
    _engine_runner()
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    class Clock(Reporter):
        planned: tuple[float, float] | None = None  # wall clock, CPU time

        def log(self, text: str) -> None:
            if self.planned is None and SERVING_LOG in text:
                self.planned = (time.perf_counter(), cpu_seconds())
            super().log(text)

    clock = Clock()
    output = os.path.join(workdir, f"serve_{model}_{size}_{mode}.tif")
    start = time.perf_counter()
    outputs = run_job(protocol.Job("apply_model", serving_params(model, int(size), output, mode), "bench"), clock)
    end, cpu = time.perf_counter(), cpu_seconds()
    os.remove(output)
    if clock.planned is None:
        raise RuntimeError(f"bench: apply_model logged no line with '{SERVING_LOG}'; update SERVING_LOG")
    return {"seconds": end - clock.planned[0], "cpu": cpu - clock.planned[1], "setup": clock.planned[0] - start,
            "pixels": int(size) ** 2, "output": [outputs["WIDTH"], outputs["HEIGHT"]]}


def child_serving_bounds(workdir: str, model: str, size: str) -> dict:
    """apply_model as in child_serve, but with pipeline.serve's reader thread and writer thread
    replaced by plain calls: tile after tile is read (the next item of pipeline.tiles: GDAL read +
    standardisation), inferred (pipeline.infer_group: the model alone) and written
    (GDAL WriteArray into the engine's output, then its flush), each on its own clock."""
    _engine_runner()
    import tensorflow as tf

    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.serve import pipeline
    from patchflow.plugin.engine.worker import run_job

    wall = {"read": 0.0, "compute": 0.0, "write": 0.0}
    cpu = dict(wall)
    shape = {"blocks": 0, "block": 0}

    def clocked(part: str, work, *args):
        started, started_cpu = time.perf_counter(), cpu_seconds()
        result = work(*args)
        wall[part] += time.perf_counter() - started
        cpu[part] += cpu_seconds() - started_cpu
        return result

    missing = [name for name in ("tiles", "threaded", "Writer", "infer_group", "write_tile")
               if not hasattr(pipeline, name)]
    if missing:
        raise RuntimeError(f"bench: serve/pipeline.py has no {', '.join(missing)} any more; "
                           "update child_serving_bounds")
    engine_tiles = pipeline.tiles
    compute_name = "infer_group" if hasattr(pipeline, "infer_group") else "infer"
    engine_compute = getattr(pipeline, compute_name)

    def read_tiles(plan):
        items = engine_tiles(plan)
        while (tile := clocked("read", next, items, None)) is not None:
            shape["blocks"] += 1
            if tile.inputs is not None:
                shape["block"] = max(shape["block"], next(iter(tile.inputs.values())).shape[-2])
            yield tile

    class Writer:
        def __init__(self, ds, fmt) -> None:
            self.ds, self.fmt, self.counts = ds, fmt, {}

        def put(self, tile, result) -> None:
            clocked("write", self.write, tile, result)

        def write(self, tile, result) -> None:
            pipeline.write_tile(self.ds, self.fmt, tile, result, self.counts)  # encode, count, write
            # Compressed and written now: GDAL would otherwise compress the blocks later, in its own
            # threads (NUM_THREADS), on the read and compute clocks.
            self.ds.FlushCache()

        def close(self) -> None:
            clocked("write", self.ds.FlushCache)

    pipeline.tiles = read_tiles
    pipeline.threaded = lambda producer, stop: producer  # noqa: ARG005
    pipeline.Writer = Writer
    setattr(pipeline, compute_name, lambda *args: clocked("compute", engine_compute, *args))
    output = os.path.join(workdir, f"bounds_{model}_{size}.tif")
    run_job(protocol.Job("apply_model", serving_params(model, int(size), output), "bench"), Reporter())
    os.remove(output)
    if not (shape["blocks"] and wall["compute"] and wall["write"]):
        raise RuntimeError("bench: the bounds run clocked no reading, inference or writing; update the child")
    return {**wall, "cpu": cpu, "pixels": int(size) ** 2, **shape, "gpu": bool(tf.config.list_physical_devices("GPU"))}


def bench_serving(workdir: Path) -> dict:
    """Per model, serving and its bounds alternate on the timed window (fresh processes, the image
    in the page cache), the fastest of each counts; then serving on the other window for peak RSS."""
    for line in run_child("serving-data", workdir, env=SERVING_ENV)["made"]:
        print(f"  made the {line}")
    size = SERVING_SIZE
    results = {}
    for model in SERVING_MODELS:
        best: dict[str, dict] = {}
        peaks: dict[int, float] = {}
        for attempt in range(SERVING_REPEAT):
            warm_page_cache(raster_path())
            served = run_child("serve", workdir, model, str(size), "fully_convolutional", env=SERVING_ENV)
            peaks[size] = max(peaks.get(size, 0.0), served["peak_rss_mib"])
            rate = served["pixels"] / served["seconds"] / 1e6
            print(f"  {model:<9} serving run {attempt + 1}/{SERVING_REPEAT}: {size}x{size} -> {served['output'][0]}x"
                  f"{served['output'][1]} in {served['seconds']:5.2f} s = {rate:5.2f} Mpixel/s, "
                  f"{served['cpu'] / served['seconds']:.2f} cores busy (model loading and plan "
                  f"{served['setup']:.1f} s before; peak RSS {served['peak_rss_mib']:.0f} MiB)")
            warm_page_cache(raster_path())
            bounds = run_child("serving-bounds", workdir, model, str(size), env=SERVING_ENV)
            busy = {part: bounds["cpu"][part] / max(bounds[part], 1e-9) for part in bounds["cpu"]}
            print(f"  {model:<9} bounds  run {attempt + 1}/{SERVING_REPEAT}: {bounds['blocks']} blocks of "
                  f"{bounds['block']}x{bounds['block']} input px: read {bounds['read']:5.2f} s "
                  f"({busy['read']:.2f} cores), model {bounds['compute']:5.2f} s ({busy['compute']:.2f}), "
                  f"write {bounds['write']:5.2f} s ({busy['write']:.2f})")
            if "serve" not in best or served["seconds"] < best["serve"]["seconds"]:
                best["serve"] = served
            if "compute" not in best or bounds["compute"] < best["compute"]["compute"]:
                best["compute"] = bounds
            if "io" not in best or bounds["read"] + bounds["write"] < best["io"]["read"] + best["io"]["write"]:
                best["io"] = bounds
        for other in SERVING_RSS_SIZES:
            if other in peaks:
                continue
            served = run_child("serve", workdir, model, str(other), "fully_convolutional", env=SERVING_ENV)
            peaks[other] = served["peak_rss_mib"]
            rate = served["pixels"] / served["seconds"] / 1e6
            print(f"  {model:<9} serving        {other}x{other} in {served['seconds']:5.2f} s = {rate:5.2f} Mpixel/s, "
                  f"peak RSS {served['peak_rss_mib']:.0f} MiB")
        results[model] = {"serve": best["serve"]["seconds"], "compute": best["compute"]["compute"],
                          "io": best["io"]["read"] + best["io"]["write"], "pixels": size**2,
                          "gpu": best["compute"]["gpu"], "peaks": peaks, "serve_cpu": best["serve"]["cpu"],
                          "bounds_cpu": best["compute"]["cpu"]["compute"] + best["io"]["cpu"]["read"]
                          + best["io"]["cpu"]["write"]}
    warm_page_cache(raster_path())
    patch = run_child("serve", workdir, "patch_cnn", str(SERVING_PATCH_SIZE), "patch", env=SERVING_ENV)
    print(f"  patch_cnn MODE patch (a 16x16 patch per pixel, stride 1): {SERVING_PATCH_SIZE}x{SERVING_PATCH_SIZE} in "
          f"{patch['seconds']:5.2f} s = {patch['pixels'] / patch['seconds'] / 1e6:5.2f} Mpixel/s")
    results["patch mode"] = patch["pixels"] / patch["seconds"]
    return results


def child_startup(workdir: str) -> dict:  # noqa: ARG001
    from startup import child_startup_data

    return child_startup_data(CACHE, DATA_VERSION, _engine_runner())


def child_join_data(workdir: str) -> dict:  # noqa: ARG001
    _link_checkout()
    from join import child_join_data as make

    return make(CACHE, DATA_VERSION)


def child_join(workdir: str, size: str) -> dict:
    _link_checkout()
    from join import child_join as join

    return join(CACHE, DATA_VERSION, size, workdir)


def child_dask_serve(workdir: str, mode: str, workers: str, window_tiles: str) -> dict:
    runner = _engine_runner()
    from dask_serving import child_dask_serve as serve

    return serve(workdir, mode, workers, window_tiles, runner, serving_params)


CHILDREN = {"join-data": child_join_data, "join": child_join, "dask-serve": child_dask_serve,
            "startup-data": child_startup, "prepare": child_prepare, "extract-patchflow": child_extract_patchflow,
            "extract-naive": child_extract_naive, "baseline": child_baseline, "sample": child_sample,
            "compare": child_compare, "train-data": child_train_data, "train": child_train,
            "serving-data": child_serving_data, "serve": child_serve, "serving-bounds": child_serving_bounds}


def child_main(name: str, workdir: str, answer_path: str, *args: str) -> int:
    answer = CHILDREN[name](workdir, *args)
    answer["peak_rss_mib"] = peak_rss_mib()
    if "osgeo.gdal" in sys.modules:
        answer["gdal_cache_mib"] = sys.modules["osgeo.gdal"].GetCacheMax() / 2**20
    with open(answer_path, "w", encoding="utf-8") as handle:
        json.dump(answer, handle)
    return 0


# ---- the parent: standard library only, so it stays small -----------------------------------


def run_child(name: str, workdir: Path, *args: str, env: dict | None = None) -> dict:
    """Run one child in a fresh interpreter (its printing goes to our stdout); its JSON answer.
    ``env`` entries set to None are removed from the child's environment."""
    answer_path = workdir / f".answer-{name}.json"
    answer_path.unlink(missing_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name, str(workdir), str(answer_path), *args]
    child_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            child_env.pop(key, None)
        else:
            child_env[key] = value
    sys.stdout.flush()
    completed = subprocess.run(command, env=child_env, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"bench: child '{name}' failed (exit {completed.returncode})")
    with open(answer_path, encoding="utf-8") as handle:
        return json.load(handle)


def bench_extraction(workdir: Path, tag: str, cachemax_mb: int | None, repeat: int) -> dict:
    """PatchFlow, then the naive loop, ``repeat`` times (alternating), each in a fresh process with
    GDAL_CACHEMAX=``cachemax_mb`` (None: GDAL's default); the fastest run of each counts."""
    env = {"GDAL_CACHEMAX": None if cachemax_mb is None else str(cachemax_mb)}
    best: dict[str, dict] = {}
    for attempt in range(repeat):
        for name in ("extract-patchflow", "extract-naive"):
            run_dir = workdir / f"{tag}-{name}-{attempt}"
            run_dir.mkdir()
            warm_page_cache(raster_path())
            answer = run_child(name, run_dir, env=env)
            rate = answer["patches"] / answer["seconds"]
            print(f"  {name:<17} run {attempt + 1}/{repeat}: {answer['patches']} patches in {answer['seconds']:6.2f} s"
                  f" = {rate:5.0f} patches/s, {answer['cpu']:5.2f} CPU-s"
                  f"  (GDAL cache {answer['gdal_cache_mib']:.0f} MiB,"
                  f" peak RSS {answer['peak_rss_mib']:.0f} MiB)")
            if name not in best or answer["seconds"] < best[name]["seconds"]:
                best[name] = answer
    pf, naive = best["extract-patchflow"], best["extract-naive"]
    same = run_child("compare", workdir, pf["image"], naive["image"])["same"]
    print(f"  both outputs hold the same {pf['patches']} patches (order aside): {'yes' if same else 'NO'}")
    for name in best:
        for attempt in range(repeat):
            shutil.rmtree(workdir / f"{tag}-{name}-{attempt}", ignore_errors=True)
    return {"patchflow": pf["patches"] / pf["seconds"], "naive": naive["patches"] / naive["seconds"],
            "same": same, "cache_mib": pf["gdal_cache_mib"], "naive_cache_mib": naive["gdal_cache_mib"],
            "patchflow_rss": pf["peak_rss_mib"], "naive_rss": naive["peak_rss_mib"],
            "patchflow_cpu": pf["cpu"], "naive_cpu": naive["cpu"]}


def bench_sampling(workdir: Path, env: dict) -> dict:
    peaks = {}
    for size in LABEL_SIZES:
        answer = run_child("sample", workdir, str(size), env=env)
        peaks[size] = answer["peak_rss_mib"]
        print(f"  {size}x{size}: {answer['samples']} samples in {answer['seconds']:.2f} s, peak RSS "
              f"{answer['peak_rss_mib']:.0f} MiB  (GDAL cache {answer['gdal_cache_mib']:.0f} MiB)")
    return peaks


SECTIONS = ("extraction", "sampling", "training", "serving", "startup", "join", "dask")


def section_extraction(workdir: Path, repeat: int) -> tuple[list[tuple[str, str]], bool]:
    print(f"\n1. patch extraction: {N_POINTS} random points, {PATCH}x{PATCH} patches from a {RASTER_SIZE}x"
          f"{RASTER_SIZE} {RASTER_BANDS}-band Int16 GeoTIFF ({TILE}x{TILE} tiles, DEFLATE).\n"
          "   Each run in a fresh process (empty GDAL block cache), the same GDAL_CACHEMAX for both, the file\n"
          "   read beforehand into the OS page cache; PatchFlow and naive alternate, the fastest run counts.")
    print(f"1a. GDAL_CACHEMAX={EXTRACT_CACHEMAX_MB} MiB (a quarter of the raster's tiles), best of {repeat}:")
    bounded = bench_extraction(workdir, "bounded", EXTRACT_CACHEMAX_MB, repeat)
    print("1b. GDAL_CACHEMAX unset: each with its own default (PatchFlow: its strips and bounded cache; naive:\n"
          f"    GDAL's 5% of RAM, which may hold every tile), best of {repeat}:")
    default = bench_extraction(workdir, "default", None, repeat)
    rows = [
        (f"extraction, GDAL cache {bounded['cache_mib']:.0f} MiB: PatchFlow extract_patches",
         f"{bounded['patchflow']:6.0f} patches/s"),
        (f"extraction, GDAL cache {bounded['cache_mib']:.0f} MiB: naive read + write per patch",
         f"{bounded['naive']:6.0f} patches/s"),
        (f"extraction, GDAL cache {bounded['cache_mib']:.0f} MiB: ratio PatchFlow / naive",
         f"{bounded['patchflow'] / bounded['naive']:6.2f}   (>1: PatchFlow faster)"),
        ("extraction, PatchFlow default vs naive default: ratio PatchFlow / naive",
         f"{default['patchflow'] / default['naive']:6.2f}   ({default['patchflow']:.0f} / {default['naive']:.0f}"
         f" patches/s; target >= {EXTRACT_DEFAULT_TARGET}: "
         f"{'met' if default['patchflow'] / default['naive'] >= EXTRACT_DEFAULT_TARGET else 'NOT met'})"),
        ("extraction, PatchFlow default vs naive default: CPU-seconds",
         f"{default['patchflow_cpu']:6.2f} PatchFlow (all threads), {default['naive_cpu']:.2f} naive, on "
         f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} core(s)"),
        ("extraction, PatchFlow default vs naive default: peak RSS",
         f"{default['patchflow_rss']:6.0f} MiB PatchFlow (GDAL cache {default['cache_mib']:.0f} MiB), "
         f"{default['naive_rss']:.0f} MiB naive (GDAL cache {default['naive_cache_mib']:.0f} MiB)"),
    ]
    return rows, bounded["same"] and default["same"]


def section_sampling(workdir: Path) -> list[tuple[str, str]]:
    print(f"\n2. label-raster sampling: sample_label_raster, strategy constant, NUMBER={SAMPLE_NUMBER}, on "
          f"UInt8 rasters 4x apart in pixels.\n   Each run in a fresh process; peak RSS is its VmHWM.")
    baseline = run_child("baseline", workdir)["peak_rss_mib"]
    print(f"  imports only (python + numpy + GDAL + engine): peak RSS {baseline:.0f} MiB")
    print(f"2a. GDAL_CACHEMAX as the environment leaves it ({os.environ.get('GDAL_CACHEMAX', 'unset: 5% of RAM')}):")
    peaks = bench_sampling(workdir, {})
    print(f"2b. GDAL_CACHEMAX={SAMPLE_SMALL_CACHEMAX_MB} MiB (GDAL's block cache kept out of the picture):")
    peaks_small_cache = bench_sampling(workdir, {"GDAL_CACHEMAX": str(SAMPLE_SMALL_CACHEMAX_MB)})
    small, large = LABEL_SIZES
    rows = []
    for label, result in (("GDAL cache as in the environment", peaks),
                          (f"GDAL cache {SAMPLE_SMALL_CACHEMAX_MB} MiB", peaks_small_cache)):
        ratio = result[large] / result[small]
        rows += [
            (f"sampling peak RSS, {label}: {small}x{small}", f"{result[small]:6.0f} MiB"),
            (f"sampling peak RSS, {label}: {large}x{large}", f"{result[large]:6.0f} MiB"),
            (f"sampling peak RSS, {label}: ratio large / small",
             f"{ratio:6.2f}   (target about 1, <= {RSS_TARGET}: {'met' if ratio <= RSS_TARGET else 'NOT met'})"),
        ]
    return rows


def section_training(workdir: Path) -> list[tuple[str, str]]:
    print(f"\n3. training throughput: Keras fit, batch {TRAIN_BATCH}, Adam, shuffled, no augmentation; samples\n"
          "   streamed from disk (the record cache Train model writes from the patches-images) or held in memory\n"
          "   as numpy arrays (load_in_memory, the upper bound). Same samples, same initial weights. Each run in\n"
          f"   a fresh process: {TRAIN_EPOCHS} epochs, the first not timed; in-memory and streamed alternate,"
          f" {TRAIN_REPEAT} runs\n   each; a mode's rate is its fastest timed epoch (other processes on the"
          " machine only slow epochs down).")
    results = bench_training(workdir)
    rows = []
    for model, rates in results.items():
        ratio = rates["streamed"] / rates["memory"]
        rows += [
            (f"training {model}: in memory (Keras on numpy arrays)", f"{rates['memory']:6.0f} samples/s"),
            (f"training {model}: streamed from disk (record cache)", f"{rates['streamed']:6.0f} samples/s"),
            (f"training {model}: ratio streamed / in memory",
             f"{ratio:6.2f}   (target >= {TRAIN_TARGET}: {'met' if ratio >= TRAIN_TARGET else 'NOT met'})"),
        ]
    return rows


def section_serving(workdir: Path) -> list[tuple[str, str]]:
    small, large = SERVING_RSS_SIZES
    models = ", ".join(f"{m} (+ a second source {TWO_SOURCES[m]}x coarser)" if m in TWO_SOURCES else m
                       for m in SERVING_MODELS)
    print(f"\n4. serving: apply_model (MODE fully_convolutional, the engine's default tiles and margins) on a\n"
          f"   {SERVING_SIZE}x{SERVING_SIZE} window of the {RASTER_BANDS}-band Int16 image, zoo models {models} "
          "(untrained,\n   seeded); against the same tiles through the model alone (compute bound) and through "
          "GDAL read +\n   write alone (I/O bound), tile after tile without threads. Rates are input pixels of "
          "the window\n   per second. Each run in a fresh process, the image in the page cache; serving and bounds "
          f"alternate,\n   {SERVING_REPEAT} runs each, the fastest counts. Peak RSS (VmHWM) of serving at {small}x"
          f"{small} and {large}x{large}.")
    results = bench_serving(workdir)
    rows = []
    for model in SERVING_MODELS:
        r = results[model]
        serve, compute, io = r["serve"], r["compute"], r["io"]
        mpix = r["pixels"] / 1e6
        overlap, larger = serve / (compute + io), serve / max(compute, io)
        if r["gpu"]:
            overlap_note = "informative: a GPU does the compute"
            larger_note = f"target <= {SERVING_GPU_TARGET}: {'met' if larger <= SERVING_GPU_TARGET else 'NOT met'}"
        else:
            overlap_note = f"target <= {SERVING_CPU_TARGET}: {'met' if overlap <= SERVING_CPU_TARGET else 'NOT met'}"
            larger_note = "informative: 1 is perfect overlap"
        ratio = r["peaks"][large] / r["peaks"][small]
        rows += [
            (f"serving {model}: apply_model, fully convolutional", f"{mpix / serve:6.2f} Mpixel/s   ({serve:.2f} s)"),
            (f"serving {model}: model alone on the tiles (compute bound)",
             f"{mpix / compute:6.2f} Mpixel/s   ({compute:.2f} s)"),
            (f"serving {model}: GDAL read + write of the tiles (I/O bound)",
             f"{mpix / io:6.2f} Mpixel/s   ({io:.2f} s)"),
            (f"serving {model}: ratio serving / (compute + I/O)", f"{overlap:6.2f}   ({overlap_note})"),
            (f"serving {model}: ratio serving / max(compute, I/O)", f"{larger:6.2f}   ({larger_note})"),
            (f"serving {model}: ratio of CPU time serving / (compute + I/O)",
             f"{r['serve_cpu'] / r['bounds_cpu']:6.2f}   (informative: {r['serve_cpu']:.1f} / {r['bounds_cpu']:.1f} "
             "CPU-s, >1 is work the threads add)"),
            (f"serving {model}: peak RSS {small}x{small}", f"{r['peaks'][small]:6.0f} MiB"),
            (f"serving {model}: peak RSS {large}x{large}", f"{r['peaks'][large]:6.0f} MiB"),
            (f"serving {model}: peak RSS ratio large / small",
             f"{ratio:6.2f}   (target about 1, <= {RSS_TARGET}: {'met' if ratio <= RSS_TARGET else 'NOT met'})"),
        ]
    rows.append(("serving patch_cnn: MODE patch, a patch per pixel (informative)",
                 f"{results['patch mode'] / 1e6:6.2f} Mpixel/s   ({SERVING_PATCH_SIZE}x{SERVING_PATCH_SIZE} window)"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="extraction runs per method, best kept (default 3)")
    parser.add_argument("--only", action="append", choices=SECTIONS,
                        help="run only this section (may be given more than once; default: all)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(*args.child)

    started = time.perf_counter()
    sections = args.only or SECTIONS
    CACHE.mkdir(parents=True, exist_ok=True)
    workdir = CACHE / "runs"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir()
    print(f"PatchFlow benchmark ({os.cpu_count()} CPUs)")
    print(f"data ({CACHE.relative_to(ROOT)}, made once, then reused):")
    prepared = run_child("prepare", workdir)
    print(f"  python {sys.version.split()[0]}, numpy {prepared['numpy']}, GDAL {prepared['gdal']}")

    rows, same = [], True
    if "extraction" in sections:
        extraction_rows, same = section_extraction(workdir, max(1, args.repeat))
        rows += extraction_rows
    if "sampling" in sections:
        rows += section_sampling(workdir)
    if "training" in sections:
        rows += section_training(workdir)
    if "serving" in sections:
        rows += section_serving(workdir)
    if "startup" in sections:
        from startup import section_startup

        rows += section_startup(workdir, CACHE, DATA_VERSION, run_child, LINKS)
    if "join" in sections:
        from join import section_join

        rows += section_join(workdir, CACHE, DATA_VERSION, run_child)
    if "dask" in sections:
        from dask_serving import section_dask

        if "serving" not in sections:
            run_child("serving-data", workdir, env=SERVING_ENV)  # the window and the model of section 4
        warm_page_cache(raster_path())
        rows += section_dask(workdir, lambda *a: run_child(*a, env=SERVING_ENV))
    shutil.rmtree(workdir, ignore_errors=True)

    width = max(len(label) for label, _ in rows)
    rule = "-" * (width + 50)
    print(f"\n{rule}\nPatchFlow benchmark summary\n{rule}")
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print(rule)
    print(f"data preparation {prepared['seconds']:.1f} s; whole benchmark {time.perf_counter() - started:.1f} s")
    if not same:
        print("bench: PatchFlow and the naive loop did not extract the same patches", file=sys.stderr)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
