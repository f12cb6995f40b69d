"""Fusion models of the zoo (models/fusion.py, issue 13 item 2): one input per image source, each at its own
resolution and patch size. fusion_cnn (one branch per source, flattened so the patch's layout is kept, dense
``features``) and fusion_unet (coarser sources upsampled to source 1's grid, then the zoo's U-Net): shapes,
cards, the refusals (each naming its parameter), Create model and Train model on real data: NC Landsat-7 at
28.5 m with a 57 m copy (gdal.Warp, average) as source 2."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from osgeo import gdal

from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.models.modelcard import InputSpec, load_card
from patchflow.plugin.engine.models.zoo import ARCHITECTURES, build_model, check_build, export_model

CLASSES = [{"id": 1 + i, "name": f"c{1 + i}", "color": "#000000"} for i in range(4)]


def spec(name: str, bands: int, patch: int, pixel: float | None, source: str | None = None) -> InputSpec:
    return InputSpec(name, bands, patch, source or f"source{name[1:]}", pixel_size=pixel)


def noise(n: int, size: int, bands: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, size, size, bands)).astype(np.float32)


def error_of(call) -> PatchFlowError:
    with pytest.raises(PatchFlowError) as caught:
        call()
    return caught.value


# ---- synthetic specs: shapes, cards, refusals ------------------------------------------------------------


@pytest.mark.parametrize("sizes", [((16, 28.5), (8, 57.0)), ((20, 1.5), (3, 10.0))])
def test_fusion_cnn_takes_each_source_at_its_own_patch_size(sizes):
    (p1, s1), (p2, s2) = sizes
    model, card = build_model("fusion_cnn", [spec("x1", 6, p1, s1), spec("x2", 4, p2, s2)], CLASSES, 4, 0)
    assert [t.name for t in model.inputs] == ["x1", "x2"]
    probabilities = np.asarray(model([noise(3, p1, 6), noise(3, p2, 4)]))
    assert probabilities.shape == (3, len(CLASSES)) and np.allclose(probabilities.sum(-1), 1, atol=1e-5)
    assert model.get_layer("features").output.shape[-1] == card.output("features").channels
    assert (card.task, card.receptive_field, card.expression_field, card.crop_margin) == ("classification", p1, 1, 0)
    assert {o.name: (o.kind, o.stride) for o in card.outputs} == {
        "probabilities": ("probabilities", 1), "class": ("class", 1), "features": ("features", 1)}
    assert [(i.name, i.source, i.patch_size, i.pixel_size) for i in card.inputs] == [
        ("x1", "source1", p1, s1), ("x2", "source2", p2, s2)]
    assert card.parameters["resolution_ratios"] == pytest.approx([1.0, s2 / s1], rel=1e-5)
    assert card.parameters["n_parameters"] == model.count_params()


@pytest.mark.parametrize(("sizes", "cells"), [(((16, 28.5), (8, 57.0)), (4, 4)), (((20, 1.5), (3, 10.0)), (5, 3))])
def test_fusion_cnn_branches_keep_where_in_the_patch_features_are(sizes, cells):
    """Each branch ends in its last feature map flattened (cells x cells x 2 width: 16 px -> 2 poolings -> 4 x 4,
    8 px -> 4 x 4, 20 px -> 5 x 5, 3 px -> no pooling), not a global pooling that forgets where the centre
    pixel is; so each input has its card's patch size, and the dense features see every cell."""
    (p1, s1), (p2, s2) = sizes
    width = 4
    model, card = build_model("fusion_cnn", [spec("x1", 6, p1, s1), spec("x2", 4, p2, s2)], CLASSES, width, 0)
    assert [tuple(t.shape) for t in model.inputs] == [(None, p1, p1, 6), (None, p2, p2, 4)]
    flat = [model.get_layer(f"b{index}_flat").output.shape[-1] for index in (1, 2)]
    assert flat == [cell * cell * 2 * width for cell in cells]
    assert not [layer.name for layer in model.layers if "Global" in type(layer).__name__]
    assert {"b1_bn1", "b2_bn1"} <= {layer.name for layer in model.layers}  # batch norm in the branches
    assert tuple(model.get_layer("features").kernel.shape) == (sum(flat), card.output("features").channels)
    # one cell of the last feature map (a corner, far from the centre) moves the features on its own
    branch = keras_model(model.inputs, [model.get_layer("b1_flat").output, model.get_layer("features").output])
    x1, x2 = noise(1, p1, 6, 7), noise(1, p2, 4, 8)
    corner = x1.copy()
    corner[0, :2, :2] += 3.0
    before, after = np.asarray(branch([x1, x2])[0]), np.asarray(branch([corner, x2])[0])
    changed = np.flatnonzero(np.abs(before - after) > 1e-6)
    assert 0 < len(changed) < flat[0] / 2  # only the cells near that corner: the layout is kept


