"""Does super-resolution help? (compare_sr): the four versions of the HR image (LR, bicubic, SR trained on
the training part only, HR), the same classifier trained on each version's training part with REPEATS
seeds, every map scored on the held-out part at the HR label grid, and ONE comparison folder written:
comparison.json / .csv / .html (with the answer, computed from the figures), the LR, bicubic and SR
images, every map, the SR model, the SR's image quality and the thumbnails of one zoomed area.

Parts: srscene (labels, split), srversions (the four images), srclassifiers (the classifier on each),
srscores (scores, intervals, tests, the answer), srthumbs and comparisonfiles (the outputs), steps (the engine
operations this one runs)."""

from __future__ import annotations

import os
import shutil

from ..errors import PatchFlowError
from ..ownership import check_replaceable
from ..params import Params, RunContext
from . import srscene, srversions
from .comparisonfiles import relative, write_html, write_json, write_table
from .srclassifiers import ClassifierSettings, Trainer
from .srscores import PAIRS, answer, assess, bootstrap_means, intervals, pair_test, version_scores
from .srthumbs import image_pngs, map_pngs
from .srversions import KEYS, NAMES, SrSettings, Version, version
from .steps import run_step


def read_scene(params: Params, scale: int) -> srscene.Scene:
    """Labels (LABELS, or REFERENCE + CLASS_FIELD) on the HR grid and the split."""
    grid = srscene.hr_grid(params.string("HR"))
    labels_path, reference = params.string("LABELS"), params.string("REFERENCE")
    if bool(labels_path) == bool(reference):
        raise PatchFlowError("give the labels once: a label raster on the HR grid (LABELS), or labelled polygons or "
                             "points (REFERENCE, with CLASS_FIELD).", "LABELS")
    labels, classes = (srscene.raster_labels(labels_path, grid) if labels_path else
                       srscene.vector_labels(reference, params.string("CLASS_FIELD"), grid))
    train_area, test_area = params.string("TRAIN_AREA"), params.string("TEST_AREA")
    if bool(train_area) != bool(test_area):
        raise PatchFlowError("give both TRAIN_AREA and TEST_AREA polygons, or neither (TRAIN_SHARE splits the width).",
                             "TEST_AREA" if train_area else "TRAIN_AREA")
    areas = (train_area, test_area) if train_area else None
    return srscene.make_scene(labels, classes, grid, params.number("TRAIN_SHARE"), scale, areas)


def held_out_extent(scene: srscene.Scene) -> str:
    """xmin,xmax,ymin,ymax of the held-out part's bounding box (image quality is measured there)."""
    import numpy as np

    rows, cols = np.nonzero(scene.test)
    g = scene.grid
    x0, x1 = g.x0 + cols.min() * g.dx, g.x0 + (cols.max() + 1) * g.dx
    y0, y1 = g.y0 + (rows.max() + 1) * g.dy, g.y0 + rows.min() * g.dy
    return f"{x0!r},{x1!r},{y0!r},{y1!r}"


