"""The training report predicts the map: a fully convolutional segmentation model's validation scores are
computed as Apply model serves it (tiles, measured margin, context from the source rasters), so the kappa in
the report is the kappa of the served map at the validation pixels; a dataset without patch positions keeps
the per-patch scores and says they are not the map's."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from report_vs_map import datasets, report_and_map  # noqa: E402 - scripts/ on the path

from patchflow.tests.helpers import ORIGIN

TOLERANCE = 0.02


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["fcnn", "unet"])
def test_nc_report_kappa_is_the_served_map_kappa(run_op, nc, tmp_path, architecture):
    image, labels = str(nc / "landsat_multiband.tif"), str(nc / "landsat96_labelled_pixels.tif")
    train, valid = datasets(run_op, image, labels, tmp_path, 64 if architecture == "unet" else 16, 6)
    for seed in (0, 1, 2):
        reported, mapped, report, _ = report_and_map(run_op, train, valid, image, labels, tmp_path, architecture,
                                                     seed, 4, 2, 64 if architecture == "unet" else 16)
        assert abs(reported - mapped) <= TOLERANCE, (reported, mapped)
        assert "as Apply model serves the model" in report and "margin" in report


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["fcnn", "unet"])
def test_spot6_report_kappa_is_the_served_map_kappa(run_op, spot6, tmp_path, architecture):
    import amsterdam_labels

    labels = str(tmp_path / "buildings.tif")
    amsterdam_labels.make_labels(spot6, Path(labels))
    image = str(spot6 / "fake_spot6.jp2")
    train, valid = datasets(run_op, image, labels, tmp_path, 64, 8)
    for seed in (0, 1, 2):
        reported, mapped, _, _ = report_and_map(run_op, train, valid, image, labels, tmp_path, architecture, seed, 4,
                                                2, 64)
        assert abs(reported - mapped) <= TOLERANCE, (reported, mapped)


# ---- served-style scoring against per-patch scoring (synthetic, fast) ---------------------------------------


@pytest.fixture
def scene(run_op, gd, tmp_path):
    """A 4-band noise image with a 2-class label raster (0: nodata) on its grid, and a dataset of 16 px image
    and label patches around 24 points."""
    from patchflow.plugin.engine.data.datasets import PatchDataset

    rng = np.random.default_rng(3)
    image = gd.write_raster(tmp_path / "image.tif", rng.normal(100, 20, (4, 160, 144)).astype(np.float32))
    labels = gd.write_raster(tmp_path / "labels.tif", rng.integers(0, 3, (160, 144)).astype(np.uint8), nodata=0)
    grid = np.stack(np.meshgrid(np.arange(10, 134, 18), np.arange(10, 150, 18)), -1).reshape(-1, 2)
    cols, rows = rng.permutation(grid)[:24].T  # patches that do not overlap
    x0, y0 = ORIGIN
    points = gd.write_points(tmp_path / "points.gpkg", x0 + cols + 0.5, y0 - rows - 0.5)
    manifest = run_op("extract_patches", INPUT=points, SOURCE1=[image], PATCH_SIZE1=16, LABEL_RASTER=labels,
                      OUTPUT=str(tmp_path / "set" / "valid.json"))[0]["OUTPUT"]
    dataset = PatchDataset(manifest, "VALID")
    yield dataset, image, labels, (x0, y0), (cols, rows)
    dataset.close()


def stream_and_model(dataset):
    from patchflow.plugin.engine.data.datasets import BatchStream, Feed, Target
    from patchflow.plugin.engine.models.modelcard import InputSpec, Normalization
    from patchflow.plugin.engine.models.zoo import build_model

    source = dataset.source("source1")
    spec = InputSpec("x1", 4, 16, "source1", Normalization.from_stats(source["bands"]))
    model, card = build_model("fcnn", [spec], dataset.classes, width=4, seed=0)
    target = Target("labels_raster", "classes", (16, 16), [int(c["id"]) for c in dataset.classes],
                    dataset.source("labels_raster")["bands"][0]["nodata"])
    return BatchStream(dataset, [Feed("x1", "source1", 16, 4, spec.normalization)], target, 8), model, card


def context_of():
    from patchflow.plugin.engine.params import RunContext
    from patchflow.plugin.engine.reporting import Reporter

    return RunContext("test", Reporter(), None)  # type: ignore[arg-type] - nothing is staged


def test_patch_positions_are_the_patch_centres_in_file_order(scene):
    dataset, image, _, (x0, y0), (cols, rows) = scene
    from patchflow.plugin.engine.data.positions import read_positions

    centres, why = read_positions(dataset.path, dataset.manifest)
    assert centres is not None, why
    assert len(centres) == dataset.count == 24
    # a 16 px patch around the point in pixel (c, r) starts at (c - 8, r - 8): its centre is that pixel's corner
    found = {(round(x - x0), round(y0 - y)) for x, y in centres}
    assert found == set(zip(cols.tolist(), rows.tolist()))
    from osgeo import gdal

    values = gdal.Open(image).ReadAsArray()
    patches = dataset.read("source1", 0, dataset.count)
    for (x, y), patch in zip(centres, patches):  # in the patches-image's order
        c, r = round(x - x0), round(y0 - y)
        np.testing.assert_array_equal(patch[8, 8], values[:, r, c])


def test_served_scores_are_the_applied_maps_and_differ_from_per_patch_scores(run_op, scene, tmp_path):
    """An untrained FCNN on noise: what it predicts at a pixel depends on the context around it, so scores on
    the 16 px patches alone and on the served map differ; the served ones are those of Apply model's map."""
    from osgeo import gdal

    from patchflow.plugin.engine.models.zoo import export_model
    from patchflow.plugin.engine.train.trainresults import evaluate

    dataset, image, labels, _, (cols, rows) = scene
    stream, model, card = stream_and_model(dataset)
    per_patch = evaluate(model, stream, dataset.classes, context_of())
    served = evaluate(model, stream, dataset.classes, context_of(), card=card)
    assert served.method.startswith("as Apply model serves the model") and "margin" in served.method
    assert per_patch.method == ""
    assert served.matrix.sum() == per_patch.matrix.sum() > 0  # the same labelled pixels
    assert not np.array_equal(served.matrix, per_patch.matrix)
    export_model(model, card, str(tmp_path / "model"))
    out, _ = run_op("apply_model", MODEL=str(tmp_path / "model"), SOURCE1=[image], OUTPUT=str(tmp_path / "map.tif"))
    predicted, truth = gdal.Open(out["OUTPUT"]).ReadAsArray(), gdal.Open(labels).ReadAsArray()
    ids = [int(c["id"]) for c in dataset.classes]
    matrix = np.zeros((len(ids), len(ids)), np.int64)
    for col, row in zip(cols.tolist(), rows.tolist()):
        for r in range(row - 8, row + 8):
            for c in range(col - 8, col + 8):
                if truth[r, c]:
                    matrix[ids.index(int(truth[r, c])), ids.index(int(predicted[r, c]))] += 1
    np.testing.assert_array_equal(served.matrix, matrix)


