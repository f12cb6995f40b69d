"""Super-resolution dataset: LR / HR patch pairs, the LR given or degraded from the HR (Wald's protocol)."""

from __future__ import annotations

from .base import PatchFlowAlgorithm


class BuildSrDataset(PatchFlowAlgorithm):
    NAME = "buildsrdataset"
    DISPLAY_NAME = "Build super-resolution dataset"
    GROUP_ID = "patches"
    OPERATION = "build_sr_dataset"
    SHORT = "Low- and high-resolution patch pairs for training a super-resolution network."
    TAGS = ("super-resolution", "sr", "dataset", "patches", "wald", "sr4rs")
    HELP = (
        "Pairs of low-resolution (LR) and high-resolution (HR) patches covering the same ground, for training "
        "a super-resolution model (SR4RS-style), split spatially into training and validation datasets."
        "<br><b>With an LR image</b>: both must share a CRS and overlap; the ratio is measured from the pixel "
        "sizes (e.g. 10 m / 2.5 m = 4; non-integer ratios such as 2.5 work when patch size and step times the "
        "ratio are whole numbers of HR pixels) and HR pixel edges must fall on LR pixel edges (the error says "
        "how far off they are, in LR pixels).<br><b>Without an LR image</b>, the HR image is degraded by "
        "Wald's protocol: a Gaussian low-pass whose gain at the LR Nyquist frequency is 0.25 (sigma = 0.53 x "
        "scale HR pixels), sampled at the centre of each scale x scale block; the degraded image can be saved."
        "<br>Patch centres lie on a grid (patch size and step in LR pixels; HR patches are scale times larger); "
        "pairs touching nodata are left out. Blocks of patches go to training or validation, and training "
        "patches that would overlap validation ones are dropped.<br><b>Radiometric matching</b> fits, per "
        "band, LR = gain x HR + offset (HR averaged over each LR pixel) and writes the HR patches in LR units."
        "<br>Outputs: for each set, a manifest (JSON) and two OTBTF patches-images beside it, "
        "&lt;name&gt;_lr.tif and &lt;name&gt;_hr.tif. Train a model with input 'lr' and target 'hr'."
    )
