"""Never drop a source silently: a model that takes fewer of the dataset's image sources than it has is
refused, naming the parameter that chose the model; with an explicit INPUTS it trains, with a warning
naming the sources left out (issue 13, item 3). Real data: NC Landsat-7 at 28.5 m with its x4
degradation (114 m) as a second source over the same ground."""

from __future__ import annotations

import pytest
from osgeo import gdal

from patchflow.plugin.engine.errors import PatchFlowError


@pytest.fixture
def two_sources(run_op, nc, tmp_path):
    image = str(nc / "landsat_multiband.tif")
    coarse = str(tmp_path / "lr.tif")
    gdal.Warp(coarse, image, xRes=114.0, yRes=114.0, resampleAlg="average", creationOptions=["COMPRESS=NONE"])
    result, _ = run_op("extract_patches", INPUT=str(nc / "landsat96_points.shp"), SOURCE1=image, PATCH_SIZE1=16,
                       SOURCE2=coarse, PATCH_SIZE2=4, CLASS_FIELD="label", OUTPUT=str(tmp_path / "set" / "d.json"))
    return result["OUTPUT"]


def test_a_zoo_model_that_would_leave_a_source_out_is_refused(run_op, two_sources, tmp_path):
    with pytest.raises(PatchFlowError) as caught:
        run_op("train_model", TRAIN=two_sources, ARCHITECTURE="patch_cnn", EPOCHS=1, OUTPUT=str(tmp_path / "m"))
    assert caught.value.parameter == "ARCHITECTURE", caught.value.message
    assert "source2" in caught.value.message and "INPUTS" in caught.value.message
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.training").exists()


def test_with_explicit_inputs_it_trains_and_names_the_sources_left_out(run_op, two_sources, tmp_path):
    result, reporter = run_op("train_model", TRAIN=two_sources, ARCHITECTURE="patch_cnn", EPOCHS=1, WIDTH=4,
                              INPUTS="x1=source1", OUTPUT=str(tmp_path / "m"))
    assert result["EPOCHS_RUN"] == 1
    assert any("source2" in message and "feed no model input" in message for message in reporter.warnings), \
        reporter.warnings
