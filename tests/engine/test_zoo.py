"""The model zoo: architectures, shapes, fields, determinism, SavedModel export and the
create_model operation (validation, staging, the real North Carolina dataset)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.models.modelcard import InputSpec, ModelCard, load_card
from patchflow.plugin.engine.models.modelio import InferenceModel
from patchflow.plugin.engine.models.zoo import ARCHITECTURES, build_model, crops_for, export_model

CLASSES = [{"id": 1 + i, "name": f"c{1 + i}", "color": "#000000"} for i in range(7)]  # ids 1..7, not 0..6
SIZES = {"patch_cnn": 16, "fcnn": 32, "unet": 32}
WIDTHS = {"patch_cnn": 4, "fcnn": 2, "unet": 2}


def tiny(architecture: str, patch: int | None = None, bands: int = 3, seed: int | None = 0):
    patch = patch or SIZES[architecture]
    return build_model(architecture, [InputSpec("source1", bands, patch)], CLASSES, WIDTHS[architecture], seed)


def images(n: int, size: int, bands: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, size, size, bands)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{architecture: (keras model, card, SavedModel path)} for the three architectures."""
    folder = tmp_path_factory.mktemp("zoo")
    result = {}
    for architecture, patch in (("patch_cnn", 16), ("fcnn", 64), ("unet", 32)):
        model, card = tiny(architecture, patch)
        path = str(folder / architecture)
        export_model(model, card, path)
        result[architecture] = (model, card, path)
    return result


def test_architectures_are_described():
    assert set(ARCHITECTURES) == {"patch_cnn", "fcnn", "unet", "sr_generator", "fusion_cnn", "fusion_unet"}
    assert ARCHITECTURES["patch_cnn"].task == "classification"
    assert ARCHITECTURES["sr_generator"].task == "super_resolution"  # tests/engine/test_srmodel.py
    assert {ARCHITECTURES[n].task for n in ("fcnn", "unet")} == {"segmentation"}
    assert (ARCHITECTURES["patch_cnn"].default_width, ARCHITECTURES["fcnn"].default_width,
            ARCHITECTURES["unet"].default_width) == (16, 16, 32)
    assert ARCHITECTURES["patch_cnn"].patch_size_problem(16) is None
    assert "16" in ARCHITECTURES["patch_cnn"].patch_size_problem(32)
    assert ARCHITECTURES["fcnn"].patch_size_problem(48) is None
    assert "use a multiple of 16" in ARCHITECTURES["unet"].patch_size_problem(20)


@pytest.mark.parametrize("architecture", ["patch_cnn", "fcnn", "unet"])
def test_training_model_shapes_and_names(architecture):
    model, card = tiny(architecture)
    patch = SIZES[architecture]
    assert [t.name for t in model.inputs] == ["source1"]
    assert tuple(model.inputs[0].shape) == (None, None, None, 3)
    assert model.output_names == ["probabilities"]
    assert {"features", "probabilities"} <= {layer.name for layer in model.layers}
    probabilities = np.asarray(model(images(2, patch)))
    expected = (2, 1, 1, 7) if architecture == "patch_cnn" else (2, patch, patch, 7)
    assert probabilities.shape == expected
    assert np.allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    larger = np.asarray(model(images(1, 2 * patch)))
    assert larger.shape == ((1, 5, 5, 7) if architecture == "patch_cnn" else (1, 2 * patch, 2 * patch, 7))
    assert card.task == ARCHITECTURES[architecture].task
    assert card.parameters["n_parameters"] == model.count_params() > 0


