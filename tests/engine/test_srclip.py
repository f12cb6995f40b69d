"""Apply model's CLIP: a super-resolution model's card carries the HR training target's per-band [min, max] (the
training manifest's statistics), and super-resolved images are bounded to it by default; CLIP off writes what
the generator gives. Real data: a crop of the Spot-6 scene, degraded x4 by build_sr_dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from osgeo import gdal

from patchflow.plugin.engine.models.modelcard import InputSpec, Normalization


@pytest.mark.slow
def test_a_trained_generator_carries_the_hr_range_and_apply_model_clips_to_it(run_op, spot6, tmp_path):
    crop = str(tmp_path / "hr.tif")
    gdal.Translate(crop, gdal.OpenEx(str(spot6 / "fake_spot6.jp2"), gdal.OF_RASTER | gdal.OF_READONLY),
                   srcWin=[0, 0, 256, 256], format="GTiff")
    run_op("build_sr_dataset", HR=[crop], SCALE=4, PATCH_SIZE=8, VALID=0.25, SEED=0,
           OUTPUT_TRAIN=str(tmp_path / "t.json"), OUTPUT_VALID=str(tmp_path / "v.json"),
           OUTPUT_LR=str(tmp_path / "lr.tif"))
    run_op("train_model", TRAIN=str(tmp_path / "t.json"), ARCHITECTURE="sr_generator", WIDTH=8, EPOCHS=1,
           BATCH_SIZE=16, SEED=0, OUTPUT=str(tmp_path / "sr"))
    manifest = json.loads((tmp_path / "t.json").read_text())
    target = next(s for s in manifest["sources"] if s.get("role") == "target")
    card = json.loads((tmp_path / "sr" / "patchflow_card.json").read_text())
    expected = [[b["min"], b["max"]] for b in target["bands"]]
    assert card["outputs"][0]["value_range"] == expected and len(expected) == 4
    # an LR far outside the training data (a brighter scene, 3x): the generator leaves the HR range
    bright = str(tmp_path / "bright.tif")
    gdal.Translate(bright, str(tmp_path / "lr.tif"), outputType=gdal.GDT_Float32, scaleParams=[[0, 1, 0, 3]])
    served = {}
    for clip in (False, True):
        result, reporter = run_op("apply_model", MODEL=str(tmp_path / "sr"), SOURCE1=[bright], CLIP=clip,
                                  OUTPUT=str(tmp_path / f"sr_{clip}.tif"))
        served[clip] = (gdal.Open(result["OUTPUT"]).ReadAsArray(), result, reporter)
    raw, clipped = served[False][0], served[True][0]
    low = np.array([lo for lo, _ in expected], np.float32)[:, None, None]
    high = np.array([hi for _, hi in expected], np.float32)[:, None, None]
    outside = int(((raw < low) | (raw > high)).sum())
    assert outside > 1000  # the unclipped image does leave the range, so the test can fail
    np.testing.assert_array_equal(clipped, np.clip(raw, low, high))
    assert served[True][1]["CLIPPED"] == outside and served[False][1]["CLIPPED"] is None
    assert any(line.startswith("CLIP: ") and str(outside - int((raw > high).sum())) in line
               for line in served[True][2].logs)
    assert any("CLIP off" in line for line in served[False][2].logs)


def test_a_generator_without_a_range_is_not_clipped_and_one_with_it_is(run_op, gd, tmp_path):
    from patchflow.plugin.engine.models.srmodel import build_sr_generator, record_target_range
    from patchflow.plugin.engine.models.zoo import export_model

    norm = Normalization("standard", [100.0, 200.0], [20.0, 40.0])
    model, card = build_sr_generator(InputSpec("x1", 2, 8, "lr", norm), 2, 2, norm, width=8, blocks=1, seed=0)
    export_model(model, card, str(tmp_path / "plain"))
    bands = [{"mean": 100.0, "std": 20.0, "min": 90.0, "max": 110.0}, {"mean": 200.0, "std": 40.0, "min": 150.0,
                                                                        "max": 250.0}]
    record_target_range(card, bands)
    assert card.outputs[0].value_range == [[90.0, 110.0], [150.0, 250.0]]
    export_model(model, card, str(tmp_path / "ranged"))
    rng = np.random.default_rng(0)
    lr = gd.write_raster(tmp_path / "lr.tif", (rng.normal(size=(2, 24, 24)) * [[[60]], [[120]]] +
                                               [[[100]], [[200]]]).astype(np.float32), pixel=4.0)
    plain, reporter = run_op("apply_model", MODEL=str(tmp_path / "plain"), SOURCE1=[lr],
                             OUTPUT=str(tmp_path / "plain.tif"))
    assert plain["CLIPPED"] is None and not any("CLIP" in line for line in reporter.logs)
    ranged, _ = run_op("apply_model", MODEL=str(tmp_path / "ranged"), SOURCE1=[lr], OUTPUT=str(tmp_path / "r.tif"))
    raw, clipped = (gdal.Open(str(tmp_path / name)).ReadAsArray() for name in ("plain.tif", "r.tif"))
    bounds = np.array([[90.0, 150.0], [110.0, 250.0]], np.float32)
    assert ranged["CLIPPED"] == int(((raw < bounds[0][:, None, None]) | (raw > bounds[1][:, None, None])).sum()) > 0
    np.testing.assert_array_equal(clipped, np.clip(raw, bounds[0][:, None, None], bounds[1][:, None, None]))
    # a band without data in the manifest: no range is recorded
    other = build_sr_generator(InputSpec("x1", 2, 8, "lr", norm), 2, 2, norm, width=8, blocks=1, seed=0)[1]
    record_target_range(other, [bands[0], {"mean": 0.0, "std": 0.0, "min": None, "max": None}])
    assert other.outputs[0].value_range is None
