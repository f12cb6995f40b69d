#!/usr/bin/env python3
"""Does the training report predict the map? FCNN and U-Net on real label rasters, several seeds:
the kappa Train model reports on the validation set against the kappa of the map Apply model serves,
read at the same validation pixels (the centre crop of every validation label patch).

    .venv/bin/python scripts/report_vs_map.py [--scene nc|spot6|both] [--seeds 0 1 2] [--epochs 10]
                                              [--width 8] [--samples 20] [--output DIR]

nc: Landsat-7 (landsat_multiband.tif) with landsat96_labelled_pixels.tif (the demo data, or
../shared/data/nc_landsat7); spot6: the Spot-6 Amsterdam scene with its building labels (needs
../shared/data/spot6_amsterdam). Patches: 16 px for the FCNN on NC, 64 px otherwise (the U-Net
needs 64). It also prints what the old per-patch scoring would have reported. tests/engine/
test_served_scores.py runs the same functions with tiny settings.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
LINKS = ROOT / ".cache" / "plugins"  # the plugin folder imported as the package 'patchflow' (as the tests do)
sys.path.insert(0, str(Path(__file__).resolve().parent))


def kappa(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Cohen's kappa, computed directly."""
    ids = np.union1d(truth, predicted)
    t, p = np.searchsorted(ids, truth), np.searchsorted(ids, predicted)
    matrix = np.bincount(t * len(ids) + p, minlength=len(ids) ** 2).reshape(len(ids), len(ids)).astype(float)
    total = matrix.sum()
    observed = np.trace(matrix) / total
    expected = (matrix.sum(0) * matrix.sum(1)).sum() / total ** 2
    return float((observed - expected) / (1 - expected))


