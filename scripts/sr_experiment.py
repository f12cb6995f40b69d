#!/usr/bin/env python3
"""Does super-resolution help? patchflow:comparesr from the command line, on a bundled scene or on your data.

    make sr-experiment [SCENE=spot6|nc]              # a bundled scene (default: spot6)
    make sr-experiment HR=hr.tif LABELS=labels.shp CLASS_FIELD=class [LR=lr.tif]
    .venv/bin/python scripts/sr_experiment.py --scene spot6|nc [--data DIR]
    .venv/bin/python scripts/sr_experiment.py --hr HR --labels LABELS [--class-field FIELD] [--lr LR]
        [--classifier fcnn|unet|rf] [--repeats N] [--scale N] [--train-share S] [--patch-size N]
        [--epochs N] [--sr-epochs N] [--output DIR]

Runs the algorithm Does super-resolution help? (comparesr) through Processing: LR (``--lr``, else the HR
degraded ×scale), bicubic, SR trained on the training part only, and HR, the same classifier trained on
each with seeds 0 .. repeats - 1, scored on the held-out part (the right of the width). ``--labels`` is a
label raster on the HR grid, or polygons or points (then ``--class-field``). The bundled scenes:

* ``spot6``: fake_spot6.jp2 (1.5 m, ../shared/data/spot6_amsterdam) with the building labels that
  scripts/amsterdam_labels.py locates in it (1 building, 2 background; written to OUTPUT/inputs/labels.tif);
* ``nc``: the NC Landsat-7 scene (28.5 m, the demo data) cropped to where its land-cover polygons are
  (columns 60-419, rows 36-439; OUTPUT/inputs/hr.tif), labels landsat96_polygons.shp, field ``label``,
  the FCNN on 32-px patches.

Prints the table (kappa, OA, macro F1 as mean ± sd over the repeats, with the bootstrap 95 % interval),
the tests, the SR image's quality and the answer; writes the comparison folder to OUTPUT/comparison
(comparison.html first; default OUTPUT: sr-experiment-output/<scene or HR name>) and the log to
OUTPUT/experiment.log.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "sr-experiment-output"
CLASSIFIERS = ("fcnn", "unet", "rf")  # comparesr's CLASSIFIER values, in order (checked against its declaration)
NC_IMAGE, NC_POLYGONS, NC_FIELD = "landsat_multiband.tif", "landsat96_polygons.shp", "label"
NC_CROP = (60, 36, 360, 404)  # x, y, width, height: where the reference polygons are (whole LR pixels at x4)
NC_PATCH_SIZE = 32  # the FCNN's patches on the 360-px-wide NC crop
NAMES = {"lr": "LR", "bicubic": "bicubic", "sr": "SR", "hr": "HR"}


def nc_data() -> Path:
    """The NC demo data: make data's copy, else ../shared/data/nc_landsat7."""
    for candidate in (ROOT / ".cache" / "demo-data" / "nc", ROOT.parent / "shared" / "data" / "nc_landsat7"):
        if (candidate / NC_IMAGE).exists():
            return candidate
    return ROOT / ".cache" / "demo-data" / "nc"


def is_vector(path: Path) -> bool:
    from osgeo import gdal

    try:
        ds = gdal.OpenEx(str(path), gdal.OF_VECTOR)
    except RuntimeError:
        return False
    return ds is not None and ds.GetLayerCount() > 0


