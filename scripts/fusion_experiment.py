"""Multi-source fusion against single-source models on NC Landsat-7 (issue 13): one split, several models.

The demo's split: every pixel of the NC polygons as a 16 px patch centre (sample_vector STRATEGY all),
grid_split 0.6/0.2/0.2 in blocks of 4 patches, seed 3; the same train/valid/test points for every model.
Source 1 is ``landsat_multiband.tif`` (bands 1-5 at 28.5 m). The models compared:

* ``s1``: patch_cnn on source 1 alone (16 px);
* ``s1+b7@57``: fusion_cnn on source 1 (16 px) + band 7 (SWIR, ``lsat7_2000_70.tif``, not in source 1)
  averaged to 57 m (gdal.Warp average; 8 px patches covering the same ground);
* ``s1b7@28.5``: patch_cnn on source 1 stacked with band 7 at 28.5 m (6 bands, "everything on one grid");
* ``s1+s1@57``: fusion_cnn on source 1 + source 1 averaged to 57 m (no new information: a control);
* ``s1-all``, ``s1+s1@57-all``: patch_cnn on source 1, fusion_cnn on source 1 + its 57 m average, trained on
  all the training points of source 1 (see below; the same valid and test patches as the others).

Band 7 has nodata (a larger masked area) where bands 1-5 have data, and Extract patches drops the patches
that touch nodata: every model but the ``-all`` ones gets only the points that all four datasets keep
(``*_common.gpkg``; on NC that drops training points only, in the frame where band 7 is nodata).

Each model is trained with Train model (EPOCHS, batch 32, augmentation, class weights, REPEATS seeds 0..n-1)
and the table gives the validation and test kappa, mean +- sample sd over the seeds (and the test OA).
Usage (the package is imported as ``patchflow`` through the link ``.cache/plugins/patchflow``, made if
missing, as tests/conftest.py does)::

    .venv/bin/python scripts/fusion_experiment.py OUT_FOLDER [--epochs 30] [--repeats 3] [--models s1 s1+b7@57]

The patches are extracted once into OUT_FOLDER and reused by later runs; results.json holds the figures
(results<TAG>.json and model<TAG>_* with --tag TAG).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINKS = os.path.join(HERE, ".cache", "plugins")  # the plugin folder imported as package patchflow (as tests do)
os.makedirs(LINKS, exist_ok=True)
if not os.path.exists(os.path.join(LINKS, "patchflow")):
    os.symlink(HERE, os.path.join(LINKS, "patchflow"))
sys.path.insert(0, LINKS)

DATA = os.path.join(os.path.dirname(HERE), "shared", "data", "nc_landsat7")
SPLITS = ("train", "valid", "test")
# name: (architecture, dataset kind)
MODELS = {"s1": ("patch_cnn", "single"), "s1+b7@57": ("fusion_cnn", "fusion_b7"),
          "s1b7@28.5": ("patch_cnn", "stack6"), "s1+s1@57": ("fusion_cnn", "fusion_avg"),
          "s1-all": ("patch_cnn", "single_all"), "s1+s1@57-all": ("fusion_cnn", "fusion_avg_all")}


def run(operation: str, **parameters):
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    return run_job(protocol.Job(operation, parameters, "fusion_experiment"), Reporter())


def rasters(out: str, data: str) -> dict[str, str]:
    """The rasters: source 1, band 7 at 57 m, source 1 at 57 m, source 1 + band 7 stacked at 28.5 m."""
    from osgeo import gdal

    gdal.UseExceptions()
    image, band7 = os.path.join(data, "landsat_multiband.tif"), os.path.join(data, "lsat7_2000_70.tif")
    paths = {"image": image, "b7_57": f"{out}/b7_57m.tif", "s1_57": f"{out}/landsat_57m.tif",
             "stack6": f"{out}/landsat_b1-5_b7.tif"}
    if not os.path.exists(paths["b7_57"]):
        gdal.Warp(paths["b7_57"], band7, xRes=57.0, yRes=57.0, resampleAlg="average", outputType=gdal.GDT_Float32)
    if not os.path.exists(paths["s1_57"]):
        gdal.Warp(paths["s1_57"], image, xRes=57.0, yRes=57.0, resampleAlg="average")
    if not os.path.exists(paths["stack6"]):  # bands 1-5 then band 7, Float32, source 1's grid
        first, second = gdal.Open(image), gdal.Open(band7)
        partial = paths["stack6"] + ".partial.tif"
        target = gdal.GetDriverByName("GTiff").Create(partial, first.RasterXSize, first.RasterYSize, 6,
                                                       gdal.GDT_Float32)
        target.SetGeoTransform(first.GetGeoTransform())
        target.SetProjection(first.GetProjection())
        for index, band in enumerate([first.GetRasterBand(b) for b in range(1, 6)] + [second.GetRasterBand(1)]):
            target.GetRasterBand(index + 1).WriteArray(band.ReadAsArray().astype("float32"))
            if band.GetNoDataValue() is not None:
                target.GetRasterBand(index + 1).SetNoDataValue(band.GetNoDataValue())
        target = None
        os.replace(partial, paths["stack6"])
    return paths


def datasets(out: str, data: str) -> dict[str, dict[str, str]]:
    """{kind: {split: manifest}}, extracting what is not there yet."""
    paths = rasters(out, data)
    if not os.path.exists(f"{out}/test.gpkg"):
        run("sample_vector", INPUT=os.path.join(data, "landsat96_polygons.shp"), FIELD="label",
            RASTER=paths["image"], STRATEGY="all", PATCH_SIZE=16, OUTPUT=f"{out}/samples.gpkg")
        run("grid_split", INPUT=paths["image"], SAMPLES=f"{out}/samples.gpkg", CLASS_FIELD="class", PATCH_SIZE=16,
            BLOCK_SIZE=4, SEED=3, TRAIN=0.6, VALID=0.2, TEST=0.2,
            **{f"OUTPUT_{split.upper()}": f"{out}/{split}.gpkg" for split in SPLITS})
    sources = {"single": {"SOURCE1": paths["image"], "PATCH_SIZE1": 16},
               "stack6": {"SOURCE1": paths["stack6"], "PATCH_SIZE1": 16},
               "fusion_b7": {"SOURCE1": paths["image"], "PATCH_SIZE1": 16, "SOURCE2": paths["b7_57"],
                             "PATCH_SIZE2": 8},
               "fusion_avg": {"SOURCE1": paths["image"], "PATCH_SIZE1": 16, "SOURCE2": paths["s1_57"],
                              "PATCH_SIZE2": 8}}
    # Band 7 has nodata where bands 1-5 have data (Extract patches drops those patches): every model gets the
    # points that all the datasets keep, so that they learn and are scored on the same patches.
    for split in SPLITS:
        for kind, given in sources.items():
            extract(f"{out}/all/{split}_{kind}/d.json", f"{out}/{split}.gpkg", given)
        if not os.path.exists(f"{out}/{split}_common.gpkg"):
            kept = common_points(f"{out}/{split}.gpkg", [f"{out}/all/{split}_{kind}/d_positions.csv" for kind in
                                                         sources], paths["image"], f"{out}/{split}_common.gpkg")
            print(f"{split}: {kept} points kept in every dataset", flush=True)
    found: dict[str, dict[str, str]] = {}
    for kind, given in sources.items():
        found[kind] = {split: extract(f"{out}/{split}_{kind}/d.json", f"{out}/{split}_common.gpkg", given)
                       for split in SPLITS}
    for kind in ("single", "fusion_avg"):
        found[f"{kind}_all"] = {split: f"{out}/all/{split}_{kind}/d.json" for split in SPLITS}
    counts = {kind: [manifest_count(found[kind][split]) for split in SPLITS] for kind in found}
    if len({tuple(c) for kind, c in counts.items() if not kind.endswith("_all")}) != 1:
        raise SystemExit(f"the datasets do not hold the same patches: {counts}")
    print(f"train/valid/test patches of every dataset: {counts['single']} (-all: {counts['single_all']})",
          flush=True)
    return found


def extract(manifest: str, points: str, given: dict) -> str:
    if not os.path.exists(manifest):
        run("extract_patches", INPUT=points, CLASS_FIELD="class", OUTPUT=manifest, **given)
    return manifest


def manifest_count(manifest: str) -> int:
    with open(manifest, encoding="utf-8") as handle:
        return int(json.load(handle)["n_patches"])


def common_points(points: str, positions: list[str], image: str, output: str) -> int:
    """Writes the points of ``points`` whose patch is in every positions file. A point is matched by its pixel
    of source 1 (``image``): a 16 px patch's position is the corner of its centre pixel (pixel 8, 8)."""
    import numpy as np
    from osgeo import gdal, ogr

    ogr.UseExceptions()
    grid = gdal.Open(image)
    x0, dx, _, y0, _, dy = grid.GetGeoTransform()
    grid = None
    kept = []
    for path in positions:
        xy = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        kept.append({(int(c), int(r)) for c, r in zip(np.round((xy[:, 0] - x0) / dx), np.round((xy[:, 1] - y0) / dy))})
    source = ogr.Open(points)
    layer = source.GetLayer(0)
    keep, matched = [], [0] * len(kept)
    for feature in layer:
        point = feature.GetGeometryRef()
        pixel = (int(np.floor((point.GetX() - x0) / dx)), int(np.floor((point.GetY() - y0) / dy)))
        found = [pixel in pixels for pixels in kept]
        matched = [m + f for m, f in zip(matched, found)]
        if all(found):
            keep.append(feature.GetFID())
    if matched != [len(pixels) for pixels in kept]:
        raise SystemExit(f"{points}: the patches' positions do not match the points ({matched} of "
                         f"{[len(pixels) for pixels in kept]})")
    layer.SetAttributeFilter(f"fid IN ({','.join(map(str, keep))})" if keep else "0")
    target = ogr.GetDriverByName("GPKG").CreateDataSource(output)
    target.CopyLayer(layer, layer.GetName())
    target = None
    source = None
    return len(keep)