def validation_pixels(manifest_path: str, labels: str, crop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, label values) of the centre ``crop`` x ``crop`` pixels of each validation patch, on the label
    raster's grid (the image's), found from the patch centres the dataset records; label nodata left out."""
    from osgeo import gdal

    manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    with open(Path(manifest_path).parent / manifest["positions"]["file"], encoding="utf-8") as handle:
        centres = np.array([[float(x), float(y)] for x, y in list(csv.reader(handle))[1:]])
    ds = gdal.Open(labels)
    x0, dx, _, y0, _, dy = ds.GetGeoTransform()
    values, nodata = ds.ReadAsArray(), ds.GetRasterBand(1).GetNoDataValue()
    rows, cols = [], []
    for x, y in centres:  # a patch centre lies on a pixel corner (even sizes): the crop starts crop/2 before it
        c0, r0 = int(round((x - x0) / dx)) - crop // 2, int(round((y - y0) / dy)) - crop // 2
        r, c = np.mgrid[r0:r0 + crop, c0:c0 + crop]
        rows.append(r.ravel())
        cols.append(c.ravel())
    rows_a, cols_a = np.concatenate(rows), np.concatenate(cols)
    found = values[rows_a, cols_a]
    keep = found != nodata
    return rows_a[keep], cols_a[keep], found[keep]


def map_kappa(map_path: str, rows: np.ndarray, cols: np.ndarray, truth: np.ndarray) -> float:
    from osgeo import gdal

    ds = gdal.Open(map_path)
    values, nodata = ds.ReadAsArray(), ds.GetRasterBand(1).GetNoDataValue()
    predicted = values[rows, cols]
    keep = predicted != nodata
    return kappa(truth[keep].astype(np.int64), predicted[keep].astype(np.int64))


def datasets(run_op, image: str, labels: str, folder: Path, size: int, number: int) -> tuple[str, str]:
    """A training and a validation dataset of ``size`` px image and label patches around labelled pixels."""
    sets = []
    for name, seed in (("train", 0), ("valid", 1)):
        points = str(folder / f"{name}.gpkg")
        run_op("sample_label_raster", INPUT=labels, NUMBER=number, PATCH_SIZE=size, SEED=seed, OUTPUT=points)
        sets.append(run_op("extract_patches", INPUT=points, SOURCE1=[image], PATCH_SIZE1=size, LABEL_RASTER=labels,
                           OUTPUT=str(folder / name / f"{name}.json"))[0]["OUTPUT"])
    return sets[0], sets[1]


def report_and_map(run_op, train: str, valid: str, image: str, labels: str, folder: Path, architecture: str,
                   seed: int, width: int, epochs: int, size: int) -> tuple[float, float, str, float]:
    """(report kappa, served map kappa, the report's HTML, the per-patch kappa the report also gives)."""
    model = folder / f"{architecture}_{seed}"
    trained, _ = run_op("train_model", TRAIN=train, VALID=valid, ARCHITECTURE=architecture, EPOCHS=epochs,
                        WIDTH=width, SEED=seed, BATCH_SIZE=16, OUTPUT=str(model))
    served, _ = run_op("apply_model", MODEL=str(model), SOURCE1=[image],
                       OUTPUT=str(folder / f"{architecture}_{seed}.tif"))
    rows, cols, truth = validation_pixels(valid, labels, size)
    report = (model / "report.html").read_text(encoding="utf-8")
    alone = re.search(r"on the patches alone \(as trained\) the figures would be OA [0-9.]+, kappa "
                      r"(-?[0-9]+\.[0-9]+)", report)
    mapped = map_kappa(served["OUTPUT"], rows, cols, truth)
    per_patch = float(alone.group(1)) if alone else float("nan")
    print(f"{architecture} seed {seed}: report kappa {trained['KAPPA']:.4f}, map kappa {mapped:.4f} (per patch, "
          f"as before: {per_patch:.4f})", flush=True)
    return trained["KAPPA"], mapped, report, per_patch


def engine_runner():
    """run_op(operation, **parameters) -> (outputs, reporter): the engine in this process."""
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    def run(operation: str, **parameters):
        reporter = Reporter()
        return run_job(protocol.Job(operation, parameters, "report_vs_map"), reporter), reporter

    return run


def scene_inputs(scene: str, folder: Path) -> tuple[str, str]:
    """(image, label raster) of a scene."""
    if scene == "nc":
        import sr_experiment

        data = sr_experiment.nc_data()
        return str(data / "landsat_multiband.tif"), str(data / "landsat96_labelled_pixels.tif")
    import amsterdam_labels

    labels = folder / "buildings.tif"
    amsterdam_labels.make_labels(amsterdam_labels.DEFAULT_DATA, labels)
    return str(amsterdam_labels.DEFAULT_DATA / amsterdam_labels.SCENE), str(labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", choices=("nc", "spot6", "both"), default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--samples", type=int, default=20, help="label pixels per class for each set")
    parser.add_argument("--output", type=Path, help="default: a temporary folder, removed at the end")
    args = parser.parse_args(argv)
    LINKS.mkdir(parents=True, exist_ok=True)
    if not (LINKS / "patchflow").exists():
        (LINKS / "patchflow").symlink_to(ROOT)
    sys.path.insert(0, str(LINKS))
    run_op = engine_runner()
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        out = args.output or Path(temporary)
        for scene in (("nc", "spot6") if args.scene == "both" else (args.scene,)):
            image, labels = scene_inputs(scene, out / scene)
            for architecture in ("fcnn", "unet"):
                size = 16 if scene == "nc" and architecture == "fcnn" else 64
                folder = out / scene / architecture
                train, valid = datasets(run_op, image, labels, folder, size, args.samples)
                for seed in args.seeds:
                    reported, mapped, _, per_patch = report_and_map(run_op, train, valid, image, labels, folder,
                                                                    architecture, seed, args.width, args.epochs, size)
                    rows.append((scene, architecture, seed, reported, mapped, per_patch))
    print(f"\n{'scene':<7}{'model':<7}{'seed':>5}{'report':>9}{'map':>9}{'|diff|':>9}{'per patch':>11}")
    for scene, architecture, seed, reported, mapped, per_patch in rows:
        print(f"{scene:<7}{architecture:<7}{seed:>5}{reported:>9.4f}{mapped:>9.4f}{abs(reported - mapped):>9.4f}"
              f"{per_patch:>11.4f}")
    worst = max(abs(r[3] - r[4]) for r in rows)
    print(f"\nlargest |report kappa - map kappa|: {worst:.4f} (bar: 0.02)")
    return 0 if worst <= 0.02 else 1


if __name__ == "__main__":
    sys.exit(main())
