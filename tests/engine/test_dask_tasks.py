"""The Dask task (scale/tasks.py) run in this process: a window served into its part is that window of the
one-process output, and a model whose files no longer hash to the client's digest is refused as the task's
result (named MODEL, no part written), not raised for Dask to retry."""

from __future__ import annotations

import os

import numpy as np
from dask_cluster import nc_fcnn
from osgeo import gdal

from patchflow.plugin import protocol
from patchflow.plugin.declarations import OPERATIONS
from patchflow.plugin.engine.models.modeldigest import model_digest
from patchflow.plugin.engine.params import Params, RunContext
from patchflow.plugin.engine.reporting import Reporter
from patchflow.plugin.engine.scale.parts import part_path
from patchflow.plugin.engine.scale.tasks import PlanSpec, WindowJob, serve_window
from patchflow.plugin.engine.scale.windows import windows
from patchflow.plugin.engine.serve.geometry import probe
from patchflow.plugin.engine.serve.outputs import output_format
from patchflow.plugin.engine.serve.plan import make_plan
from patchflow.plugin.engine.staging import OutputStaging
from patchflow.plugin.engine.worker import run_job


def test_a_window_served_by_the_task_is_that_window_of_the_one_process_output(nc, tmp_path):
    model = nc_fcnn(tmp_path)
    values = {"MODEL": model, "SOURCE1": [str(nc / "landsat_multiband.tif")], "TILE_SIZE": 64,
              "OUTPUT": str(tmp_path / "one.tif")}
    whole = gdal.Open(run_job(protocol.Job("apply_model", values, "one"), Reporter())["OUTPUT"]).ReadAsArray()
    params = Params(values, {}, OPERATIONS["apply_model"])
    plan = make_plan(params, RunContext("t", Reporter(), OutputStaging("t")))
    channels = {name: v.shape[-1] for name, v in probe(plan.model, plan.sources, plan.outputs, 64).items()}
    fmt = output_format(params, plan, sum(channels.values()), 3)
    found = windows(plan, 3)
    assert len(found) == 9  # 8 x 7 tiles of 64 px, 3 x 3 tiles a window
    window = found[4]  # the middle one: margins read from its neighbours
    job = WindowJob(values, {}, model_digest(model), PlanSpec.of(plan), fmt, channels, window,
                    part_path(str(tmp_path / "map.tif"), window))
    result = serve_window(job)
    assert result.error is None and result.part == job.part and os.listdir(tmp_path).count(
        os.path.basename(job.part)) == 1
    ox, oy, ow, oh = window.output
    assert (ox, oy, ow, oh) == (192, 192, 192, 192)
    assert np.array_equal(gdal.Open(result.part).ReadAsArray(), whole[oy:oy + oh, ox:ox + ow])
    counted = np.unique(whole[oy:oy + oh, ox:ox + ow], return_counts=True)
    assert result.counts == dict(zip(*(a.tolist() for a in counted)))
    os.remove(result.part)
    with open(os.path.join(model, "saved_model.pb"), "ab") as handle:  # changed after the client hashed it
        handle.write(b"\0")
    refused = serve_window(job)
    assert refused.error is not None and refused.error[1] == "MODEL" and "not the one checked" in refused.error[0]
    assert not any(name.startswith("part-") for name in os.listdir(tmp_path))
