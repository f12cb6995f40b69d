"""The checks that train_model and train_classifier run before TensorFlow or scikit-learn starts,
put together from the output, dataset and model checks: OUTPUT writable, the datasets readable
with 2 classes or more, the model card (or the architecture to build) fitting the data; and the
warnings about a batch larger than the data and about what RESUME does.
"""

from __future__ import annotations

import json
import os

from ..errors import PatchFlowError
from ..params import Params
from ..reporting import Reporter
from .datasetchecks import class_counts, class_names, dataset, image_target, missing_classes, two_classes
from .modelchecks import card_against_dataset, card_of, outputs_in_card
from .writability import writable


def training(params: Params, reporter: Reporter, batch_size: int, epochs: int) -> None:
    """train_model: OUTPUT writable, TRAIN/VALID/TEST readable, 2 classes or more in TRAIN, the model
    card (or the architecture) fits TRAIN; warnings for a batch larger than TRAIN and for classes
    VALID or TEST has no sample of."""
    writable(params, "OUTPUT")
    train_path, valid_path = params.values.get("TRAIN"), params.values.get("VALID") or None
    train = dataset(train_path, "TRAIN")
    valid = dataset(valid_path, "VALID")
    test = dataset(params.values.get("TEST") or None, "TEST")
    if train is None:
        return
    model = params.values.get("MODEL") or None
    card_against_dataset(card_of(model) if model else None, train, params.values.get("INPUTS"), train_path)
    for key, other_set in (("VALID", valid), ("TEST", test)):
        sources = {s["name"]: s for s in (other_set or {}).get("sources") or []}
        for source in train.get("sources") or []:
            other = sources.get(source["name"])
            if other is not None and len(other["bands"]) != len(source["bands"]):
                raise PatchFlowError(f"the {'validation' if key == 'VALID' else 'test'} source '{source['name']}' "
                                     f"has {len(other['bands'])} bands; training has {len(source['bands'])}. Extract "
                                     "both from the same rasters.", key)
    if not image_target(params, train):
        if not train.get("labels") and not any(s.get("role") == "label" for s in train.get("sources") or []):
            raise PatchFlowError(f"the dataset {train_path} has neither a labels image nor label patches. Extract it "
                                 "with a class field or a label raster, or name the TARGET source.", "TRAIN")
        counts = two_classes(train, train_path, "TRAIN")
        for key, other_set in (("VALID", valid), ("TEST", test)):
            if counts is not None and other_set is not None:
                missing_classes(reporter, counts, class_counts(other_set, key), class_names(train),
                                f"{key} ({params.values.get(key)})")
    if not model:
        architecture_fits(params, train)
    count = int(train.get("n_patches") or 0)
    if 0 < count < batch_size:
        reporter.warning(f"BATCH_SIZE {batch_size} is larger than TRAIN's {count} patches: each epoch is one batch "
                         f"of {count} patches.")


