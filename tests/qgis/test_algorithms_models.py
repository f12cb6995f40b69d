"""The Models group through processing.run: Create model on the real North Carolina dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException


def card_of(folder: str) -> dict:
    return json.loads((Path(folder) / "patchflow_card.json").read_text(encoding="utf-8"))


def test_architecture_enum_is_the_engines():
    from patchflow.algorithms.create_model import ARCHITECTURE_LABELS, ARCHITECTURES
    from patchflow.plugin.engine.models.zoo import ARCHITECTURES as ENGINE

    assert list(ARCHITECTURES) == list(ENGINE) and len(ARCHITECTURE_LABELS) == len(ENGINE)


def test_create_model_from_a_real_dataset(run_alg, nc, tmp_path):
    dataset = run_alg("extractpatches", INPUT=str(nc / "landsat96_points.shp"),
                      SOURCE1=[str(nc / "landsat_multiband.tif")], PATCH_SIZE1=16, CLASS_FIELD="id",
                      OUTPUT=str(tmp_path / "ds.json"))["OUTPUT"]
    out = tmp_path / "models" / "patch_cnn"
    result = run_alg("createmodel", ARCHITECTURE=0, DATASET=dataset, WIDTH=4, SEED=2, OUTPUT=str(out))
    assert Path(result["OUTPUT"]) == out
    assert Path(result["CARD"]) == out / "patchflow_card.json"
    assert (out / "saved_model.pb").exists() and (out / "model.keras").exists()
    card = card_of(result["OUTPUT"])
    assert card["architecture"] == "patch_cnn" and card["parameters"]["width"] == 4
    assert result["PARAMETERS"] == card["parameters"]["n_parameters"] > 0
    assert card["inputs"][0]["bands"] == 5 and card["inputs"][0]["normalization"]["kind"] == "standard"
    assert [c["id"] for c in card["classes"]] == list(range(1, 8))
    assert {o["name"] for o in card["outputs"]} == {"probabilities", "class", "features"}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".patchflow-staging")]


def test_create_model_without_dataset_and_overwrite(run_alg, tmp_path):
    out = tmp_path / "unet"
    run_alg("createmodel", ARCHITECTURE=2, BANDS=4, PATCH_SIZE=32, N_CLASSES=3, WIDTH=2, OUTPUT=str(out))
    card = card_of(str(out))
    assert card["architecture"] == "unet" and card["inputs"][0]["patch_size"] == 32
    assert "class_crop16" in {o["name"] for o in card["outputs"]}
    with pytest.raises(QgsProcessingException, match="OVERWRITE"):
        run_alg("createmodel", ARCHITECTURE=1, BANDS=4, PATCH_SIZE=32, N_CLASSES=3, WIDTH=2, OUTPUT=str(out))
    assert card_of(str(out))["architecture"] == "unet"
    run_alg("createmodel", ARCHITECTURE=1, BANDS=4, PATCH_SIZE=32, N_CLASSES=3, WIDTH=2, OVERWRITE=True,
            OUTPUT=str(out))
    assert card_of(str(out))["architecture"] == "fcnn"


def test_create_model_bad_patch_size(run_alg, tmp_path):
    out = tmp_path / "fcnn"
    with pytest.raises(QgsProcessingException, match="PATCH_SIZE.*multiple of 16"):
        run_alg("createmodel", ARCHITECTURE=1, BANDS=3, PATCH_SIZE=20, N_CLASSES=2, OUTPUT=str(out))
    assert not out.exists() or not any(out.iterdir())
