"""Does super-resolution help? -- the NC Landsat-7 scene (``scripts/sr_experiment.py --scene nc``).

Unlike the Spot-6 scene, the NC scene has complete land-cover reference polygons (7 classes), so the
four images can be compared on a land-cover map. Steps (all Processing algorithms of the plugin):

1. HR = landsat_multiband.tif (28.5 m, 5 bands), cropped to a multiple of 4 px (488 x 440) so the LR
   grid covers exactly the same ground; LR = HR degraded x4 (114 m) by Build super-resolution dataset;
2. the SR generator (zoo sr_generator, width 32) trained on LR/HR pairs of the whole scene (8-px LR
   patches, step 4). The land-cover labels play no part in SR training (it learns LR -> HR radiometry
   only), so training it on the whole scene does not leak the validation labels;
3. SR image = Apply model on the LR; bicubic image = the LR warped (cubic) onto the HR grid;
4. samples from the polygons on the HR grid, split spatially (Grid split, 4-patch blocks, seed 3, as
   the demo) into training / validation points: the same points for every image;
5. per image, the same per-pixel Random Forest (band values at each point, 1 px patches) trained on the
   training points, the image classified, the map assessed at the validation points (the 114 m LR map
   is classified on its own grid and read at the same points).
"""

from __future__ import annotations

import csv
import html
import time
from pathlib import Path

from osgeo import gdal

ROOT = Path(__file__).resolve().parent.parent
SCALE = 4
IMAGE = "landsat_multiband.tif"
POLYGONS = "landsat96_polygons.shp"
SPLIT_SEED = 3  # the demo's
SAMPLE_PATCH = 16  # sample and split as the demo does (points whose 16-px patch fits the scene)
ROWS = {"lr": ("a", "LR image (HR degraded x4)"), "bicubic": ("b", "bicubic-upsampled LR"),
        "sr": ("c", "SR image"), "hr": ("d", "HR image")}

gdal.UseExceptions()


def default_data() -> Path:
    for candidate in (ROOT / ".cache" / "demo-data" / "nc", ROOT.parent / "shared" / "data" / "nc_landsat7"):
        if (candidate / IMAGE).exists():
            return candidate
    return ROOT / ".cache" / "demo-data" / "nc"


def crop_hr(data: Path, out: Path) -> Path:
    """The HR image cropped to whole LR pixels (the degraded image drops the last partial blocks)."""
    source = gdal.Open(str(data / IMAGE))
    width, height = source.RasterXSize // SCALE * SCALE, source.RasterYSize // SCALE * SCALE
    path = out / "hr.tif"
    gdal.Translate(str(path), source, srcWin=[0, 0, width, height])
    return path


def make_images(hr: Path, out: Path, sr_epochs: int, run) -> dict[str, Path]:
    """LR (degraded), SR (generator trained on the scene's LR/HR pairs) and bicubic images."""
    sr = out / "sr"
    run("patchflow:buildsrdataset", {
        "HR": [str(hr)], "SCALE": SCALE, "PATCH_SIZE": 8, "STEP": 4, "VALID": 0.2, "SEED": 0,
        "OUTPUT_TRAIN": str(sr / "train.json"), "OUTPUT_VALID": str(sr / "valid.json"),
        "OUTPUT_LR": str(out / "lr.tif")})
    run("patchflow:trainmodel", {
        "TRAIN": str(sr / "train.json"), "VALID": str(sr / "valid.json"), "ARCHITECTURE": 3, "WIDTH": 32,
        "EPOCHS": sr_epochs, "BATCH_SIZE": 16, "SEED": 0, "OVERWRITE": True, "OUTPUT": str(sr / "model")})
    run("patchflow:applymodel", {
        "MODEL": str(sr / "model"), "SOURCE1": [str(out / "lr.tif")], "OUTPUTS": "image",
        "OUTPUT": str(out / "sr.tif")})
    reference = gdal.Open(str(hr))
    x0, px, _, y0, _, py = reference.GetGeoTransform()
    bounds = (x0, y0 + py * reference.RasterYSize, x0 + px * reference.RasterXSize, y0)
    gdal.Warp(str(out / "bicubic.tif"), str(out / "lr.tif"), outputBounds=bounds, width=reference.RasterXSize,
              height=reference.RasterYSize, resampleAlg="cubic")
    return {"lr": out / "lr.tif", "bicubic": out / "bicubic.tif", "sr": out / "sr.tif", "hr": hr}