def keras_model(inputs, outputs):
    import keras

    return keras.Model(inputs, outputs)


def test_fusion_unet_upsamples_the_coarse_source_to_source_1s_grid(tmp_path):
    inputs = [spec("x1", 3, 64, 10.0), spec("x2", 2, 16, 40.0)]
    model, card = build_model("fusion_unet", inputs, CLASSES, 2, 0)
    assert np.asarray(model([noise(2, 64, 3), noise(2, 16, 2)])).shape == (2, 64, 64, len(CLASSES))
    assert model.get_layer("upsample2").factor == 4
    assert (card.task, card.receptive_field, card.expression_field) == ("segmentation", 64, 64)
    assert {"probabilities_crop16", "class_crop16"} <= {o.name for o in card.outputs}
    assert [i.pixel_size for i in card.inputs] == [10.0, 40.0]
    # the SavedModel serves both inputs; a larger block of source 1 with its 4x coarser block works too
    from patchflow.plugin.engine.models.modelio import InferenceModel

    export_model(model, card, str(tmp_path / "m"))
    served = InferenceModel.load(str(tmp_path / "m"))
    assert sorted(served.input_names) == ["x1", "x2"]
    out = served.predict({"x1": noise(1, 128, 3), "x2": noise(1, 32, 2)}, ["probabilities", "features"])
    assert out["probabilities"].shape == (1, 128, 128, len(CLASSES)) and out["features"].shape[:3] == (1, 128, 128)
    assert load_card(str(tmp_path / "m")).inputs[1].pixel_size == 40.0


def test_export_serves_fusion_cnn_inputs_by_name(tmp_path):
    """The SavedModel takes x1 and x2 by name, whatever order: the same patches give the same outputs as the
    Keras model; source 2 at another patch size than its card's is refused (its branch is flattened)."""
    from patchflow.plugin.engine.models.modelio import InferenceModel

    model, card = build_model("fusion_cnn", [spec("x1", 6, 16, 28.5), spec("x2", 3, 8, 57.0)], CLASSES, 4, 1)
    export_model(model, card, str(tmp_path / "m"))
    served = InferenceModel.load(str(tmp_path / "m"))
    x1, x2 = noise(5, 16, 6, 1), noise(5, 8, 3, 2)
    out = served.predict({"x2": x2, "x1": x1})
    assert out["probabilities"].shape == (5, len(CLASSES)) and out["class"].shape == (5, 1)
    assert out["features"].shape == (5, card.output("features").channels)
    assert np.allclose(out["probabilities"], np.asarray(model([x1, x2])), atol=1e-5)
    assert set(out["class"][:, 0]) <= {c["id"] for c in CLASSES}
    with pytest.raises(Exception):  # noqa: B017 - source 2 at source 1's patch size: not the card's 8 px
        served.predict({"x1": x1, "x2": noise(5, 16, 3, 2)})


@pytest.mark.parametrize("architecture", ["fusion_cnn", "fusion_unet"])
def test_fusion_needs_two_sources(architecture):
    error = error_of(lambda: check_build(architecture, [spec("x1", 3, 64, 10.0)], CLASSES))
    assert error.parameter == "ARCHITECTURE" and "2 or more" in error.message and "unet" in error.message


@pytest.mark.parametrize(("inputs", "parameter", "words"), [
    ([spec("x1", 3, 64, 10.0), spec("x2", 2, 20, 30.0)], "PATCH_SIZE", ["PATCH_SIZE1 96 with PATCH_SIZE2 32"]),
    ([spec("x1", 3, 64, 10.0), spec("x2", 2, 16, 40.0), spec("x3", 1, 16, 20.0)], "PATCH_SIZE", ["PATCH_SIZE3 32"]),
    ([spec("x1", 3, 64, 10.0), spec("x2", 2, 16, 45.0)], "DATASET", ["4.5", "Resample", "fusion_cnn"]),
    ([spec("x1", 3, 64, 40.0), spec("x2", 2, 256, 10.0)], "DATASET", ["finest", "SOURCE1"]),
    ([spec("x1", 3, 64, 10.0), spec("x2", 2, 16, None)], "DATASET", ["pixel size", "source2"]),
    ([spec("x1", 3, 40, 10.0), spec("x2", 2, 10, 40.0)], "PATCH_SIZE", ["multiple of 16"]),
])
def test_fusion_unet_refusals_name_the_parameter_and_the_fix(inputs, parameter, words):
    error = error_of(lambda: check_build("fusion_unet", inputs, CLASSES))
    assert error.parameter == parameter, error.message
    assert all(word in error.message for word in words), error.message