def scene_inputs(args: argparse.Namespace, inputs: Path) -> dict:
    """comparesr's HR, LR and label parameters, and the patch size, for the scene or the given data."""
    from osgeo import gdal

    gdal.UseExceptions()
    if args.scene == "nc":
        data = (args.data or nc_data()).resolve()
        if not (data / NC_IMAGE).exists():
            raise SystemExit(f"sr_experiment: {data / NC_IMAGE} is missing: run scripts/get_demo_data.sh (make data) "
                             "or pass --data DIR.")
        inputs.mkdir(parents=True, exist_ok=True)
        gdal.Translate(str(inputs / "hr.tif"), str(data / NC_IMAGE), srcWin=list(NC_CROP))
        return {"HR": str(inputs / "hr.tif"), "REFERENCE": str(data / NC_POLYGONS), "CLASS_FIELD": NC_FIELD,
                "PATCH_SIZE": args.patch_size or NC_PATCH_SIZE}
    if args.scene == "spot6":
        import amsterdam_labels

        data = (args.data or amsterdam_labels.DEFAULT_DATA).resolve()
        if not (data / amsterdam_labels.SCENE).exists():
            raise SystemExit(f"sr_experiment: {data / amsterdam_labels.SCENE} is missing: the spot6 scene needs the "
                             "Spot-6 Amsterdam sample data (../shared/data/spot6_amsterdam, or --data DIR); for your "
                             "own data pass --hr and --labels.")
        inputs.mkdir(parents=True, exist_ok=True)
        located = amsterdam_labels.make_labels(data, inputs / "labels.tif")
        print(f"labels: {located.found} patches located in the scene ({len(located.missing)} not found), "
              f"{located.labelled_pixels} labelled pixels")
        parameters = {"HR": str(data / amsterdam_labels.SCENE), "LABELS": str(inputs / "labels.tif")}
    else:
        for flag, path in (("--hr", args.hr), ("--labels", args.labels), ("--lr", args.lr)):
            if path is not None and not path.exists():
                raise SystemExit(f"sr_experiment: {flag} {path} does not exist.")
        parameters = {"HR": str(args.hr.resolve())}
        if is_vector(args.labels):
            if not args.class_field:
                raise SystemExit(f"sr_experiment: {args.labels} holds polygons or points: give their class field "
                                 "(--class-field FIELD, make ... CLASS_FIELD=FIELD).")
            parameters.update(REFERENCE=str(args.labels.resolve()), CLASS_FIELD=args.class_field)
        elif args.class_field:
            raise SystemExit(f"sr_experiment: {args.labels} is a label raster: --class-field is for polygon or point "
                             "labels only.")
        else:
            parameters["LABELS"] = str(args.labels.resolve())
        if args.lr is not None:
            parameters["LR"] = str(args.lr.resolve())
    if args.patch_size:
        parameters["PATCH_SIZE"] = args.patch_size
    return parameters