def architecture_fits(params: Params, manifest: dict) -> None:
    """The architecture to build (no MODEL) can be built for TRAIN's first source (a fusion architecture:
    every image source, or those INPUTS names) and classes."""
    from ..models.fusion import FUSION, describe_inputs, fusion_specs
    from ..models.modelcard import InputSpec
    from ..models.srmodel import ARCHITECTURE as SR_ARCHITECTURE
    from ..models.zoo import check_build

    architecture = params.choice("ARCHITECTURE")
    sources = manifest.get("sources") or []
    if architecture == SR_ARCHITECTURE or not sources or image_target(params, manifest):
        return
    source = sources[0]
    images = [s["name"] for s in sources if s.get("role", "image") == "image"]
    # before TensorFlow; trainsetup checks any model
    if len(images) > 1 and not params.string("INPUTS") and architecture not in FUSION:
        raise PatchFlowError(
            f"the dataset has {len(images)} image sources ({', '.join(images)}) but the zoo's {architecture} takes "
            f"1 (x1 <- {images[0]}): {', '.join(images[1:])} would be silently left out. Give a model with an input "
            "per source, extract the dataset from the sources the model takes, or name the sources to use in INPUTS "
            f"(e.g. x1={images[0]}) to train without the others on purpose.", "ARCHITECTURE")
    specs = fusion_specs(manifest, params.string("INPUTS")) if architecture in FUSION else [
        InputSpec("x1", len(source["bands"]), int(source["patch_size"]), source["name"])]
    spec = specs[0]
    try:
        check_build(architecture, specs, list(manifest.get("classes") or []))
    except PatchFlowError as exc:
        if exc.parameter in ("ARCHITECTURE", "INPUTS"):
            raise
        has = describe_inputs(specs) if len(specs) > 1 else f"{spec.bands} bands, {spec.patch_size} px patches"
        raise PatchFlowError(f"{exc.message} (the dataset has {has} and {len(manifest.get('classes') or [])} "
                             "classes)", "TRAIN") from None
    if architecture == "fusion_cnn" and not manifest.get("labels"):
        raise PatchFlowError("fusion_cnn gives one class per patch, but TRAIN has label patches only (no labels "
                             "image): extract the patches with a CLASS_FIELD, or choose fusion_unet.", "TRAIN")
    if any(s.get("role") == "label" for s in sources) or int((manifest.get("labels") or {}).get("patch_size") or 1) > 1:
        from ..models.zoo import ARCHITECTURES

        problem = ARCHITECTURES[architecture].segmentation_patch_problem(spec.patch_size)
        if problem:
            raise PatchFlowError(f"{problem} (TRAIN has {spec.patch_size} px patches).", "TRAIN")


def resume(params: Params, reporter: Reporter, work: str, signature: str, epochs: int) -> None:
    """Say what RESUME does: nothing to resume, or more epochs done than EPOCHS asks."""
    if not params.boolean("RESUME"):
        return
    if not os.path.isdir(work):
        output = work[:-len(".training")] if work.endswith(".training") else work
        say = reporter.warning if os.path.isdir(output) and os.listdir(output) else reporter.log
        # a warning when OUTPUT holds a finished model (one might expect to train it on); RESUME is on by
        # default, so for a new OUTPUT it is only a log line
        say(f"RESUME: there is no interrupted training of this OUTPUT to resume ({work} does not exist): "
            "training starts at epoch 1." + (" A finished model is not trained on: give it as MODEL to fine-tune it."
                                             if say == reporter.warning else ""))
        return
    try:
        with open(os.path.join(work, "state.json"), encoding="utf-8") as handle:
            state = json.load(handle)
        done = int(state["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return  # the training says the checkpoint is not used
    if state.get("signature") == signature and os.path.exists(os.path.join(work, "checkpoint.keras")) and \
            done > epochs:
        reporter.warning(f"RESUME: the interrupted training in {work} has done {done} epochs, more than EPOCHS "
                         f"({epochs}): no epoch is trained, the model is exported as it is after epoch {done}. Raise "
                         "EPOCHS to train on, or untick RESUME to start over.")


def classifier_training(params: Params) -> None:
    """train_classifier: OUTPUT writable, DATASET/VALID readable with 2 classes or more, the model
    card's bands and patch size fit DATASET."""
    writable(params, "OUTPUT")
    path = params.values.get("DATASET")
    train = dataset(path, "DATASET")
    dataset(params.values.get("VALID") or None, "VALID")
    dataset(params.values.get("TEST") or None, "TEST")
    if train is None:
        return
    model = params.values.get("MODEL") or None
    card = card_of(model) if model else None
    card_against_dataset(card, train, None, path)
    outputs_in_card(model, card, [str(params.values.get("FEATURE_OUTPUT") or "features")], "FEATURE_OUTPUT")
    if train.get("labels") and int(train["labels"].get("patch_size") or 1) == 1:
        two_classes(train, path, "DATASET")
