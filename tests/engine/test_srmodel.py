"""The super-resolution generator: shapes per scale, export in the HR image's units, training on a
super-resolution dataset (image target, L1/SSIM losses, PSNR/SSIM against bicubic in the report), and
Apply model writing its output on the finer grid."""

from __future__ import annotations

import json

import numpy as np
import pytest

from patchflow.plugin.engine.data.patches import PatchesImageWriter
from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.models.modelcard import InputSpec, Normalization
from patchflow.plugin.engine.models.modelio import InferenceModel

STATS = Normalization("standard", [100.0, 200.0], [20.0, 40.0])


def generator(scale, bands=2, **options):
    from patchflow.plugin.engine.models.srmodel import build_sr_generator

    spec = InputSpec("x1", bands, 8, "lr", STATS)
    return build_sr_generator(spec, bands, scale, STATS, width=8, blocks=1, seed=0, **options)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_the_generator_upsamples_by_its_scale(scale):
    model, card = generator(scale)
    assert model(np.zeros((1, 8, 8, 2), np.float32)).shape == (1, 8 * scale, 8 * scale, 2)
    assert card.scale_factor == scale and card.outputs[0].scale_factor == scale and card.task == "super_resolution"
    assert card.expression_field == 8 * scale


def test_scales_that_are_not_powers_of_two_are_refused():
    with pytest.raises(PatchFlowError) as error:
        generator(3)
    assert error.value.parameter == "SCALE"


def test_the_savedmodel_serves_the_hr_images_units(tmp_path):
    from patchflow.plugin.engine.models.zoo import export_model

    model, card = generator(2)
    export_model(model, card, str(tmp_path / "sr"))
    x = np.random.default_rng(0).normal(size=(1, 12, 12, 2)).astype(np.float32)
    served = InferenceModel.load(str(tmp_path / "sr")).predict({"x1": x})["image"]
    expected = np.asarray(model(x)) * np.array([20.0, 40.0]) + np.array([100.0, 200.0])
    assert served.shape == (1, 24, 24, 2) and np.abs(served - expected).max() < 1e-3
    reloaded = json.loads((tmp_path / "sr" / "patchflow_card.json").read_text())
    assert reloaded["parameters"]["output_normalization"]["mean"] == [100.0, 200.0]


