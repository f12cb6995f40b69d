"""The operations a job can name, each ``run(params, context) -> outputs``."""

from __future__ import annotations

from collections.abc import Callable

from .manifest import run_describe_patches, run_extract_patches
from .params import Params, RunContext
from .sampling import run_sample_label_raster, run_sample_vector
from .split import run_grid_split

Operation = Callable[[Params, RunContext], dict]

OPERATIONS: dict[str, Operation] = {
    "sample_label_raster": run_sample_label_raster,
    "sample_vector": run_sample_vector,
    "grid_split": run_grid_split,
    "extract_patches": run_extract_patches,
    "describe_patches": run_describe_patches,
}