def test_patch_cnn_is_a_sliding_window_of_stride_4():
    """Each output pixel of patch_cnn on a larger image is the model on the 16 × 16 window at
    4 × its position: what the card's receptive field 16, expression field 1 and stride 4 say."""
    model, card = tiny("patch_cnn")
    assert (card.receptive_field, card.expression_field, card.crop_margin) == (16, 1, 0)
    assert {o.name: o.stride for o in card.outputs} == {"probabilities": 4, "class": 4, "features": 4}
    image = images(1, 32, seed=5)
    whole = np.asarray(model(image))
    assert whole.shape == (1, 5, 5, 7)
    for row, col in ((0, 0), (2, 3), (4, 4), (1, 4)):
        window = image[:, 4 * row:4 * row + 16, 4 * col:4 * col + 16]
        assert np.allclose(whole[0, row, col], np.asarray(model(window))[0, 0, 0], atol=1e-5)


def test_segmentation_cards():
    _, fcnn = tiny("fcnn", 64)
    assert (fcnn.receptive_field, fcnn.expression_field, fcnn.crop_margin) == (64, 64, 16)
    assert fcnn.output("features").stride == 2 and fcnn.output("features").channels == 2
    assert [(o.name, o.crop) for o in fcnn.outputs if o.crop] == [
        ("probabilities_crop16", 16), ("class_crop16", 16), ("probabilities_crop32", 32), ("class_crop32", 32)]
    _, unet = tiny("unet", 32)
    assert unet.output("features").stride == 1
    assert [o.name for o in unet.outputs if o.crop] == ["probabilities_crop16", "class_crop16"]
    assert crops_for(16) == [] and crops_for(32) == [16] and crops_for(128) == [16, 32]


def test_same_seed_same_weights_other_seed_others():
    first, _ = tiny("fcnn", seed=7)
    again, _ = tiny("fcnn", seed=7)
    other, _ = tiny("fcnn", seed=8)
    for a, b in zip(first.get_weights(), again.get_weights()):
        assert np.array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first.get_weights(), other.get_weights()))


def test_bad_builds_name_the_parameter():
    spec = [InputSpec("source1", 3, 16)]
    cases = [(("vgg", spec, CLASSES), "ARCHITECTURE"),
             (("fcnn", [InputSpec("source1", 3, 20)], CLASSES), "PATCH_SIZE"),
             (("unet", [InputSpec("source1", 0, 16)], CLASSES), "BANDS"),
             (("patch_cnn", spec, CLASSES[:1]), "N_CLASSES")]
    for args, parameter in cases:
        with pytest.raises(PatchFlowError) as caught:
            build_model(*args)
        assert caught.value.parameter == parameter


@pytest.mark.parametrize("architecture", ["patch_cnn", "fcnn", "unet"])
def test_export_serves_class_ids_probabilities_and_features(exported, architecture):
    model, card, path = exported[architecture]
    assert {"model.keras", "patchflow_card.json", "saved_model.pb"} <= set(os.listdir(path))
    served = InferenceModel.load(path)
    assert served.input_names == ["source1"] and served.input_bands == {"source1": 3}
    assert set(served.output_names) == {o.name for o in card.outputs}
    size = 2 * card.receptive_field
    image = images(3, size, seed=2)
    out = served.predict({"source1": image}, batch_size=2)
    expected = np.asarray(model(image))
    assert np.allclose(out["probabilities"], expected, atol=1e-5)
    assert out["class"].dtype == np.int32 and out["class"].shape == expected.shape[:3] + (1,)
    assert np.array_equal(out["class"][..., 0], np.asarray(card.class_ids)[expected.argmax(-1)])
    assert set(np.unique(out["class"])) <= set(range(1, 8))
    assert out["features"].shape[-1] == card.output("features").channels
    valid_margin = 3 if architecture == "patch_cnn" else 0  # its valid convolutions: (32 - 16) / 4 + 1 = 5 = 8 - 3
    assert out["features"].shape[1] == size // card.output("features").stride - valid_margin
    for spec in card.outputs:
        if spec.crop:
            assert out[spec.name].shape[1:3] == (size - 2 * spec.crop, size - 2 * spec.crop)
            base = out["probabilities" if spec.kind == "probabilities" else "class"]
            assert np.array_equal(out[spec.name], base[:, spec.crop:-spec.crop, spec.crop:-spec.crop])