def smooth_scene(size: int, seed: int) -> np.ndarray:
    """(2, size, size) of smooth structure: sums of random sinusoids."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    bands = []
    for band in range(2):
        value = np.full((size, size), 100.0 + 100 * band, np.float32)
        for _ in range(6):
            fx, fy, phase = rng.uniform(0.02, 0.25, 2).tolist() + [rng.uniform(0, 6.3)]
            value += rng.uniform(5, 20) * np.sin(fx * cols + fy * rows + phase)
        bands.append(value)
    return np.stack(bands)


def write_sr_dataset(folder, seed: int, count_side: int = 12, lr_patch: int = 8, scale: int = 2) -> str:
    """HR patches of a smooth scene and LR patches = their scale x scale block means."""
    folder.mkdir(parents=True, exist_ok=True)
    hr_patch = lr_patch * scale
    scene = smooth_scene(count_side * hr_patch, seed)
    hr = scene.reshape(2, count_side, hr_patch, count_side, hr_patch).transpose(1, 3, 0, 2, 4).reshape(
        -1, 2, hr_patch, hr_patch)
    lr = hr.reshape(len(hr), 2, lr_patch, scale, lr_patch, scale).mean(axis=(3, 5))
    sources = []
    for name, patches, size, role in (("lr", lr, lr_patch, "image"), ("hr", hr, hr_patch, "target")):
        writer = PatchesImageWriter(str(folder / f"{name}.tif"), len(patches), 2, size, np.float32)
        writer.add(patches.astype(np.float32))
        writer.close(["b1", "b2"], [None, None])
        bands = [{"mean": float(patches[:, b].mean()), "std": float(patches[:, b].std()),
                  "min": float(patches[:, b].min()), "max": float(patches[:, b].max()), "nodata": None}
                 for b in range(2)]
        sources.append({"name": name, "role": role, "patch_size": size, "patches": f"{name}.tif",
                        "dtype": "float32", "bands": bands})
    manifest = {"format": "patchflow-dataset", "version": 1, "n_patches": len(hr), "sources": sources,
                "labels": None, "classes": [], "super_resolution": {"scale": scale}}
    (folder / "d.json").write_text(json.dumps(manifest))
    return str(folder / "d.json")


def test_train_model_fits_a_generator_and_reports_psnr_ssim_against_bicubic(run_op, tmp_path):
    train = write_sr_dataset(tmp_path / "train", seed=1)
    valid = write_sr_dataset(tmp_path / "valid", seed=2, count_side=6)
    outputs, reporter = run_op("train_model", TRAIN=train, VALID=valid, ARCHITECTURE="sr_generator", WIDTH=16,
                               EPOCHS=3, BATCH_SIZE=16, LOSS_WEIGHTS="l1=1;ssim=0.1", SEED=1,
                               OUTPUT=str(tmp_path / "sr"))
    assert outputs["PSNR"] > 10 and outputs["BICUBIC_PSNR"] > 10 and 0 < outputs["SSIM"] <= 1
    report = (tmp_path / "sr" / "report.html").read_text()
    assert "bicubic" in report and (tmp_path / "sr" / "report_files" / "samples.png").exists()
    assert (tmp_path / "sr" / "report_files" / "psnr.png").exists()
    card = json.loads((tmp_path / "sr" / "patchflow_card.json").read_text())
    assert card["task"] == "super_resolution" and card["scale_factor"] == 2.0
    assert any("image quality on 36 patches" in line for line in reporter.logs)
    history = (tmp_path / "sr" / "history.csv").read_text().splitlines()[0]
    assert "psnr" in history and "val_ssim" in history


def test_an_sr_dataset_with_another_scale_is_refused_for_a_model(run_op, tmp_path):
    from patchflow.plugin.engine.models.zoo import export_model

    model, card = generator(4)
    export_model(model, card, str(tmp_path / "x4"))
    train = write_sr_dataset(tmp_path / "train", seed=1, count_side=4)
    with pytest.raises(PatchFlowError) as error:
        run_op("train_model", TRAIN=train, MODEL=str(tmp_path / "x4"), EPOCHS=1, OUTPUT=str(tmp_path / "out"))
    assert error.value.parameter == "TARGET" and "scale" in str(error.value)
    assert not (tmp_path / "out").exists()


def test_bad_loss_weights_name_the_parameter(run_op, tmp_path):
    train = write_sr_dataset(tmp_path / "train", seed=1, count_side=4)
    with pytest.raises(PatchFlowError) as error:
        run_op("train_model", TRAIN=train, ARCHITECTURE="sr_generator", LOSS_WEIGHTS="l1=1;perceptual=1",
               OUTPUT=str(tmp_path / "out"))
    assert error.value.parameter == "LOSS_WEIGHTS"


def test_apply_model_writes_the_sr_output_on_the_finer_grid(run_op, gd, tmp_path):
    from osgeo import gdal

    from patchflow.plugin.engine.models.zoo import export_model

    model, card = generator(4)
    export_model(model, card, str(tmp_path / "x4"))
    lr = gd.write_raster(tmp_path / "lr.tif", smooth_scene(40, 3).astype(np.float32), pixel=8.0)
    whole, _ = run_op("apply_model", MODEL=str(tmp_path / "x4"), SOURCE1=[lr], TILE_SIZE=1024,
                      OUTPUT=str(tmp_path / "whole.tif"))
    tiled, _ = run_op("apply_model", MODEL=str(tmp_path / "x4"), SOURCE1=[lr], TILE_SIZE=64,
                      OUTPUT=str(tmp_path / "tiled.tif"))
    a, b = gdal.Open(whole["OUTPUT"]), gdal.Open(tiled["OUTPUT"])
    assert (a.RasterXSize, a.RasterYSize) == (160, 160) and a.GetGeoTransform()[1] == 2.0
    assert a.GetGeoTransform()[0] == gdal.Open(lr).GetGeoTransform()[0]
    assert np.abs(a.ReadAsArray() - b.ReadAsArray()).max() <= 1e-3
    assert whole["KIND"] == "image"


def super_resolution_beats_bicubic(run_op, image: str, tmp_path, lr_patch: int, step: int, epochs: int = 8) -> dict:
    """Degrade ``image`` x4; train on its left 60 %, serve the LR of the right 40 % and score the SR
    image against the real HR there, with bicubic upsampling of the same LR as the baseline."""
    from osgeo import gdal

    source = gdal.Open(image)
    split = int(source.RasterXSize * 0.6) // 4 * 4
    left, right = str(tmp_path / "left.tif"), str(tmp_path / "right.tif")
    gdal.Translate(left, source, srcWin=[0, 0, split, source.RasterYSize])
    gdal.Translate(right, source, srcWin=[split, 0, source.RasterXSize - split, source.RasterYSize])
    run_op("build_sr_dataset", HR=[left], SCALE=4, PATCH_SIZE=lr_patch, STEP=step, VALID=0.2, SEED=0,
           OUTPUT_TRAIN=str(tmp_path / "train.json"), OUTPUT_VALID=str(tmp_path / "valid.json"))
    run_op("build_sr_dataset", HR=[right], SCALE=4, PATCH_SIZE=lr_patch, VALID=0.5, SEED=0,
           OUTPUT_TRAIN=str(tmp_path / "rt.json"), OUTPUT_VALID=str(tmp_path / "rv.json"),
           OUTPUT_LR=str(tmp_path / "right_lr.tif"))
    run_op("train_model", TRAIN=str(tmp_path / "train.json"), VALID=str(tmp_path / "valid.json"),
           ARCHITECTURE="sr_generator", WIDTH=32, EPOCHS=epochs, BATCH_SIZE=16, SEED=0, OUTPUT=str(tmp_path / "sr"))
    run_op("apply_model", MODEL=str(tmp_path / "sr"), SOURCE1=[str(tmp_path / "right_lr.tif")],
           OUTPUT=str(tmp_path / "right_sr.tif"))
    served, low = gdal.Open(str(tmp_path / "right_sr.tif")), gdal.Open(str(tmp_path / "right_lr.tif"))
    reference = gdal.Open(right)  # the LR drops the HR's last partial 4 x 4 blocks: the SR covers the rest
    assert (served.RasterXSize, served.RasterYSize) == (4 * low.RasterXSize, 4 * low.RasterYSize)
    assert served.GetGeoTransform() == pytest.approx(reference.GetGeoTransform())
    scores, _ = run_op("assess_image_quality", INPUT=[str(tmp_path / "right_sr.tif")], REFERENCE=[right],
                       LOW_RESOLUTION=[str(tmp_path / "right_lr.tif")], OUTPUT_CSV=str(tmp_path / "q.csv"),
                       OUTPUT_HTML=str(tmp_path / "q.html"))
    print(f"\n{image}: SR PSNR {scores['PSNR']:.2f} dB SSIM {scores['SSIM']:.4f}; bicubic PSNR "
          f"{scores['BASELINE_PSNR']:.2f} dB SSIM {scores['BASELINE_SSIM']:.4f}")
    return scores


@pytest.mark.slow
def test_sr_beats_bicubic_on_a_held_out_part_of_the_spot6_scene(run_op, spot6, tmp_path):
    """The bar: Spot-6 1.5 m degraded x4 (6 m), trained on the left 60 %, scored on the right 40 %."""
    scores = super_resolution_beats_bicubic(run_op, str(spot6 / "fake_spot6.jp2"), tmp_path, 16, 8)
    assert scores["PSNR"] > scores["BASELINE_PSNR"] + 0.5 and scores["SSIM"] > scores["BASELINE_SSIM"] + 0.01


@pytest.mark.slow
def test_sr_beats_bicubic_on_a_held_out_part_of_the_nc_landsat_scene(run_op, nc, tmp_path):
    """The same on the demo data (always there): Landsat-7 28.5 m degraded x4."""
    scores = super_resolution_beats_bicubic(run_op, str(nc / "landsat_multiband.tif"), tmp_path, 8, 4, epochs=20)
    # measured: 24.69 vs 23.99 dB, SSIM 0.565 vs 0.486
    assert scores["PSNR"] > scores["BASELINE_PSNR"] + 0.3 and scores["SSIM"] > scores["BASELINE_SSIM"] + 0.03


def test_adversarial_training_pretrains_then_adds_the_discriminator_and_resumes_exactly(run_op, tmp_path):
    import threading

    import keras

    from patchflow.plugin import protocol
    from patchflow.plugin.engine.errors import Cancelled
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    train = write_sr_dataset(tmp_path / "train", seed=1, count_side=6)
    job = dict(TRAIN=train, ARCHITECTURE="sr_generator", WIDTH=8, EPOCHS=3, BATCH_SIZE=12, SEED=2,
               LOSS_WEIGHTS="l1=1;adversarial=0.01", PRETRAIN_EPOCHS=1)
    outputs, reporter = run_op("train_model", **job, OUTPUT=str(tmp_path / "straight"))
    history = (tmp_path / "straight" / "history.csv").read_text().splitlines()
    columns = history[0].split(",")
    adversarial = [float(row.split(",")[columns.index("adversarial_loss")]) for row in history[1:]]
    assert adversarial[0] == 0 and adversarial[1] > 0 and adversarial[2] > 0  # pre-training, then LSGAN
    assert any("adversarial training (LSGAN" in line for line in reporter.logs)
    card = json.loads((tmp_path / "straight" / "patchflow_card.json").read_text())
    assert card["architecture"] == "sr_generator" and outputs["PSNR"] > 0

    class CancelAfter(Reporter):
        def __init__(self, event):
            super().__init__()
            self.event = event

        def log(self, text):
            super().log(text)
            if text.startswith("epoch 2/"):
                self.event.set()

    event = threading.Event()
    with pytest.raises(Cancelled):
        run_job(protocol.Job("train_model", dict(job, OUTPUT=str(tmp_path / "resumed")), "c"), CancelAfter(event),
                event)
    run_op("train_model", **job, OUTPUT=str(tmp_path / "resumed"))
    straight = keras.models.load_model(str(tmp_path / "straight" / "model.keras")).get_weights()
    resumed = keras.models.load_model(str(tmp_path / "resumed" / "model.keras")).get_weights()
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(straight, resumed))


@pytest.mark.slow
def test_a_x4_generator_serves_the_whole_spot6_scene_seamlessly(run_op, spot6, tmp_path):
    """The Spot-6 scene degraded x4 (6 m), then served by a x4 generator: 1.5 m output over the same
    extent, and tiled serving equal to one block over the whole scene."""
    from osgeo import gdal

    from patchflow.plugin.engine.models.zoo import export_model

    scene = str(spot6 / "fake_spot6.jp2")
    run_op("build_sr_dataset", HR=[scene], SCALE=4, PATCH_SIZE=16, VALID=0.5, SEED=0,
           OUTPUT_TRAIN=str(tmp_path / "t.json"), OUTPUT_VALID=str(tmp_path / "v.json"),
           OUTPUT_LR=str(tmp_path / "lr.tif"))
    from patchflow.plugin.engine.models.srmodel import build_sr_generator

    norm = Normalization("standard", [500.0] * 4, [300.0] * 4)
    model, card = build_sr_generator(InputSpec("x1", 4, 16, "lr", norm), 4, 4, norm, width=8, blocks=2, seed=0)
    export_model(model, card, str(tmp_path / "x4"))
    outputs = {}
    for name, tile in (("whole", 4096), ("tiled", 96)):
        outputs[name], _ = run_op("apply_model", MODEL=str(tmp_path / "x4"), SOURCE1=[str(tmp_path / "lr.tif")],
                                  TILE_SIZE=tile, OUTPUT=str(tmp_path / f"{name}.tif"))
    whole, tiled, hr = (gdal.Open(outputs["whole"]["OUTPUT"]), gdal.Open(outputs["tiled"]["OUTPUT"]),
                        gdal.Open(scene))
    assert (whole.RasterXSize, whole.RasterYSize) == (hr.RasterXSize, hr.RasterYSize) == (1024, 1024)
    assert whole.GetGeoTransform() == pytest.approx(hr.GetGeoTransform())
    assert np.abs(whole.ReadAsArray() - tiled.ReadAsArray()).max() <= 1e-3


def test_the_peak_value_skips_bands_without_statistics():
    from patchflow.plugin.engine.train.srreport import data_range

    assert data_range([{"min": None, "max": None}, {"min": 2, "max": 10}]) == 8.0  # strict JSON: null, not NaN
    assert data_range([{"min": 0, "max": 255}, {"min": 10, "max": 300}]) == 300.0
