"""Classify on a local Dask cluster (EXECUTION local, two workers; scale/classifying.py): on the NC scene, a
Random Forest's class map and confidence are the one-process run's (the same blocks, grouped into windows);
a classifier changed after the client hashed it is refused by the workers, naming CLASSIFIER."""

from __future__ import annotations

import os

import numpy as np
import pytest
from osgeo import gdal

from patchflow.plugin import protocol
from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.reporting import Reporter
from patchflow.plugin.engine.scale.classifying import group_blocks
from patchflow.plugin.engine.worker import run_job

BLOCK = 128 * 128  # output pixels a block: the NC scene in about 14 blocks


class Stages(Reporter):
    def __init__(self, action=None) -> None:
        super().__init__()
        self.stages: list[str] = []
        self.action = action

    def stage(self, text, percent=None, until=None, log=True) -> None:
        super().stage(text, percent, until, log)
        self.stages.append(text)
        if self.action is not None and text.startswith("starting a local Dask cluster"):
            self.action()  # once: after the client hashed the classifier's files, before any worker runs
            self.action = None


@pytest.fixture(scope="module")
def rf(nc, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("dask_classify")
    image = str(nc / "landsat_multiband.tif")
    extracted = run_job(protocol.Job("extract_patches", {"INPUT": str(nc / "landsat96_points.shp"), "SOURCE1": [image],
                                                         "PATCH_SIZE1": 1, "CLASS_FIELD": "label",
                                                         "OUTPUT": str(folder / "train.json")}, "x"), Reporter())
    return run_job(protocol.Job("train_classifier", {"DATASET": extracted["OUTPUT"], "N_TREES": 10,
                                                     "OUTPUT": str(folder / "rf.skops")}, "t"), Reporter())["OUTPUT"]


def test_runs_of_blocks_along_rows_cover_every_block_once():
    blocks = [(x, y, min(100, 250 - x), min(40, 90 - y)) for y in range(0, 90, 40) for x in range(0, 250, 100)]
    grouped = group_blocks(blocks, 2)
    assert [rect for rect, _ in grouped] == [(0, 0, 200, 40), (200, 0, 50, 40), (0, 40, 200, 40), (200, 40, 50, 40),
                                             (0, 80, 200, 10), (200, 80, 50, 10)]
    assert sorted(b for _, run in grouped for b in run) == sorted(blocks)


@pytest.mark.slow
def test_a_local_cluster_classifies_as_one_process(nc, rf, tmp_path, monkeypatch):
    from patchflow.plugin.engine.classify import deepfeatures

    monkeypatch.setattr(deepfeatures, "PIXEL_BLOCK", BLOCK)
    image = str(nc / "landsat_multiband.tif")
    outputs = {}
    for name, extra in (("one", {}), ("dask", {"EXECUTION": "local", "WORKERS": 2})):
        (tmp_path / name).mkdir()
        reporter = Stages()
        outputs[name] = run_job(protocol.Job("classify", {"INPUT": [image], "CLASSIFIER": rf,
                                                          "OUTPUT": str(tmp_path / name / "map.tif"),
                                                          "OUTPUT_CONFIDENCE": str(tmp_path / name / "conf.tif"),
                                                          **extra}, name), reporter)
    windows = [text for text in reporter.stages if text.startswith("windows ")]
    assert len(windows) > 1 and windows[-1].split()[1].split("/")[0] == windows[-1].split()[1].split("/")[1]
    assert int(windows[-1].split("/")[1]) >= 4
    one, dask = outputs["one"], outputs["dask"]
    assert dask["COUNT"] == one["COUNT"] > 0
    for key in ("OUTPUT", "OUTPUT_CONFIDENCE"):
        a, b = gdal.Open(one[key]), gdal.Open(dask[key])
        assert np.array_equal(a.ReadAsArray(), b.ReadAsArray())
        band_a, band_b = a.GetRasterBand(1), b.GetRasterBand(1)
        assert (a.GetGeoTransform(), a.GetProjection(), band_a.GetNoDataValue(), band_a.GetDescription()) == (
            b.GetGeoTransform(), b.GetProjection(), band_b.GetNoDataValue(), band_b.GetDescription())
        table_a, table_b = band_a.GetColorTable(), band_b.GetColorTable()
        assert (table_a is None) == (table_b is None)
        if table_a is not None:
            assert [table_a.GetColorEntry(i) for i in range(table_a.GetCount())] == [
                table_b.GetColorEntry(i) for i in range(table_b.GetCount())]
    assert sorted(os.listdir(tmp_path / "dask")) == sorted(os.listdir(tmp_path / "one"))


@pytest.mark.slow
def test_a_classifier_changed_after_the_client_hashed_it_is_refused(nc, rf, tmp_path, monkeypatch):
    import shutil

    from patchflow.plugin.engine.classify import deepfeatures

    monkeypatch.setattr(deepfeatures, "PIXEL_BLOCK", BLOCK)
    changed = tmp_path / "rf.skops"
    shutil.copy(rf, changed)
    shutil.copy(rf[:-len(".skops")] + ".json", tmp_path / "rf.json")
    (tmp_path / "out").mkdir()

    def change():  # the client has hashed the classifier's files; now it starts the cluster
        with open(tmp_path / "rf.json", "a", encoding="utf-8") as handle:
            handle.write("\n")

    with pytest.raises(PatchFlowError) as error:
        run_job(protocol.Job("classify", {"INPUT": [str(nc / "landsat_multiband.tif")], "CLASSIFIER": str(changed),
                                          "OUTPUT": str(tmp_path / "out" / "map.tif"), "EXECUTION": "local",
                                          "WORKERS": 2}, "changed"), Stages(change))
    assert error.value.parameter == "CLASSIFIER" and "not the one checked before the run" in error.value.message
    assert os.listdir(tmp_path / "out") == []


@pytest.mark.slow
def test_deep_features_on_a_local_cluster_and_a_network_changed_meanwhile(nc, tmp_path, monkeypatch):
    """A Random Forest on a patch CNN's features: the same map on Dask; then the network changed after the
    client hashed it: refused by the workers."""
    from patchflow.plugin.engine.classify import deepfeatures
    from patchflow.plugin.engine.data.manifest import load_manifest
    from patchflow.plugin.engine.models.modelcard import InputSpec, Normalization
    from patchflow.plugin.engine.models.zoo import build_model, export_model

    monkeypatch.setattr(deepfeatures, "DEEP_BLOCK", BLOCK)
    image = str(nc / "landsat_multiband.tif")
    dataset = run_job(protocol.Job("extract_patches", {"INPUT": str(nc / "landsat96_points.shp"), "SOURCE1": [image],
                                                       "PATCH_SIZE1": 16, "CLASS_FIELD": "label",
                                                       "OUTPUT": str(tmp_path / "train.json")}, "x"), Reporter())
    manifest = load_manifest(dataset["OUTPUT"])
    spec = InputSpec("x1", 5, 16, "source1", Normalization.from_stats(manifest["sources"][0]["bands"]))
    model, card = build_model("patch_cnn", [spec], manifest["classes"], width=4, seed=3)
    export_model(model, card, str(tmp_path / "cnn"))
    rf = run_job(protocol.Job("train_classifier", {"DATASET": dataset["OUTPUT"], "MODEL": str(tmp_path / "cnn"),
                                                   "N_TREES": 10, "OUTPUT": str(tmp_path / "rf.skops")}, "t"),
                 Reporter())["OUTPUT"]
    maps = {}
    for name, extra in (("one", {}), ("dask", {"EXECUTION": "local", "WORKERS": 2})):
        maps[name] = run_job(protocol.Job("classify", {"INPUT": [image], "CLASSIFIER": rf,
                                                       "OUTPUT": str(tmp_path / f"{name}.tif"), **extra}, name),
                             Reporter())["OUTPUT"]
    assert np.array_equal(gdal.Open(maps["one"]).ReadAsArray(), gdal.Open(maps["dask"]).ReadAsArray())

    def change():
        with open(tmp_path / "cnn" / "saved_model.pb", "ab") as handle:
            handle.write(b"\0")

    (tmp_path / "out").mkdir()
    with pytest.raises(PatchFlowError) as error:
        run_job(protocol.Job("classify", {"INPUT": [image], "CLASSIFIER": rf, "OUTPUT": str(tmp_path / "out" / "m.tif"),
                                          "EXECUTION": "local", "WORKERS": 2}, "changed"), Stages(change))
    assert error.value.parameter == "CLASSIFIER" and "not the one checked before the run" in error.value.message
    assert str(tmp_path / "cnn") in error.value.message and os.listdir(tmp_path / "out") == []