def test_card_round_trips_and_lists_every_signature_output(exported):
    import tensorflow as tf

    _, card, path = exported["fcnn"]
    loaded = load_card(path)
    assert loaded.to_dict() == card.to_dict()
    signature = tf.saved_model.load(path).signatures["serving_default"]
    assert set(signature.structured_outputs) == {o.name for o in loaded.outputs}
    assert set(signature.structured_input_signature[1]) == {"source1"}
    assert loaded.classes == [{"id": c["id"], "name": c["name"], "color": c["color"]} for c in CLASSES]
    assert ModelCard.from_dict(json.loads(json.dumps(card.to_dict()))).output("class_crop32").crop == 32


# ---- the operation -------------------------------------------------------------------------------


def no_output(folder, name: str = "model") -> bool:
    return not any(entry == name or entry.startswith(".patchflow-staging") for entry in os.listdir(folder))


@pytest.mark.parametrize("parameters, parameter, words", [
    ({"ARCHITECTURE": "resnet"}, "ARCHITECTURE", "resnet"),
    ({"ARCHITECTURE": "fcnn", "PATCH_SIZE": 20}, "PATCH_SIZE", "use a multiple of 16"),
    ({"ARCHITECTURE": "patch_cnn", "PATCH_SIZE": 32}, "PATCH_SIZE", "16"),
    ({"ARCHITECTURE": "unet", "BANDS": 0}, "BANDS", "1 band"),
    ({"ARCHITECTURE": "fcnn", "N_CLASSES": 1}, "N_CLASSES", "2 classes"),
    ({"ARCHITECTURE": "fcnn", "WIDTH": 0}, "WIDTH", "too small"),
    ({"ARCHITECTURE": "fcnn", "DATASET": "missing.json"}, "DATASET", "not found"),
])
def test_create_model_bad_inputs(run_op, tmp_path, parameters, parameter, words):
    values = {"BANDS": 3, "PATCH_SIZE": 32, "N_CLASSES": 3, "OUTPUT": str(tmp_path / "model"), **parameters}
    if "DATASET" in parameters:
        values["DATASET"] = str(tmp_path / parameters["DATASET"])
    with pytest.raises(PatchFlowError) as caught:
        run_op("create_model", **values)
    assert caught.value.parameter == parameter
    assert words in caught.value.message
    assert no_output(tmp_path)


def test_create_model_without_dataset(run_op, tmp_path):
    out = tmp_path / "sub" / "model"
    outputs, reporter = run_op("create_model", ARCHITECTURE="fcnn", BANDS=4, PATCH_SIZE=32, N_CLASSES=3, WIDTH=2,
                               SEED=1, OUTPUT=str(out))
    assert outputs == {"OUTPUT": str(out), "CARD": str(out / "patchflow_card.json"),
                       "PARAMETERS": load_card(str(out)).parameters["n_parameters"]}
    card = load_card(str(out))
    assert card.classes == [{"id": 0, "name": "class 0", "color": "#1f77b4"},
                            {"id": 1, "name": "class 1", "color": "#ff7f0e"},
                            {"id": 2, "name": "class 2", "color": "#2ca02c"}]
    assert card.inputs[0].bands == 4 and card.inputs[0].normalization.kind == "none"
    assert any("receptive field 32" in line and "parameters" in line for line in reporter.logs)
    assert no_output(out.parent, name="")  # no staging folder left


