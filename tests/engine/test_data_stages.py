"""Sample from label raster, Sample from vector, Grid split, Describe patches and Build super-resolution dataset
say what they are doing: a stage for each step (reading, counting, drawing, writing...), one per window, row or
chunk of the long ones (windows i/N), with progress that only rises. Real data: the NC Landsat-7 scene and its
labels, the SPOT-6 Amsterdam patches and image."""

from __future__ import annotations

import math

from osgeo import gdal

from patchflow.tests.engine.stagerecorder import counted, rising, run, said_in_order


def test_sample_label_raster_counts_draws_thins_and_writes(nc, tmp_path, monkeypatch):
    from patchflow.plugin.engine.data import sampling
    from patchflow.plugin.engine.geodata import raster

    # windows of 8 rows (2 of the file's 4-row blocks), not of about 1 Mpixel (the whole 489 x 443 px)
    monkeypatch.setattr(sampling, "block_windows", lambda w, h, block: raster.block_windows(w, h, block, 489 * 8))
    labels = nc / "landsat96_labelled_pixels.tif"
    windows = math.ceil(gdal.Open(str(labels)).RasterYSize / 8)
    out, reporter = run("sample_label_raster", INPUT=str(labels), NUMBER=20, MIN_DISTANCE=100.0,
                        OUTPUT=str(tmp_path / "samples.gpkg"))
    said_in_order(reporter.logged, [
        r"reading the label raster landsat96_labelled_pixels\.tif, band 1",
        "counting the labelled pixels of each class", "drawing the samples", r"thinning \d+ samples to 100 apart",
        f"writing the {out['COUNT']} points"])
    count = out["COUNT"]
    said_in_order(reporter.texts, [f"counting: windows {windows}/{windows}", "drawing the samples",
                                   f"drawing: windows {windows}/{windows}", f"writing: points {count}/{count}"])
    counted(reporter, "counting: windows", windows)
    counted(reporter, "drawing: windows", windows)
    rising(reporter)


def test_sample_vector_reads_the_polygons_first(nc, tmp_path):
    out, reporter = run("sample_vector", INPUT=str(nc / "landsat96_polygons.shp"),
                        RASTER=str(nc / "landsat_multiband.tif"), FIELD="id", NUMBER=10,
                        OUTPUT=str(tmp_path / "samples.gpkg"))
    said_in_order(reporter.logged, [r"reading the 34 features of landsat96_polygons",
                                    "counting the labelled pixels of each class", "drawing the samples",
                                    f"writing the {out['COUNT']} points"])
    counted(reporter, "counting: windows", len(reporter.steps(r"counting: windows .*")))
    rising(reporter)


def test_grid_split_finds_nodata_reads_labels_assigns_and_writes_each_set(nc, tmp_path):
    image = gdal.Open(str(nc / "landsat_multiband.tif"))
    rows = (image.RasterYSize - 16) // 16 + 1  # grid rows of 16 px patches
    out, reporter = run("grid_split", INPUT=str(nc / "landsat_multiband.tif"), LABELS=str(nc / "strata.tif"),
                        PATCH_SIZE=16, BLOCK_SIZE=2, OUTPUT_TRAIN=str(tmp_path / "train.gpkg"),
                        OUTPUT_VALID=str(tmp_path / "valid.gpkg"), OUTPUT_TEST=str(tmp_path / "test.gpkg"))
    assert out["COUNT_TRAIN"] > 0
    said_in_order(reporter.logged, ["finding the patches free of nodata", "reading the labels at the patch centres",
                                    r"assigning the blocks to the sets \(split\)", "writing the train points",
                                    "writing the valid points", "writing the test points"])
    counted(reporter, "nodata: grid rows", rows)
    counted(reporter, "labels: grid rows", rows)
    rising(reporter)


def test_grid_split_of_samples_reads_assigns_and_writes(nc, tmp_path):
    out, reporter = run("grid_split", INPUT=str(nc / "landsat_multiband.tif"), SAMPLES=str(nc / "landsat96_points.shp"),
                        CLASS_FIELD="id", PATCH_SIZE=8, BLOCK_SIZE=4, OUTPUT_TRAIN=str(tmp_path / "train.gpkg"),
                        OUTPUT_VALID=str(tmp_path / "valid.gpkg"))
    assert out["COUNT_TRAIN"] > 0
    said_in_order(reporter.logged, ["reading the samples", r"assigning the blocks to the sets \(split\)",
                                    "writing the train points", "writing the valid points"])
    rising(reporter)


def test_describe_patches_measures_each_patches_image_then_reads_the_labels(spot6, tmp_path):
    patches = str(spot6 / "amsterdam_patches_A.tif")
    out, reporter = run("describe_patches", PATCHES=[patches, patches], LABELS=str(spot6 / "amsterdam_labels_A.tif"),
                        PATCH_SIZE=64, OUTPUT=str(tmp_path / "otbtf.json"))
    said_in_order(reporter.logged, [r"band statistics of amsterdam_patches_A\.tif \(1/2\)",
                                    r"band statistics of amsterdam_patches_A\.tif \(2/2\)",
                                    r"reading the label patches amsterdam_labels_A\.tif", "writing the manifest"])
    said_in_order(reporter.texts, [f"statistics: patches {out['COUNT']}/{out['COUNT']}"] * 2)
    rising(reporter)


def test_build_sr_dataset_degrades_then_extracts_the_pairs(spot6, tmp_path):
    out, reporter = run("build_sr_dataset", HR=[str(spot6 / "fake_spot6.jp2")], SCALE=4, PATCH_SIZE=16,
                        OUTPUT_TRAIN=str(tmp_path / "train.json"), OUTPUT_VALID=str(tmp_path / "valid.json"))
    assert out["COUNT_TRAIN"] > 0
    said_in_order(reporter.logged, [r"degrading HR by 4 \(Wald's protocol\) into the LR image",
                                    "extracting the patch pairs", "writing the manifests"])
    counted(reporter, "degrading: tiles", len(reporter.steps(r"degrading: tiles .*")))
    counted(reporter, "pairs: grid rows", 16)  # 256 LR px in rows of 16 px patches
    rising(reporter)


def test_build_sr_dataset_with_radiometric_matching_says_it_fits(nc, tmp_path):
    image = str(nc / "landsat_multiband.tif")
    x0, _, _, y0, _, _ = gdal.Open(image).GetGeoTransform()
    lr = str(tmp_path / "lr_57m.tif")
    gdal.Warp(lr, image, xRes=57, yRes=57, resampleAlg="average", outputType=gdal.GDT_Float32,
              outputBounds=(x0, y0 - 221 * 57, x0 + 244 * 57, y0))
    _, reporter = run("build_sr_dataset", HR=[image], LR=[lr], PATCH_SIZE=16, RADIOMETRIC=True, BLOCK_SIZE=2, SEED=2,
                      OUTPUT_TRAIN=str(tmp_path / "train.json"), OUTPUT_VALID=str(tmp_path / "valid.json"))
    said_in_order(reporter.logged, ["extracting the patch pairs",
                                    "fitting the radiometry and calibrating the HR patches", "writing the manifests"])
    assert not any(text.startswith("degrading") for text in reporter.texts)
    rising(reporter)