@pytest.mark.parametrize("case", ["no_positions", "raster_gone"])
def test_without_positions_or_rasters_the_per_patch_scores_say_they_are_not_the_maps(scene, tmp_path, case):
    import os

    from patchflow.plugin.engine.train.trainresults import evaluate

    dataset, image, _, _, _ = scene
    if case == "no_positions":
        del dataset.manifest["positions"]
    else:
        os.replace(image, str(tmp_path / "moved.tif"))
    stream, model, card = stream_and_model(dataset)
    context = context_of()
    per_patch = evaluate(model, stream, dataset.classes, context)
    scores = evaluate(model, stream, dataset.classes, context, card=card)
    np.testing.assert_array_equal(scores.matrix, per_patch.matrix)
    assert "not those of the served map" in scores.method
    assert ("no patch positions" if case == "no_positions" else "are not there") in scores.method
    assert any("not those of the served map" in w for w in context.reporter.warnings)


def test_a_unet_on_label_patches_under_64_px_is_refused_naming_the_patch_sizes(run_op, nc, tmp_path):
    from patchflow.plugin.engine.errors import PatchFlowError

    labels = str(nc / "landsat96_labelled_pixels.tif")
    points = str(tmp_path / "points.gpkg")
    run_op("sample_label_raster", INPUT=labels, NUMBER=3, PATCH_SIZE=32, OUTPUT=points)
    train = run_op("extract_patches", INPUT=points, SOURCE1=[str(nc / "landsat_multiband.tif")], PATCH_SIZE1=32,
                   LABEL_RASTER=labels, OUTPUT=str(tmp_path / "set" / "train.json"))[0]["OUTPUT"]
    with pytest.raises(PatchFlowError) as error:
        run_op("train_model", TRAIN=train, ARCHITECTURE="unet", EPOCHS=1, OUTPUT=str(tmp_path / "model"))
    assert error.value.parameter == "TRAIN"
    assert "64 px or more" in error.value.message and "PATCH_SIZE1 64" in error.value.message
    assert "LABEL_PATCH_SIZE 64" in error.value.message and "32 px patches" in error.value.message
    assert not (tmp_path / "model").exists()