def train(out: str, name: str, manifests: dict[str, str], architecture: str, epochs: int, repeats: int,
          device: str, tag: str = "") -> dict:
    start = time.time()
    result = run("train_model", TRAIN=manifests["train"], VALID=manifests["valid"], TEST=manifests["test"],
                 ARCHITECTURE=architecture, EPOCHS=epochs, BATCH_SIZE=32, AUGMENT=True, CLASS_WEIGHTS=True, SEED=0,
                 REPEATS=repeats, DEVICE=device, OVERWRITE=True, OUTPUT=f"{out}/model{tag}_{name.replace('@', '_')}")
    figures = {key: result.get(key) for key in sorted(result) if "KAPPA" in key or "OA_" in key}
    figures.update(name=name, architecture=architecture, seconds=round(time.time() - start),
                   epochs=epochs, repeats=repeats)
    return figures


def cell(figures: dict, key: str) -> str:
    mean, sd = figures.get(f"{key}_MEAN"), figures.get(f"{key}_SD")
    if mean is None:
        return "-"
    return f"{mean:.3f} ± {sd:.3f}" if sd is not None else f"{mean:.3f}"


def table(rows: list[dict]) -> str:
    lines = ["| model | architecture | valid kappa | test kappa | test OA | s |", "|---|---|---|---|---|---|"]
    for figures in rows:
        lines.append(f"| {figures['name']} | {figures['architecture']} | {cell(figures, 'KAPPA')} | "
                     f"{cell(figures, 'TEST_KAPPA')} | {cell(figures, 'TEST_OA')} | {figures['seconds']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="output folder (patches, models, results.json)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", default=DATA, help="the NC Landsat-7 folder")
    parser.add_argument("--tag", default="", help="added to the model folders' and results file's names")
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    found = datasets(out, args.data)
    rows = []
    for name in args.models:
        architecture, kind = MODELS[name]
        rows.append(train(out, name, found[kind], architecture, args.epochs, args.repeats, args.device,
                          args.tag))
        print(json.dumps(rows[-1]), flush=True)
        with open(f"{out}/results{args.tag}.json", "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1, allow_nan=False)
    print(table(rows))


if __name__ == "__main__":
    main()