def run_compare_sr(params: Params, context: RunContext) -> dict:
    """Does super-resolution help? The four versions classified alike and compared on the held-out part."""
    from .. import checks

    reporter = context.reporter
    output = params.string("OUTPUT")
    check_replaceable(output, params.boolean("OVERWRITE"), "OUTPUT", "comparison folder")
    checks.rasters(params, "HR", "LR", "LABELS", reporter=reporter, labels={"LABELS": None})
    hr, real_lr, scale = params.string("HR"), params.string("LR"), params.integer("SCALE")
    classifier = ClassifierSettings(params.choice("CLASSIFIER"), params.integer("PATCH_SIZE"),
                                    params.integer("SAMPLES"), params.integer("EPOCHS"),
                                    params.integer("NEIGHBOURHOOD"))
    sr_settings = SrSettings(params.integer("SR_EPOCHS"), params.integer("SR_PATCH_SIZE"))
    repeats, resamples = params.integer("REPEATS"), params.integer("RESAMPLES")
    reporter.stage("reading the labels and splitting the scene", 0)
    scene = read_scene(params, scale)
    if real_lr and not version("lr", real_lr).grid.same_crs_as(scene.grid):
        raise PatchFlowError("the LR image is not in the HR image's CRS: reproject it first (gdalwarp -t_srs).", "LR")
    reporter.log(f"split: {scene.split_text}; {len(scene.classes)} classes; "
                 f"{int(len(scene.held_out()[0]))} labelled held-out pixels")

    staged = context.staging.stage(output, "OUTPUT")
    os.makedirs(staged)
    work = os.path.join(staged, ".work")
    for name in ("images", "maps", "thumbnails", work):
        os.makedirs(os.path.join(staged, name), exist_ok=True)
    images = os.path.join(staged, "images")
    reporter.stage("the LR and bicubic images", 2)
    lr = real_lr or srversions.degraded_lr(hr, scale, os.path.join(images, "lr.tif"), reporter.span(2, 4), context)
    srversions.bicubic(lr, scene.grid, os.path.join(images, "bicubic.tif"))
    lr_ratio = max(1, round(abs(version("lr", lr).grid.dx / scene.grid.dx)))
    hr_training = srversions.training_hr(hr, scene, lr_ratio, os.path.join(work, "hr_training.tif"))
    sr_facts = srversions.super_resolve(hr_training, lr, bool(real_lr), scale, sr_settings, work,
                                        os.path.join(images, "sr.tif"), context, reporter.span(5, 30))
    shutil.move(sr_facts["model"], os.path.join(staged, "sr_model"))
    versions = [version("lr", lr), version("bicubic", os.path.join(images, "bicubic.tif")),
                version("sr", os.path.join(images, "sr.tif")), version("hr", hr)]

    trainer = Trainer(scene, classifier, work, context)
    reporter.stage("sampling the training pixels", 30)
    trainer.sample(reporter.span(30, 31))
    maps: dict[str, list[str]] = {key: [] for key in KEYS}
    runs = len(versions) * repeats
    for index, item in enumerate(versions):
        for seed in range(repeats):
            done = index * repeats + seed
            start, end = 31 + 59 * done / runs, 31 + 59 * (done + 1) / runs
            label = f"version {index + 1}/{len(versions)} ({item.name}), repeat {seed + 1}/{repeats}"
            reporter.stage(f"{label}: extracting the training data", start)
            path = os.path.join(staged, "maps", f"{item.key}_seed{seed}.tif")
            maps[item.key].append(trainer.train(item, seed, path, reporter.span(start, end), label))
    reporter.stage("scoring the maps on the held-out part", 90)
    comparison = compare(scene, versions, maps, classifier, repeats, resamples, staged)
    reporter.stage("the SR image's quality on the held-out part", 93)
    quality = run_step("assess_image_quality", {
        "INPUT": [versions[2].path], "REFERENCE": [hr], "LOW_RESOLUTION": [lr], "EXTENT": held_out_extent(scene),
        "OUTPUT_CSV": os.path.join(staged, "quality.csv"), "OUTPUT_HTML": os.path.join(staged, "quality.html")},
        context, reporter.span(93, 97), "measuring the SR image's quality")
    comparison["quality"] = {k: v for k, v in quality.items() if isinstance(v, (int, float, str)) or v is None}
    comparison["quality"].update(OUTPUT_CSV="quality.csv", OUTPUT_HTML="quality.html")
    comparison["sr"] = {**{k: v for k, v in sr_facts.items() if k != "model"}, "model": "sr_model",
                        "text": f"zoo sr_generator (width {sr_settings.width}) trained for {sr_settings.epochs} "
                                f"epochs on {sr_facts['pairs']} LR/HR pairs ({sr_settings.patch}-px LR patches) of "
                                "the training part only"}
    comparison["images"] = {v.key: (relative(v.path, staged) if v.path.startswith(staged) else v.path)
                            for v in versions}
    reporter.stage("writing the comparison", 97)
    thumbs = os.path.join(staged, "thumbnails")
    pngs = image_pngs({v.key: v.path for v in versions}, "hr", scene, thumbs)
    map_png = map_pngs({key: paths[0] for key, paths in maps.items()}, scene.classes, scene, thumbs)
    shutil.rmtree(work)
    final = {name: os.path.join(output, f"comparison.{name}") for name in ("html", "json", "csv")}
    write_json(os.path.join(staged, "comparison.json"), comparison)
    write_table(os.path.join(staged, "comparison.csv"), comparison)
    write_html(os.path.join(staged, "comparison.html"), comparison, pngs, map_png)
    reporter.log(comparison["answer"])
    reporter.progress(100)
    versions_out = comparison["versions"]
    sr_bicubic = comparison["tests"][0]
    return {"OUTPUT": output, "REPORT": final["html"], "JSON": final["json"], "CSV": final["csv"],
            "ANSWER": comparison["answer"], "PIXELS": comparison["pixels"],
            **{f"KAPPA_{key.upper()}": versions_out[key]["kappa"]["mean"] for key in KEYS},
            "SR_GAIN": sr_bicubic["kappa_difference"], "MCNEMAR_P": sr_bicubic["mcnemar_p"],
            "PAIRED_P": sr_bicubic["paired_t_p"]}


def compare(scene: srscene.Scene, versions: list[Version], maps: dict[str, list[str]],
            classifier: ClassifierSettings, repeats: int, resamples: int, folder: str) -> dict:
    """Every figure of the comparison (the JSON), the answer computed from them."""
    assessed = assess(scene, maps)
    if assessed.pixels == 0:
        raise PatchFlowError("no labelled held-out pixel is classified by every map: check the labels and the split.",
                             "TRAIN_SHARE")
    scores = {key: version_scores(assessed, key) for key in KEYS}
    means = bootstrap_means(assessed, resamples, 0)
    for key in KEYS:
        scores[key]["intervals"] = intervals(means, key)
        scores[key]["pixel_size"] = abs(next(v for v in versions if v.key == key).grid.dx)
        scores[key]["maps"] = [relative(path, folder) for path in maps[key]]
    tests = [pair_test(assessed, scores, means, first, second) for first, second in PAIRS]
    return {
        "question": "Does super-resolution help?", "answer": answer(classifier.name, tests[0], repeats,
                                                                max(scores[key]["kappa"]["mean"] for key in KEYS)),
        "classifier": classifier.kind, "split": scene.split_text, "pixels": assessed.pixels,
        "labelled_held_out": assessed.labelled, "classes": [c.as_dict() for c in scene.classes],
        "settings": {"classifier_text": classifier.text(), "repeats": repeats, "seeds": list(range(repeats)),
                     "resamples": resamples, "bootstrap_seed": 0},
        "versions": scores, "tests": tests, "names": NAMES,
    }
