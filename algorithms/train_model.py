"""Train model: fits a zoo architecture or the user's model on patches streamed from disk."""

from __future__ import annotations

from .base import TRUST_HELP, PatchFlowAlgorithm


class TrainModel(PatchFlowAlgorithm):
    NAME = "trainmodel"
    DISPLAY_NAME = "Train model"
    GROUP_ID = "models"
    OPERATION = "train_model"
    SHORT = "Train a deep network on patches, with validation, test scores (kappa) and a report."
    TAGS = ("tensorflow", "keras", "cnn", "neural network", "training", "u-net", "segmentation", "super-resolution",
            "kappa", "accuracy", "otbtf")
    HELP = (
        "Trains a deep network on patches: a model made by <i>Create model</i>, your own model (a Keras "
        "<i>.keras</i> file, or a SavedModel: pick its <i>saved_model.pb</i>), or, when no model is given, "
        "the chosen architecture built for the training set.<br>Patches are streamed from the patches-images "
        "on disk (datasets larger than memory train too); class weights balance rare classes; augmentation "
        "adds flips and 90° rotations.<br>Every epoch is checkpointed in <i>&lt;output&gt;.training</i>: a "
        "cancelled or interrupted run continues from its last complete epoch when run again with RESUME.<br>"
        "<b>Honest figures</b>: VALID may choose the epoch (early stopping, <i>Weights saved</i>: the best "
        "epoch's) and the seed (REPEATS), which makes its scores optimistic; TEST is scored once at the end with "
        "the weights saved and never chooses anything (TEST_OA, TEST_KAPPA, TEST_MACRO_F1). Training-set scores "
        "are given beside them (TRAIN_OA, TRAIN_KAPPA), with a note when they diverge (overfitting); without VALID, "
        "OA and KAPPA are empty. SAVED_EPOCH is the epoch whose weights the model holds. REPEATS trains seeds "
        "SEED, SEED+1, ... and reports the mean and sd of every score (e.g. KAPPA_MEAN, KAPPA_SD); the seed with "
        "the lowest validation loss is kept.<br>"
        "The output folder is a SavedModel with its model card (for serving), the training report "
        "(report.html: curves, scores on each set, confusion matrix, precision/recall/F1, overall accuracy, kappa), "
        "history.csv, training.csv, validation.csv, test.csv and TensorBoard logs (logs/). The same seed gives the "
        "same weights on the CPU.<br>"
        "<b>Super-resolution:</b> with a dataset from <i>Build super-resolution dataset</i> and the "
        "super-resolution generator, the target is the HR image: L1 by default (Loss, or combined with "
        "<i>l1=1;ssim=0.2</i>; add <i>adversarial=0.001</i> to train against an LSGAN discriminator after "
        "the pre-training epochs), PSNR and SSIM per epoch, and the report compares the model with bicubic "
        "upsampling on the validation patches (with a strip LR | bicubic | SR | HR)." + TRUST_HELP
    )