def test_ratio_within_one_percent_of_an_integer_is_accepted():
    """57.3 m / 28.5 m = 2.01: the integer 2 (a rounding of the pixel size, not another resolution)."""
    check_build("fusion_unet", [spec("x1", 3, 64, 28.5), spec("x2", 3, 32, 57.3)], CLASSES)
    assert ARCHITECTURES["fusion_unet"].task == "segmentation" and ARCHITECTURES["fusion_cnn"].task == "classification"


def test_create_model_fusion_without_a_dataset_is_refused(run_op, tmp_path):
    error = error_of(lambda: run_op("create_model", ARCHITECTURE="fusion_cnn", BANDS=3, PATCH_SIZE=16, N_CLASSES=3,
                                    OUTPUT=str(tmp_path / "m")))
    assert error.parameter == "DATASET" and not (tmp_path / "m").exists()


# ---- real data: NC Landsat-7 at 28.5 m and 57 m ----------------------------------------------------------


@pytest.fixture(scope="module")
def nc_fusion(nc, tmp_path_factory):
    """{'points': 16 px + 8 px patches with the class field, 'labels': 64 px + 32 px patches with the label
    raster, 'single': 16 px patches of source 1 alone, 'coarse': the 57 m raster}."""
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    def run(operation, **parameters):
        return run_job(protocol.Job(operation, parameters, "test"), Reporter())

    folder = tmp_path_factory.mktemp("fusion")
    image, labels = str(nc / "landsat_multiband.tif"), str(nc / "landsat96_labelled_pixels.tif")
    coarse = str(folder / "landsat_57m.tif")
    gdal.Warp(coarse, image, xRes=57.0, yRes=57.0, resampleAlg="average", creationOptions=["COMPRESS=NONE"])
    points = str(nc / "landsat96_points.shp")
    result = {"coarse": coarse, "image": image}
    result["points"] = run("extract_patches", INPUT=points, SOURCE1=image, PATCH_SIZE1=16, SOURCE2=coarse,
                           PATCH_SIZE2=8, CLASS_FIELD="label", OUTPUT=str(folder / "points" / "d.json"))["OUTPUT"]
    result["single"] = run("extract_patches", INPUT=points, SOURCE1=image, PATCH_SIZE1=16, CLASS_FIELD="label",
                           OUTPUT=str(folder / "single" / "d.json"))["OUTPUT"]
    centres = str(folder / "centres.gpkg")
    run("sample_label_raster", INPUT=labels, NUMBER=6, PATCH_SIZE=64, OUTPUT=centres)
    result["labels"] = run("extract_patches", INPUT=centres, SOURCE1=image, PATCH_SIZE1=64, SOURCE2=coarse,
                           PATCH_SIZE2=32, LABEL_RASTER=labels, LABEL_PATCH_SIZE=64,
                           OUTPUT=str(folder / "labels" / "d.json"))["OUTPUT"]
    return result