def test_create_model_overwrite(run_op, tmp_path):
    out = tmp_path / "model"
    common = {"ARCHITECTURE": "patch_cnn", "BANDS": 2, "PATCH_SIZE": 16, "N_CLASSES": 2, "WIDTH": 2,
              "OUTPUT": str(out)}
    run_op("create_model", **common)
    with pytest.raises(PatchFlowError) as caught:
        run_op("create_model", **{**common, "BANDS": 3})
    assert caught.value.parameter == "OUTPUT" and "tick OVERWRITE" in caught.value.message
    assert load_card(str(out)).inputs[0].bands == 2
    run_op("create_model", **{**common, "BANDS": 3, "OVERWRITE": True})
    assert load_card(str(out)).inputs[0].bands == 3
    other = tmp_path / "documents"
    other.mkdir()
    (other / "thesis.txt").write_text("keep me")
    with pytest.raises(PatchFlowError) as caught:
        run_op("create_model", **{**common, "OUTPUT": str(other), "OVERWRITE": True})
    assert caught.value.parameter == "OUTPUT" and (other / "thesis.txt").read_text() == "keep me"


@pytest.fixture(scope="module")
def nc_manifest(nc, tmp_path_factory):
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    path = tmp_path_factory.mktemp("nc") / "ds.json"
    run_job(protocol.Job("extract_patches", {
        "INPUT": str(nc / "landsat96_points.shp"), "SOURCE1": [str(nc / "landsat_multiband.tif")],
        "PATCH_SIZE1": 16, "CLASS_FIELD": "id", "OUTPUT": str(path)}, "nc-ds"), Reporter())
    return path


def test_create_model_from_the_nc_dataset(run_op, nc_manifest, tmp_path):
    manifest = json.loads(nc_manifest.read_text())
    out = tmp_path / "nc_model"
    outputs, _ = run_op("create_model", ARCHITECTURE="patch_cnn", DATASET=str(nc_manifest), SEED=3,
                        OUTPUT=str(out))
    card = load_card(outputs["OUTPUT"])
    assert card.architecture == "patch_cnn" and card.task == "classification"
    (spec,) = card.inputs
    assert (spec.name, spec.bands, spec.patch_size) == ("source1", 5, 16)
    assert spec.normalization.kind == "standard"
    assert spec.normalization.mean == pytest.approx([b["mean"] for b in manifest["sources"][0]["bands"]])
    assert spec.normalization.std == pytest.approx([b["std"] for b in manifest["sources"][0]["bands"]])
    assert card.class_ids == list(range(1, 8))
    assert {c["name"] for c in card.classes} == {"developed", "agriculture", "herbaceous", "shrubland", "forest",
                                                  "water", "sediment"}
    assert card.output("probabilities").channels == 7
    # the model serves real patches, normalised as the card says
    from patchflow.plugin.engine.data.patches import PatchesImage

    patches = PatchesImage(manifest["sources"][0]["patches"] if os.path.isabs(manifest["sources"][0]["patches"])
                           else str(nc_manifest.parent / manifest["sources"][0]["patches"])).read(0, 8)
    served = InferenceModel.load(str(out)).predict({"source1": spec.normalization.apply(patches)}, ["class"])
    assert served["class"].shape == (8, 1, 1, 1) and set(np.unique(served["class"])) <= set(range(1, 8))


def test_create_model_dataset_conflicts(run_op, nc_manifest, tmp_path):
    with pytest.raises(PatchFlowError) as caught:
        run_op("create_model", ARCHITECTURE="patch_cnn", DATASET=str(nc_manifest), BANDS=4,
               OUTPUT=str(tmp_path / "model"))
    assert caught.value.parameter == "BANDS" and "5" in caught.value.message
    assert no_output(tmp_path)


def test_segmentation_model_on_a_dataset_without_label_patches_warns(run_op, nc_manifest, tmp_path):
    outputs, reporter = run_op("create_model", ARCHITECTURE="fcnn", DATASET=str(nc_manifest), WIDTH=2,
                               OUTPUT=str(tmp_path / "model"))
    assert load_card(outputs["OUTPUT"]).class_ids == list(range(1, 8))
    assert any("LABEL_RASTER" in warning for warning in reporter.warnings)