def run_comparesr(parameters: dict, log: Path) -> dict:
    """patchflow:comparesr in Processing; its log goes to ``log`` (errors to standard error too)."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

    from patchflow.algorithms.base import inputs_without_side_files

    with open(log, "w", encoding="utf-8") as stream:
        class Feedback(QgsProcessingFeedback):
            def pushInfo(self, text: str) -> None:  # noqa: N802 (Qt's name)
                stream.write(text + "\n")

            def pushWarning(self, text: str) -> None:  # noqa: N802
                stream.write("WARNING: " + text + "\n")

            def reportError(self, text: str, fatalError: bool = False) -> None:  # noqa: N802, N803
                stream.write("ERROR: " + text + "\n")
                print(f"sr_experiment: {text}", file=sys.stderr)

        try:
            with inputs_without_side_files():
                return processing.run("patchflow:comparesr", parameters, context=QgsProcessingContext(),
                                      feedback=Feedback())
        except QgsProcessingException as exc:
            raise SystemExit(f"sr_experiment: comparesr failed: {exc} (log: {log})") from exc


def _number(value, text: str = "{:.3f}") -> str:
    return "–" if value is None else text.format(value)


def summary(comparison: dict) -> str:
    """The table, the tests, the SR's image quality and the answer, as text."""
    from patchflow.plugin.engine.experiment.srscores import p_is
    lines = [f"{'version':<9}{'pixel':>8}  {'kappa (mean ± sd)':<19}{'kappa 95 % interval':<21}"
             f"{'OA (mean ± sd)':<17}macro F1"]
    for key, version in comparison["versions"].items():
        low, high = version["intervals"]["kappa"]
        kappa, oa = version["kappa"], version["OA"]
        cells = (f"{_number(kappa['mean'])} ± {_number(kappa['sd'])}", f"{low:.3f} to {high:.3f}",
                 f"{_number(oa['mean'])} ± {_number(oa['sd'])}")
        lines.append(f"{NAMES[key]:<9}{version['pixel_size']:>6.4g} m  {cells[0]:<19}{cells[1]:<21}{cells[2]:<17}"
                     f"{_number(version['macro F1']['mean'])}")
    lines.append("")
    for test in comparison["tests"]:
        low, high = test["kappa_difference_interval"]
        lines.append(f"{NAMES[test['first']]} − {NAMES[test['second']]}: {test['kappa_difference']:+.3f} kappa "
                     f"(95 % interval {low:+.3f} to {high:+.3f}), McNemar p {p_is(test['mcnemar_p'])}, "
                     f"paired t-test p {p_is(test['paired_t_p'])}")
    quality = comparison["quality"]
    psnr = {name: _number(quality.get(f"{prefix}PSNR"), "{:.2f}") for name, prefix in (
        ("SR", ""), ("bicubic", "BASELINE_"), ("Lanczos", "LANCZOS_"), ("sharpened bicubic", "SHARPENED_"))}
    lines.append(f"SR image on the held-out part: PSNR {psnr['SR']} dB against bicubic {psnr['bicubic']}, Lanczos "
                 f"{psnr['Lanczos']}, sharpened bicubic {psnr['sharpened bicubic']} "
                 f"({comparison['sr']['pairs']} training pairs)")
    lines += ["", f"{comparison['pixels']} held-out pixels; {comparison['split']}.", "", comparison["answer"]]
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--scene", choices=("spot6", "nc"), help="a bundled scene (the default, spot6, without --hr)")
    data.add_argument("--hr", type=Path, help="your HR image")
    parser.add_argument("--labels", type=Path, help="with --hr: a label raster on the HR grid, or polygons/points")
    parser.add_argument("--class-field", help="the polygons' or points' class field")
    parser.add_argument("--lr", type=Path, help="with --hr: a real LR image of another sensor (default: HR degraded)")
    parser.add_argument("--data", type=Path, help="with --scene: the scene's data folder (default: the bundled data)")
    parser.add_argument("--classifier", choices=CLASSIFIERS, default="fcnn")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--train-share", type=float, default=0.6, help="the left share of the width that trains")
    parser.add_argument("--patch-size", type=int, help="CNN patch size, HR pixels (default: comparesr's; nc: 32)")
    parser.add_argument("--epochs", type=int, help="CNN epochs (default: comparesr's)")
    parser.add_argument("--sr-epochs", type=int, help="SR generator epochs (default: comparesr's)")
    parser.add_argument("--output", type=Path, help="default: sr-experiment-output/<scene or HR name>")
    args = parser.parse_args(argv)
    if args.hr is None:
        args.scene = args.scene or "spot6"
        for flag in ("labels", "class_field", "lr"):
            if getattr(args, flag) is not None:
                parser.error(f"--{flag.replace('_', '-')} goes with --hr (your data), not with --scene")
    elif args.labels is None:
        parser.error("--hr needs --labels (a label raster on the HR grid, or polygons/points with --class-field)")
    elif args.data is not None:
        parser.error("--data goes with --scene")
    args.output = (args.output or DEFAULT_OUTPUT / (args.scene or args.hr.stem)).resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.monotonic()
    from make_model3 import start_qgis  # sets the Qt environment before QGIS loads

    parameters = scene_inputs(args, args.output / "inputs")  # refuses labels it cannot use before any work
    args.output.mkdir(parents=True, exist_ok=True)
    app = start_qgis()
    try:
        from patchflow.plugin.declarations import OPERATIONS

        values = OPERATIONS["compare_sr"].parameter("CLASSIFIER").values
        if tuple(values) != CLASSIFIERS:
            raise SystemExit(f"sr_experiment: comparesr's classifiers are {values}, this script knows {CLASSIFIERS}")
        parameters.update(CLASSIFIER=CLASSIFIERS.index(args.classifier), REPEATS=args.repeats, SCALE=args.scale,
                          TRAIN_SHARE=args.train_share, OVERWRITE=True, OUTPUT=str(args.output / "comparison"))
        for name, value in (("EPOCHS", args.epochs), ("SR_EPOCHS", args.sr_epochs)):
            if value is not None:
                parameters[name] = value
        print(f"comparesr ({args.classifier}, {args.repeats} repeats, x{args.scale}) on {parameters['HR']}; "
              f"log: {args.output / 'experiment.log'}", flush=True)
        result = run_comparesr(parameters, args.output / "experiment.log")
    finally:
        app.exitQgis()
    with open(result["JSON"], encoding="utf-8") as stream:
        comparison = json.load(stream)
    print(f"\nDoes super-resolution help? ({time.monotonic() - started:.0f} s)\n\n{summary(comparison)}\n\n"
          f"report: {result['REPORT']}\n        {result['CSV']}\n        {result['JSON']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
