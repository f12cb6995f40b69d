"""Extract patches with labels burnt from the real North Carolina polygons, through processing.run:
the label patches and class names a segmentation model trains on, and the refusal of two label sources."""

from __future__ import annotations

import json

import numpy as np
import pytest
from qgis.core import QgsProcessingException


def test_label_polygons_give_label_patches_an_fcnn_trains_on(run_alg, nc, tmp_path):
    from patchflow.plugin.engine.data.patches import PatchesImage

    result = run_alg("extractpatches", INPUT=str(nc / "landsat96_points.shp"),
                     SOURCE1=[str(nc / "landsat_multiband.tif")], PATCH_SIZE1=16,
                     LABEL_POLYGONS=str(nc / "landsat96_polygons.shp"), LABEL_FIELD="label",
                     OUTPUT=str(tmp_path / "ds.json"))
    manifest = json.loads(open(result["OUTPUT"], encoding="utf-8").read())
    assert [s["role"] for s in manifest["sources"]] == ["image", "label"]
    assert [c["name"] for c in manifest["classes"]] == sorted(
        ["agriculture", "developed", "forest", "herbaceous", "sediment", "shrubland", "water"])
    labels = PatchesImage(result["LABEL_PATCHES"]).read()
    assert labels.shape == (result["COUNT"], 16, 16, 1)
    assert set(np.unique(labels).tolist()) == set(range(7)) | {255}  # 7 classes, 255 = outside every polygon
    trained = run_alg("trainmodel", TRAIN=result["OUTPUT"], ARCHITECTURE=1, WIDTH=2, EPOCHS=1, BATCH_SIZE=64,
                      OUTPUT=str(tmp_path / "fcnn"))
    card = json.loads((tmp_path / "fcnn" / "patchflow_card.json").read_text(encoding="utf-8"))
    assert card["task"] == "segmentation" and trained["OA"] is None and trained["TRAIN_OA"] is not None  # no VALID
    assert [c["name"] for c in card["classes"]] == [c["name"] for c in manifest["classes"]]


def test_label_raster_and_label_polygons_together_are_refused(run_alg, nc, tmp_path):
    with pytest.raises(QgsProcessingException, match="LABEL_RASTER or LABEL_POLYGONS"):
        run_alg("extractpatches", INPUT=str(nc / "landsat96_points.shp"),
                SOURCE1=[str(nc / "landsat_multiband.tif")], PATCH_SIZE1=16,
                LABEL_RASTER=str(nc / "landsat96_labelled_pixels.tif"),
                LABEL_POLYGONS=str(nc / "landsat96_polygons.shp"), LABEL_FIELD="label",
                OUTPUT=str(tmp_path / "ds.json"))
    assert list(tmp_path.iterdir()) == []