def split_samples(data: Path, hr: Path, out: Path, run) -> tuple[Path, Path, dict]:
    samples, train, valid = out / "samples.gpkg", out / "train.gpkg", out / "valid.gpkg"
    run("patchflow:samplefromvector", {
        "INPUT": str(data / POLYGONS), "FIELD": "label", "RASTER": str(hr), "STRATEGY": 1,
        "PATCH_SIZE": SAMPLE_PATCH, "OUTPUT": str(samples)})
    result = run("patchflow:gridsplit", {
        "INPUT": str(hr), "SAMPLES": str(samples), "CLASS_FIELD": "class", "PATCH_SIZE": SAMPLE_PATCH,
        "BLOCK_SIZE": 4, "SEED": SPLIT_SEED, "TRAIN": 0.7, "VALID": 0.3, "TEST": 0,
        "OUTPUT_TRAIN": str(train), "OUTPUT_VALID": str(valid)})
    return train, valid, result


def run_rf(key: str, image: Path, train: Path, valid: Path, out: Path, run) -> tuple[Path, dict]:
    """Per-pixel RF: 1-px patches at the points, trained, the image classified, the map assessed."""
    folder = out / "rf" / key
    for name, points in (("train", train), ("valid", valid)):
        run("patchflow:extractpatches", {
            "INPUT": str(points), "SOURCE1": [str(image)], "PATCH_SIZE1": 1, "CLASS_FIELD": "class",
            "OUTPUT": str(folder / f"{name}.json")})
    run("patchflow:trainclassifier", {
        "DATASET": str(folder / "train.json"), "VALID": str(folder / "valid.json"), "SEED": 0,
        "OUTPUT": str(folder / "rf.skops")})
    run("patchflow:classify", {
        "INPUT": [str(image)], "CLASSIFIER": str(folder / "rf.skops"), "OUTPUT": str(folder / "map.tif")})
    scores = out / "reports" / f"rf_{key}.csv"
    result = run("patchflow:assessaccuracy", {
        "INPUT": str(folder / "map.tif"), "REFERENCE": str(valid), "CLASS_FIELD": "class",
        "OUTPUT_CSV": str(scores), "OUTPUT_HTML": str(scores.with_suffix(".html"))})
    return scores, result


def write_table(rows: list[dict], columns: list[str], out: Path, stem: str, title: str,
                text: str) -> tuple[Path, Path]:
    """``<stem>.csv`` and ``<stem>.html`` in ``out``: one row per image (a column a row lacks: blank)."""
    rows = [{c: row.get(c, "") for c in columns} for row in rows]
    csv_path, html_path = out / f"{stem}.csv", out / f"{stem}.html"
    with open(csv_path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()} for row in rows)
    cells = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(f'{row[c]:.3f}' if isinstance(row[c], float) else str(row[c]))}"
                                     "</td>" for c in columns) + "</tr>" for row in rows)
    html_path.write_text(
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px 8px}table{border-collapse:"
        f"collapse}}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p><table><tr>{cells}</tr>{body}</table></body></html>\n", encoding="utf-8")
    return csv_path, html_path


NAMES = {"lr": "LR", "bicubic": "bicubic", "sr": "SR", "hr": "HR"}
QUESTIONS = (("sr", "bicubic"), ("sr", "hr"), ("bicubic", "lr"))  # the pairs the question is about