def manifest_of(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def test_create_model_builds_fusion_cnn_from_a_two_source_dataset(run_op, nc_fusion, tmp_path):
    result, reporter = run_op("create_model", ARCHITECTURE="fusion_cnn", DATASET=nc_fusion["points"], WIDTH=4,
                              OUTPUT=str(tmp_path / "m"))
    card = load_card(result["OUTPUT"])
    assert [(i.name, i.source, i.patch_size, i.pixel_size) for i in card.inputs] == [
        ("x1", "source1", 16, 28.5), ("x2", "source2", 8, 57.0)]
    sources = manifest_of(nc_fusion["points"])["sources"]
    assert card.inputs[1].normalization.mean == pytest.approx([b["mean"] for b in sources[1]["bands"]])
    assert card.inputs[1].normalization.mean != pytest.approx(card.inputs[0].normalization.mean)
    assert any("x1 <- source1 16x16x5 at 28.5 m; x2 <- source2 8x8x5 at 57 m" in line for line in reporter.logs), \
        reporter.logs


def test_train_fusion_cnn_uses_both_sources(run_op, nc_fusion, tmp_path):
    """Trained on 16 px + 8 px patches: the card lists both inputs with their pixel sizes, and the model's
    output changes when only source 2's patches change (it is really used)."""
    from patchflow.plugin.engine.models.modelio import InferenceModel

    result, _ = run_op("train_model", TRAIN=nc_fusion["points"], ARCHITECTURE="fusion_cnn", EPOCHS=2, WIDTH=4,
                       BATCH_SIZE=16, OUTPUT=str(tmp_path / "m"))
    assert result["EPOCHS_RUN"] == 2
    card = load_card(result["OUTPUT"])
    assert card.architecture == "fusion_cnn"
    assert [(i.name, i.source, i.patch_size, i.pixel_size) for i in card.inputs] == [
        ("x1", "source1", 16, 28.5), ("x2", "source2", 8, 57.0)]
    model = InferenceModel.load(result["OUTPUT"])
    x1, x2 = noise(8, 16, 5, 3), noise(8, 8, 5, 4)
    first = model.predict({"x1": x1, "x2": x2}, ["probabilities"])["probabilities"]
    other = model.predict({"x1": x1, "x2": noise(8, 8, 5, 5)}, ["probabilities"])["probabilities"]
    assert first.shape == (8, len(card.classes))
    assert np.abs(first - other).max() > 1e-4


def test_train_fusion_on_a_single_source_dataset_is_refused_before_tensorflow(run_op, nc_fusion, tmp_path):
    error = error_of(lambda: run_op("train_model", TRAIN=nc_fusion["single"], ARCHITECTURE="fusion_cnn", EPOCHS=1,
                                    OUTPUT=str(tmp_path / "m")))
    assert error.parameter == "ARCHITECTURE" and "patch_cnn" in error.message
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.training").exists()


def test_non_fusion_zoo_architecture_on_two_sources_is_still_refused(run_op, nc_fusion, tmp_path):
    error = error_of(lambda: run_op("train_model", TRAIN=nc_fusion["points"], ARCHITECTURE="patch_cnn", EPOCHS=1,
                                    OUTPUT=str(tmp_path / "m")))
    assert error.parameter == "ARCHITECTURE" and "source2" in error.message


def test_train_fusion_unet_with_mismatched_patch_sizes_is_refused(run_op, nc_fusion, tmp_path):
    """Extract patches keeps the sources' footprints equal; a manifest saying source 2 is 4x coarser (114 m)
    with its 32 px patches (128 px of source 1, whose patches are 64) is refused naming TRAIN, with the size
    that fits, before TensorFlow."""
    manifest = manifest_of(nc_fusion["labels"])
    manifest["sources"][1]["pixel_size"] = [114.0, -114.0]
    edited = os.path.join(os.path.dirname(nc_fusion["labels"]), "claims_114m.json")
    with open(edited, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle)
    error = error_of(lambda: run_op("train_model", TRAIN=edited, ARCHITECTURE="fusion_unet", EPOCHS=1,
                                    OUTPUT=str(tmp_path / "m")))
    assert error.parameter == "TRAIN" and "PATCH_SIZE2 16" in error.message, error.message
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.training").exists()


def test_fusion_cnn_on_label_patches_only_is_refused_before_tensorflow(run_op, nc_fusion, tmp_path):
    error = error_of(lambda: run_op("train_model", TRAIN=nc_fusion["labels"], ARCHITECTURE="fusion_cnn", EPOCHS=1,
                                    OUTPUT=str(tmp_path / "m")))
    assert error.parameter == "TRAIN" and "CLASS_FIELD" in error.message and "fusion_unet" in error.message
    assert not (tmp_path / "m").exists()


def test_the_record_cache_feeds_each_input_at_its_own_patch_size(nc_fusion, tmp_path):
    """What fit reads (the record cache) for a two-input model: x1 16 px and x2 8 px, each the Python stream's
    values (cropping, its own source's normalisation); augmented, both get the same flip/rotation."""
    from patchflow.plugin.engine.data import records
    from patchflow.plugin.engine.data.datasets import LABELS, BatchStream, Feed, PatchDataset, Target, dihedral
    from patchflow.plugin.engine.models.fusion import fusion_specs

    dataset = PatchDataset(nc_fusion["points"], "TRAIN")
    try:
        feeds = [Feed(s.name, s.source, s.patch_size, s.bands, s.normalization)
                 for s in fusion_specs(dataset.manifest)]
        target = Target(LABELS, "classes", (), [int(c["id"]) for c in dataset.classes])
        stream = BatchStream(dataset, feeds, target, 16)
        layout = records.write_records(stream, str(tmp_path / "plain"))
        batches = list(records.record_dataset(stream, str(tmp_path / "plain"), layout).take(stream.steps))
        expected = list(stream.epoch(0))
        for name, size in (("x1", 16), ("x2", 8)):
            got = np.concatenate([b[0][name].numpy() for b in batches])
            assert got.shape == (dataset.count, size, size, 5)
            assert np.allclose(got, np.concatenate([e[0][name] for e in expected]), atol=1e-5)
        augmented = BatchStream(dataset, feeds, target, 16, augment=True, seed=1)
        layout = records.write_records(augmented, str(tmp_path / "augmented"))
        first = next(iter(records.record_dataset(augmented, str(tmp_path / "augmented"), layout)))[0]
        x1, x2 = first["x1"].numpy(), first["x2"].numpy()
        plain = expected[0][0]
        for index in range(len(x1)):  # the transform that gives x1 gives x2 too
            found = [t for t in range(8) if np.allclose(dihedral(plain["x1"][index:index + 1], t)[0], x1[index])]
            assert found and any(np.allclose(dihedral(plain["x2"][index:index + 1], t)[0], x2[index]) for t in found)
    finally:
        dataset.close()


@pytest.mark.slow
def test_train_fusion_unet_on_label_patches(run_op, nc_fusion, tmp_path):
    result, _ = run_op("train_model", TRAIN=nc_fusion["labels"], ARCHITECTURE="fusion_unet", EPOCHS=1, WIDTH=2,
                       BATCH_SIZE=4, OUTPUT=str(tmp_path / "m"))
    assert result["EPOCHS_RUN"] == 1
    card = load_card(result["OUTPUT"])
    assert (card.architecture, card.task, card.receptive_field) == ("fusion_unet", "segmentation", 64)
    assert [(i.name, i.patch_size, i.pixel_size) for i in card.inputs] == [("x1", 64, 28.5), ("x2", 32, 57.0)]


def test_a_users_two_input_model_gets_pixel_sizes_in_its_trained_card(run_op, nc_fusion, tmp_path):
    """A model of one's own with two inputs (INPUTS x1=source1;x2=source2): the trained card records the
    manifest's pixel size of each source (what serving reads for the ratio)."""
    import keras

    x1, x2 = keras.Input((16, 16, 5), name="x1"), keras.Input((8, 8, 5), name="x2")
    pooled = [keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(x)) for x in (x1, x2)]
    n_classes = len(manifest_of(nc_fusion["points"])["classes"])
    out = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")(
        keras.layers.Concatenate()(pooled))
    path = str(tmp_path / "mine.keras")
    keras.Model([x1, x2], out).save(path)
    result, _ = run_op("train_model", TRAIN=nc_fusion["points"], MODEL=path, INPUTS="x1=source1;x2=source2",
                       EPOCHS=1, OUTPUT=str(tmp_path / "m"))
    card = load_card(result["OUTPUT"])
    assert {i.name: (i.patch_size, i.pixel_size) for i in card.inputs} == {"x1": (16, 28.5), "x2": (8, 57.0)}


@pytest.mark.slow
def test_create_fusion_unet_then_train_it_as_model(run_op, nc_fusion, tmp_path):
    """Create model writes fusion_unet for the 64 px + 32 px dataset (its upsampling layer a registered one, so
    the .keras model passes the safety gate untrusted); Train model fine-tunes it as MODEL, inputs from its card."""
    created, reporter = run_op("create_model", ARCHITECTURE="fusion_unet", DATASET=nc_fusion["labels"], WIDTH=2,
                               OUTPUT=str(tmp_path / "created"))
    assert any("x2 <- source2 32x32x5 at 57 m" in line for line in reporter.logs), reporter.logs
    result, _ = run_op("train_model", TRAIN=nc_fusion["labels"], MODEL=str(tmp_path / "created"),
                       EPOCHS=1, BATCH_SIZE=4, OUTPUT=str(tmp_path / "m"))
    card = load_card(result["OUTPUT"])
    assert card.architecture == "fusion_unet"
    assert [(i.name, i.source, i.patch_size, i.pixel_size) for i in card.inputs] == [
        ("x1", "source1", 64, 28.5), ("x2", "source2", 32, 57.0)]