def significance(reports: dict[str, Path], out: Path, stem: str, run) -> list[str]:
    """Compare accuracy over the four images' reports (same points): ``<stem>.csv/.html`` with bootstrap
    intervals and McNemar's test for every pair; returns the sentences for SR vs bicubic, SR vs HR and
    bicubic vs LR (empty when the reports carry no pairs)."""
    result = run("patchflow:compareaccuracy", {
        "REPORTS": [str(reports[key]) for key in reports], "NAMES": ";".join(NAMES[key] for key in reports),
        "OUTPUT_CSV": str(out / f"{stem}.csv"), "OUTPUT_HTML": str(out / f"{stem}.html")})
    table = result.get("SIGNIFICANCE_CSV")
    return question_sentences(Path(table), NAMES) if table else []


def question_sentences(table: Path, names: dict[str, str]) -> list[str]:
    """The conclusions of Compare accuracy's significance table (``<comparison>_significance.csv``) for
    SR vs bicubic, SR vs HR and bicubic vs LR; ``names``: image key -> the map's name in the table."""
    if not table.exists():
        return []
    with open(table, newline="", encoding="utf-8") as stream:
        tests = {frozenset((row["first"], row["second"])): row["conclusion"] for row in csv.DictReader(stream)}
    return [tests[pair] for pair in (frozenset((names[a], names[b])) for a, b in QUESTIONS) if pair in tests]


def text_table(rows: list[dict], columns: list[str]) -> str:
    rows = [{c: row.get(c, "") for c in columns} for row in rows]
    lines = ["  ".join(f"{c[:12]:>12}" for c in columns)]
    for row in rows:
        lines.append("  ".join(f"{row[c]:>12.3f}" if isinstance(row[c], float) else f"{str(row[c])[:12]:>12}"
                               for c in columns))
    return "\n".join(lines)


def run_nc(data: Path, out: Path, sr_epochs: int, run, read_scores) -> int:
    """The whole NC experiment; ``run(algorithm, parameters)`` runs a Processing algorithm."""
    started, timings = time.monotonic(), {}
    (out / "reports").mkdir(parents=True)
    hr = crop_hr(data, out)
    images = make_images(hr, out, sr_epochs, run)
    timings["LR, SR training and serving, bicubic"] = time.monotonic() - started
    start = time.monotonic()
    train, valid, split = split_samples(data, hr, out, run)
    timings["samples and split"] = time.monotonic() - start
    print(f"points: {split.get('COUNT_TRAIN')} training, {split.get('COUNT_VALID')} validation")
    rows, classes, reports = [], [], {}
    for key, image in images.items():
        start = time.monotonic()
        scores_csv, result = run_rf(key, image, train, valid, out, run)
        reports[key] = scores_csv
        timings[f"RF {key}"] = time.monotonic() - start
        scores = read_scores(scores_csv)
        classes += [name for name in scores if name.startswith("F1 ") and name not in classes]
        pixel = abs(gdal.Open(str(image)).GetGeoTransform()[1])
        rows.append({"row": ROWS[key][0], "image": ROWS[key][1], "pixel": f"{pixel:g} m", **scores,
                     "macro F1": float(result["MACRO_F1"]), "points": int(result.get("N", 0))})
    columns = ["row", "image", "pixel", "kappa", "OA", "macro F1", "points", *classes]
    text = ("The same per-pixel Random Forest (5 band values, seed 0) trained on each image at the same training "
            "points (polygon samples, spatial grid split, seed 3) and its map assessed at the same validation "
            f"points. SR generator: trained on the whole scene's LR/HR pairs ({sr_epochs} epochs); the land-cover "
            "labels take no part in it. Details: reports/*.html.")
    csv_path, html_path = write_table(rows, columns, out, "comparison",
                                      "Does super-resolution help? NC Landsat-7, 7 land-cover classes", text)
    verdicts = significance(reports, out, "compared", run)
    print(f"\nDoes super-resolution help? NC Landsat-7 ({time.monotonic() - started:.0f} s)\n\n"
          f"per-pixel Random Forest:\n{text_table(rows, columns)}\n\n"
          + "".join(f"{sentence}\n" for sentence in verdicts) + "\n"
          + "".join(f"{name}: {seconds:.0f} s\n" for name, seconds in timings.items())
          + f"\ntables: {csv_path}\n        {html_path}\n        {out / 'compared.html'} (bootstrap "
            "intervals, McNemar's test for every pair)")
    return 0
