"""The bad-inputs battery: distinct bad inputs through processing.run, covering every algorithm of
the provider. Each case is one bad parameter on top of a run that is otherwise sound, on small real
inputs derived from the North Carolina Landsat-7 scene, and asserts that:

* processing.run raises a QgsProcessingException whose message names the parameter by its
  description and its key ("Training dataset (manifest) (TRAIN): ..."). QGIS's own checks (a value
  below a minimum, a layer QGIS cannot load) say "Incorrect parameter value for KEY"; PatchFlow's
  algorithms prefix those with "Description (KEY): " too (base.py checkParameterValues), so every
  case checks both;
* the error says it once: not again in the log (a traceback repeating it);
* no output and no staging folder (.patchflow-staging-*) is left;
* every file of the input folder is byte-identical afterwards, and none was added (sha256 of
  every file before and after: an .aux.xml written beside an input shows);
* (the time each case takes is printed with -s; no timed assertion).

Each case gets its own copy of the inputs (made once per module: datasets, a tiny trained model, a
classifier, accuracy reports), so a case cannot pass because an earlier one left something behind.
Run with -s to see the time each case took.

Not here (the lead's cases): OUTPUT equal to, inside or containing an input; OVERWRITE on a
foreign folder; concurrent runs; malicious models; NaN inputs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingContext, QgsProcessingException

from patchflow.tests.qgis.feedback import LineRecorder

UNWRITABLE = "/proc/patchflow-no-such-folder"  # a folder nobody can create, not even root
TIMINGS: dict[str, float] = {}
MESSAGES: dict[str, str] = {}

# A sound run of each algorithm; a case changes one or two parameters (None removes one). "@in/x" is
# a file of the case's input folder, "@out/x" a path in its (empty) output folder.
BASE: dict[str, dict] = {
    "samplefromlabelraster": {"INPUT": "@in/labels.tif", "NUMBER": 5, "OUTPUT": "@out/samples.gpkg"},
    "samplefromvector": {"INPUT": "@in/polygons.shp", "FIELD": "label", "RASTER": "@in/image.tif", "NUMBER": 5,
                         "OUTPUT": "@out/samples.gpkg"},
    "gridsplit": {"INPUT": "@in/image.tif", "PATCH_SIZE": 16, "OUTPUT_TRAIN": "@out/train.gpkg",
                  "OUTPUT_VALID": "@out/valid.gpkg"},
    "extractpatches": {"INPUT": "@in/points.shp", "SOURCE1": ["@in/image.tif"], "PATCH_SIZE1": 16,
                       "CLASS_FIELD": "id", "OUTPUT": "@out/dataset.json"},
    "describepatches": {"PATCHES": ["@in/train_source1.tif"], "LABELS": "@in/train_labels.tif",
                        "OUTPUT": "@out/described.json"},
    "buildsrdataset": {"HR": ["@in/image.tif"], "PATCH_SIZE": 8, "BLOCK_SIZE": 2, "OUTPUT_TRAIN": "@out/sr_train.json",
                       "OUTPUT_VALID": "@out/sr_valid.json"},
    "createmodel": {"ARCHITECTURE": 0, "DATASET": "@in/train.json", "WIDTH": 2, "OUTPUT": "@out/model"},
    "trainmodel": {"TRAIN": "@in/train.json", "VALID": "@in/valid.json", "EPOCHS": 1, "WIDTH": 2,
                   "OUTPUT": "@out/trained"},
    "assessaccuracy": {"INPUT": "@in/labels.tif", "REFERENCE": "@in/points.shp", "CLASS_FIELD": "id",
                       "OUTPUT_CSV": "@out/accuracy.csv", "OUTPUT_HTML": "@out/accuracy.html"},
    "compareaccuracy": {"REPORTS": ["@in/report_a.csv", "@in/report_b.csv"], "OUTPUT_CSV": "@out/compared.csv",
                        "OUTPUT_HTML": "@out/compared.html"},
    "trainclassifier": {"DATASET": "@in/train.json", "N_TREES": 5, "OUTPUT": "@out/rf.skops"},
    "classify": {"INPUT": ["@in/image.tif"], "CLASSIFIER": "@in/rf.skops", "OUTPUT": "@out/classes.tif"},
    "applymodel": {"MODEL": "@in/cnn", "SOURCE1": ["@in/image.tif"], "OUTPUT": "@out/applied.tif"},
    "assessimagequality": {"INPUT": ["@in/image.tif"], "REFERENCE": ["@in/image.tif"], "OUTPUT_CSV": "@out/q.csv",
                           "OUTPUT_HTML": "@out/q.html"},
    "comparesr": {"HR": "@in/image.tif", "LABELS": "@in/labels.tif", "REPEATS": 1, "SR_EPOCHS": 1,
                  "OUTPUT": "@out/sr"},
}


@dataclass
class Case:
    id: str
    algorithm: str
    changes: dict
    key: str  # the parameter the message must name
    tf: bool = False  # the error can only come once TensorFlow has loaded the model
    existing: dict = field(default_factory=dict)  # files made in the output folder first ({"@out/x": text})


C = Case
CASES = [
    # ---- Sample from label raster
    C("slr-missing-file", "samplefromlabelraster", {"INPUT": "@in/missing.tif"}, "INPUT"),
    C("slr-truncated-header", "samplefromlabelraster", {"INPUT": "@in/truncated_header.tif"}, "INPUT"),
    C("slr-truncated-data", "samplefromlabelraster", {"INPUT": "@in/truncated_data.tif"}, "INPUT"),
    C("slr-reflectance-as-labels", "samplefromlabelraster", {"INPUT": "@in/reflectance.tif"}, "INPUT"),
    C("slr-text-file", "samplefromlabelraster", {"INPUT": "@in/notes.txt"}, "INPUT"),
    C("slr-band-missing", "samplefromlabelraster", {"BAND": 3}, "BAND"),
    C("slr-patch-too-big", "samplefromlabelraster", {"PATCH_SIZE": 1000}, "PATCH_SIZE"),
    C("slr-number-zero", "samplefromlabelraster", {"NUMBER": 0}, "NUMBER"),
    C("slr-negative-distance", "samplefromlabelraster", {"MIN_DISTANCE": -5.0}, "MIN_DISTANCE"),
    C("slr-strategy-out-of-range", "samplefromlabelraster", {"STRATEGY": 9}, "STRATEGY"),
    C("slr-no-labelled-pixel", "samplefromlabelraster", {"INPUT": "@in/empty.tif", "STRATEGY": 1}, "INPUT"),
    C("slr-output-unwritable", "samplefromlabelraster", {"OUTPUT": f"{UNWRITABLE}/s.gpkg"}, "OUTPUT"),
    # ---- Sample from vector
    C("sv-missing-field", "samplefromvector", {"FIELD": "nosuchfield"}, "FIELD"),
    C("sv-missing-vector", "samplefromvector", {"INPUT": "@in/missing.shp"}, "INPUT"),
    C("sv-text-file-as-vector", "samplefromvector", {"INPUT": "@in/notes.txt"}, "INPUT"),
    C("sv-raster-truncated-data", "samplefromvector", {"RASTER": "@in/truncated_data.tif"}, "RASTER"),
    C("sv-raster-missing", "samplefromvector", {"RASTER": "@in/missing.tif"}, "RASTER"),
    C("sv-far-from-raster", "samplefromvector", {"INPUT": "@in/far.gpkg", "FIELD": "class"}, "INPUT"),
    C("sv-patch-too-big", "samplefromvector", {"PATCH_SIZE": 1000}, "PATCH_SIZE"),
    C("sv-output-unwritable", "samplefromvector", {"OUTPUT": f"{UNWRITABLE}/s.gpkg"}, "OUTPUT"),
    # ---- Grid split
    C("gs-patch-too-big", "gridsplit", {"PATCH_SIZE": 1000}, "PATCH_SIZE"),
    C("gs-proportions-zero", "gridsplit", {"TRAIN": 0.0, "VALID": 0.0, "TEST": 0.0}, "TRAIN"),
    C("gs-negative-proportion", "gridsplit", {"VALID": -0.5}, "VALID"),
    C("gs-balanced-without-labels", "gridsplit", {"STRATEGY": 3}, "LABELS"),
    C("gs-labels-reflectance", "gridsplit", {"LABELS": "@in/reflectance.tif"}, "LABELS"),
    C("gs-labels-other-grid", "gridsplit", {"LABELS": "@in/cropped.tif"}, "LABELS"),
    C("gs-input-truncated-data", "gridsplit", {"INPUT": "@in/truncated_data.tif"}, "INPUT"),
    C("gs-all-nodata", "gridsplit", {"INPUT": "@in/empty.tif"}, "INPUT"),
    C("gs-samples-missing-field", "gridsplit", {"SAMPLES": "@in/points.shp", "CLASS_FIELD": "nosuchfield"},
      "CLASS_FIELD"),
    C("gs-samples-missing", "gridsplit", {"SAMPLES": "@in/missing.gpkg"}, "SAMPLES"),
    C("gs-train-unwritable", "gridsplit", {"OUTPUT_TRAIN": f"{UNWRITABLE}/t.gpkg"}, "OUTPUT_TRAIN"),
    C("gs-valid-unwritable", "gridsplit", {"OUTPUT_VALID": f"{UNWRITABLE}/v.gpkg"}, "OUTPUT_VALID"),
    # ---- Extract patches
    C("ep-patch-too-big", "extractpatches", {"PATCH_SIZE1": 600}, "PATCH_SIZE1"),
    C("ep-source2-other-crs", "extractpatches", {"SOURCE2": ["@in/reprojected.tif"], "PATCH_SIZE2": 16}, "SOURCE2"),
    C("ep-source2-other-footprint", "extractpatches", {"SOURCE2": ["@in/band10.tif"], "PATCH_SIZE2": 8}, "PATCH_SIZE2"),
    C("ep-stack-other-grid", "extractpatches", {"SOURCE1": ["@in/image.tif", "@in/cropped.tif"]}, "SOURCE1"),
    C("ep-source1-truncated-data", "extractpatches", {"SOURCE1": ["@in/truncated_data.tif"]}, "SOURCE1"),
    C("ep-source1-truncated-header", "extractpatches", {"SOURCE1": ["@in/truncated_header.tif"]}, "SOURCE1"),
    C("ep-class-field-missing", "extractpatches", {"CLASS_FIELD": "nosuchfield"}, "CLASS_FIELD"),
    C("ep-points-far-away", "extractpatches", {"INPUT": "@in/far.gpkg", "CLASS_FIELD": "class"}, "INPUT"),
    C("ep-polygons-as-centres", "extractpatches", {"INPUT": "@in/polygons.shp", "CLASS_FIELD": None}, "INPUT"),
    C("ep-label-raster-reflectance", "extractpatches", {"LABEL_RASTER": "@in/reflectance.tif"}, "LABEL_RASTER"),
    C("ep-label-patch-size-zero", "extractpatches", {"LABEL_RASTER": "@in/labels.tif", "LABEL_PATCH_SIZE": 0},
      "LABEL_PATCH_SIZE"),
    C("ep-all-nodata", "extractpatches", {"SOURCE1": ["@in/empty.tif"]}, "INPUT"),
    C("ep-output-unwritable", "extractpatches", {"OUTPUT": f"{UNWRITABLE}/d.json"}, "OUTPUT"),
    # ---- Describe patches
    C("dp-scene-as-patches", "describepatches", {"PATCHES": ["@in/image.tif"], "PATCH_SIZE": 16, "LABELS": None},
      "PATCHES"),
    C("dp-patch-size-mismatch", "describepatches", {"PATCH_SIZE": 5}, "PATCHES"),
    C("dp-labels-of-another-set", "describepatches", {"LABELS": "@in/valid_labels.tif"}, "LABELS"),
    C("dp-labels-reflectance", "describepatches", {"LABELS": "@in/reflectance.tif"}, "LABELS"),
    C("dp-different-counts", "describepatches",
      {"PATCHES": ["@in/train_source1.tif", "@in/valid_source1.tif"], "LABELS": None}, "PATCHES"),
    C("dp-truncated-patches", "describepatches", {"PATCHES": ["@in/truncated_data.tif"], "LABELS": None},
      "PATCHES"),
    C("dp-output-unwritable", "describepatches", {"OUTPUT": f"{UNWRITABLE}/d.json"}, "OUTPUT"),
    # ---- Build super-resolution dataset
    C("sr-valid-above-maximum", "buildsrdataset", {"VALID": 0.99}, "VALID"),
    C("sr-scale-not-whole", "buildsrdataset", {"SCALE": 2.5}, "SCALE"),
    C("sr-no-valid-output", "buildsrdataset", {"OUTPUT_VALID": None}, "OUTPUT_VALID"),
    C("sr-valid-is-train", "buildsrdataset", {"OUTPUT_VALID": "@out/sr_train.json"}, "OUTPUT_VALID"),
    C("sr-lr-other-crs", "buildsrdataset", {"LR": ["@in/reprojected.tif"]}, "LR"),
    C("sr-block-too-big", "buildsrdataset", {"BLOCK_SIZE": 100}, "BLOCK_SIZE"),
    C("sr-hr-truncated-data", "buildsrdataset", {"HR": ["@in/truncated_data.tif"]}, "HR"),
    C("sr-train-unwritable", "buildsrdataset", {"OUTPUT_TRAIN": f"{UNWRITABLE}/t.json"}, "OUTPUT_TRAIN"),
    # ---- Create model
    C("cm-no-bands", "createmodel", {"DATASET": None, "PATCH_SIZE": 16, "N_CLASSES": 3}, "BANDS"),
    C("cm-one-class", "createmodel", {"DATASET": None, "BANDS": 5, "PATCH_SIZE": 16, "N_CLASSES": 1}, "N_CLASSES"),
    C("cm-dataset-one-class", "createmodel", {"DATASET": "@in/oneclass.json"}, "DATASET"),
    C("cm-dataset-not-json", "createmodel", {"DATASET": "@in/broken.json"}, "DATASET"),
    C("cm-bands-differ-from-dataset", "createmodel", {"BANDS": 3}, "BANDS"),
    C("cm-fcnn-patch-size", "createmodel", {"ARCHITECTURE": 1, "DATASET": None, "BANDS": 5, "PATCH_SIZE": 7,
                                            "N_CLASSES": 3}, "PATCH_SIZE"),
    C("cm-sr-without-dataset", "createmodel", {"ARCHITECTURE": 3, "DATASET": None}, "DATASET"),
    C("cm-sr-on-class-dataset", "createmodel", {"ARCHITECTURE": 3}, "DATASET"),
    C("cm-output-exists", "createmodel", {}, "OUTPUT", existing={"@out/model/notes.txt": "mine"}),
    C("cm-output-unwritable", "createmodel", {"OUTPUT": f"{UNWRITABLE}/m"}, "OUTPUT"),
    # ---- Train model
    C("tm-one-class", "trainmodel", {"TRAIN": "@in/oneclass.json", "VALID": None}, "TRAIN"),
    C("tm-no-labels", "trainmodel", {"TRAIN": "@in/nolabels.json", "VALID": None}, "TRAIN"),
    C("tm-missing-train", "trainmodel", {"TRAIN": "@in/missing.json"}, "TRAIN"),
    C("tm-train-not-json", "trainmodel", {"TRAIN": "@in/broken.json"}, "TRAIN"),
    C("tm-train-is-patches-image", "trainmodel", {"TRAIN": "@in/train_source1.tif"}, "TRAIN"),
    C("tm-train-patches-truncated", "trainmodel", {"TRAIN": "@in/truncated.json", "VALID": None}, "TRAIN"),
    C("tm-valid-other-bands", "trainmodel", {"VALID": "@in/oneband.json"}, "VALID"),
    C("tm-test-other-bands", "trainmodel", {"TEST": "@in/oneband.json"}, "TEST"),
    C("tm-epochs-zero", "trainmodel", {"EPOCHS": 0}, "EPOCHS"),
    C("tm-repeats-zero", "trainmodel", {"REPEATS": 0}, "REPEATS"),
    C("tm-model-other-bands", "trainmodel", {"MODEL": "@in/cnn3"}, "MODEL"),
    C("tm-model-not-a-model", "trainmodel", {"MODEL": "@in/notes.txt"}, "MODEL"),
    C("tm-inputs-unknown", "trainmodel", {"MODEL": "@in/cnn", "INPUTS": "foo=source1"}, "INPUTS"),
    C("tm-loss-weights-unknown", "trainmodel", {"LOSS_WEIGHTS": "foo=1"}, "LOSS_WEIGHTS"),
    C("tm-fcnn-patch-size", "trainmodel", {"TRAIN": "@in/small.json", "VALID": None, "ARCHITECTURE": 1}, "TRAIN"),
    C("tm-output-exists", "trainmodel", {}, "OUTPUT", existing={"@out/trained/notes.txt": "mine"}),
    C("tm-output-unwritable", "trainmodel", {"OUTPUT": f"{UNWRITABLE}/m"}, "OUTPUT"),
    # ---- Assess accuracy
    C("aa-no-reference", "assessaccuracy", {"REFERENCE": None, "CLASS_FIELD": None}, "REFERENCE"),
    C("aa-two-references", "assessaccuracy", {"REFERENCE_RASTER": "@in/labels.tif"}, "REFERENCE_RASTER"),
    C("aa-no-class-field", "assessaccuracy", {"CLASS_FIELD": None}, "CLASS_FIELD"),
    C("aa-class-field-missing", "assessaccuracy", {"CLASS_FIELD": "nosuchfield"}, "CLASS_FIELD"),
    C("aa-map-reflectance", "assessaccuracy", {"INPUT": "@in/reflectance.tif"}, "INPUT"),
    C("aa-reference-raster-reflectance", "assessaccuracy",
      {"REFERENCE": None, "CLASS_FIELD": None, "REFERENCE_RASTER": "@in/reflectance.tif"}, "REFERENCE_RASTER"),
    C("aa-reference-raster-other-crs", "assessaccuracy",
      {"REFERENCE": None, "CLASS_FIELD": None, "REFERENCE_RASTER": "@in/reprojected.tif"}, "REFERENCE_RASTER"),
    C("aa-reference-far-away", "assessaccuracy", {"REFERENCE": "@in/far.gpkg", "CLASS_FIELD": "class"}, "REFERENCE"),
    C("aa-band-missing", "assessaccuracy", {"BAND": 4}, "BAND"),
    C("aa-map-truncated-data", "assessaccuracy", {"INPUT": "@in/truncated_data.tif"}, "INPUT"),
    C("aa-csv-unwritable", "assessaccuracy", {"OUTPUT_CSV": f"{UNWRITABLE}/a.csv"}, "OUTPUT_CSV"),
    # ---- Compare accuracy
    C("ca-text-file", "compareaccuracy", {"REPORTS": ["@in/notes.txt"]}, "REPORTS"),
    C("ca-other-csv", "compareaccuracy", {"REPORTS": ["@in/other.csv", "@in/report_a.csv"]}, "REPORTS"),
    C("ca-missing-report", "compareaccuracy", {"REPORTS": ["@in/missing.csv"]}, "REPORTS"),
    C("ca-names-count", "compareaccuracy", {"NAMES": "only one"}, "NAMES"),
    C("ca-csv-unwritable", "compareaccuracy", {"OUTPUT_CSV": f"{UNWRITABLE}/c.csv"}, "OUTPUT_CSV"),
    # ---- Train classifier
    C("tc-one-class", "trainclassifier", {"DATASET": "@in/oneclass.json"}, "DATASET"),
    C("tc-no-labels", "trainclassifier", {"DATASET": "@in/nolabels.json"}, "DATASET"),
    C("tc-missing-dataset", "trainclassifier", {"DATASET": "@in/missing.json"}, "DATASET"),
    C("tc-valid-other-bands", "trainclassifier", {"VALID": "@in/oneband.json"}, "VALID"),
    C("tc-test-other-bands", "trainclassifier", {"TEST": "@in/oneband.json"}, "TEST"),
    C("tc-model-other-bands", "trainclassifier", {"MODEL": "@in/cnn3"}, "MODEL"),
    C("tc-feature-output-unknown", "trainclassifier", {"MODEL": "@in/cnn", "FEATURE_OUTPUT": "nope"},
      "FEATURE_OUTPUT"),
    C("tc-trees-zero", "trainclassifier", {"N_TREES": 0}, "N_TREES"),
    C("tc-output-unwritable", "trainclassifier", {"OUTPUT": f"{UNWRITABLE}/rf.skops"}, "OUTPUT"),
    # ---- Classify
    C("cl-other-bands", "classify", {"INPUT": ["@in/band10.tif"]}, "INPUT"),
    C("cl-missing-classifier", "classify", {"CLASSIFIER": "@in/missing.skops"}, "CLASSIFIER"),
    C("cl-no-description", "classify", {"CLASSIFIER": "@in/nojson.skops"}, "CLASSIFIER"),
    C("cl-not-a-classifier", "classify", {"CLASSIFIER": "@in/garbage.skops"}, "CLASSIFIER"),
    C("cl-input-truncated-data", "classify", {"INPUT": ["@in/truncated_data.tif"]}, "INPUT"),
    C("cl-input-truncated-header", "classify", {"INPUT": ["@in/truncated_header.tif"]}, "INPUT"),
    C("cl-output-unwritable", "classify", {"OUTPUT": f"{UNWRITABLE}/c.tif"}, "OUTPUT"),
    C("cl-confidence-unwritable", "classify", {"OUTPUT_CONFIDENCE": f"{UNWRITABLE}/p.tif"}, "OUTPUT_CONFIDENCE"),
    # ---- Apply model
    C("am-other-bands", "applymodel", {"SOURCE1": ["@in/band10.tif"]}, "SOURCE1"),
    C("am-two-sources-one-input", "applymodel", {"SOURCE2": ["@in/image.tif"]}, "SOURCE1"),
    C("am-missing-model", "applymodel", {"MODEL": "@in/missing"}, "MODEL"),
    C("am-text-file-as-model", "applymodel", {"MODEL": "@in/notes.txt"}, "MODEL"),
    C("am-broken-card", "applymodel", {"MODEL": "@in/badcard"}, "MODEL"),
    C("am-source-truncated-data", "applymodel", {"SOURCE1": ["@in/truncated_data.tif"]}, "SOURCE1"),
    C("am-stride-zero", "applymodel", {"STRIDE": 0}, "STRIDE"),
    C("am-output-unwritable", "applymodel", {"OUTPUT": f"{UNWRITABLE}/a.tif"}, "OUTPUT"),
    C("am-unknown-output", "applymodel", {"OUTPUTS": "segmentation"}, "OUTPUTS"),
    C("am-extent-outside", "applymodel", {"EXTENT": "0,1000,0,1000 [EPSG:3358]"}, "EXTENT"),
    C("am-scheduler-no-address", "applymodel", {"EXECUTION": 3, "SCHEDULER": "head-node"}, "SCHEDULER"),
    C("am-cluster-file-not-a-config", "applymodel", {"EXECUTION": 4, "CLUSTER_CONFIG": "@in/notes.txt"},
      "CLUSTER_CONFIG"),
    # ---- Assess image quality
    C("iq-other-bands", "assessimagequality", {"INPUT": ["@in/band10.tif"]}, "INPUT"),
    C("iq-reference-truncated-data", "assessimagequality", {"REFERENCE": ["@in/truncated_data.tif"]}, "REFERENCE"),
    C("iq-input-truncated-header", "assessimagequality", {"INPUT": ["@in/truncated_header.tif"]}, "INPUT"),
    C("iq-low-resolution-bands", "assessimagequality", {"LOW_RESOLUTION": ["@in/band10.tif"]}, "LOW_RESOLUTION"),
    C("iq-negative-range", "assessimagequality", {"DATA_RANGE": -1.0}, "DATA_RANGE"),
    C("iq-extent-outside", "assessimagequality", {"EXTENT": "0,1000,0,1000 [EPSG:3358]"}, "EXTENT"),
    C("iq-csv-unwritable", "assessimagequality", {"OUTPUT_CSV": f"{UNWRITABLE}/q.csv"}, "OUTPUT_CSV"),
    # ---- Does super-resolution help?
    C("csr-missing-hr", "comparesr", {"HR": "@in/missing.tif"}, "HR"),
    C("csr-hr-truncated-data", "comparesr", {"HR": "@in/truncated_data.tif"}, "HR"),
    C("csr-labels-and-reference", "comparesr", {"REFERENCE": "@in/polygons.shp", "CLASS_FIELD": "label"}, "LABELS"),
    C("csr-no-labels", "comparesr", {"LABELS": None}, "LABELS"),
    C("csr-train-area-alone", "comparesr", {"TRAIN_AREA": "@in/polygons.shp"}, "TEST_AREA"),
    C("csr-output-unwritable", "comparesr", {"OUTPUT": f"{UNWRITABLE}/sr"}, "OUTPUT"),
]


# ---- the inputs, made once ------------------------------------------------------------------------


def _engine(operation: str, **parameters) -> dict:
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    return run_job(protocol.Job(operation, parameters, "battery"), Reporter())


def _truncate(source: Path, target: Path, fraction: float = 0.3) -> None:
    data = source.read_bytes()
    target.write_bytes(data[:int(len(data) * fraction)])


def _far_points(path: Path) -> None:
    """Two points with a class field, in the NC scene's CRS but kilometres away from it."""
    from osgeo import ogr, osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(3358)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("far", srs, ogr.wkbPoint)
    layer.CreateField(ogr.FieldDefn("class", ogr.OFTInteger))
    for value, (x, y) in enumerate(((0.0, 0.0), (10.0, 10.0)), start=1):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("class", value)
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({x} {y})"))
        layer.CreateFeature(feature)
    ds = None


@pytest.fixture(scope="module")
def pristine(nc, tmp_path_factory) -> Path:
    """The inputs every case starts from: NC rasters and vectors, rasters derived from them (a Float32
    reflectance, truncated copies, a reprojected and a cropped band, an all-nodata raster), datasets,
    a tiny trained model, a Random Forest and two accuracy reports."""
    from osgeo import gdal

    folder = tmp_path_factory.mktemp("battery-inputs")
    for name, target in (("landsat_multiband.tif", "image.tif"), ("lsat7_2000_10.tif", "band10.tif"),
                         ("landsat96_labelled_pixels.tif", "labels.tif")):
        shutil.copyfile(nc / name, folder / target)
    for stem, target in (("landsat96_points", "points"), ("landsat96_polygons", "polygons")):
        for extension in (".shp", ".shx", ".dbf", ".prj"):
            shutil.copyfile(nc / f"{stem}{extension}", folder / f"{target}{extension}")
    image = gdal.Open(str(folder / "image.tif"))
    values = image.GetRasterBand(4).ReadAsArray()
    reflectance = np.where(values > 0, values / 255.0 * 0.6, -1.0).astype(np.float32)
    driver = gdal.GetDriverByName("GTiff")
    for name, array, dtype, nodata in (("reflectance.tif", reflectance, gdal.GDT_Float32, -1.0),
                                       ("empty.tif", np.zeros_like(values, np.uint8), gdal.GDT_Byte, 0)):
        ds = driver.Create(str(folder / name), image.RasterXSize, image.RasterYSize, 1, dtype)
        ds.SetGeoTransform(image.GetGeoTransform())
        ds.SetProjection(image.GetProjection())
        ds.GetRasterBand(1).WriteArray(array)
        ds.GetRasterBand(1).SetNoDataValue(nodata)
        ds = None
    image = None
    _truncate(folder / "image.tif", folder / "truncated_data.tif")  # header first: opens, data missing
    _truncate(folder / "band10.tif", folder / "truncated_header.tif")  # header last: does not open
    gdal.Warp(str(folder / "reprojected.tif"), str(folder / "band10.tif"), dstSRS="EPSG:4326")
    gdal.Translate(str(folder / "cropped.tif"), str(folder / "band10.tif"), srcWin=[0, 0, 200, 200])
    _far_points(folder / "far.gpkg")
    (folder / "notes.txt").write_text("not what PatchFlow reads\n")
    (folder / "broken.json").write_text("{not json")
    (folder / "other.csv").write_text("a,b\n1,2\n")

    work = tmp_path_factory.mktemp("battery-work")  # intermediate files, not inputs of any case
    points, image_path = str(folder / "points.shp"), str(folder / "image.tif")
    _engine("grid_split", INPUT=image_path, SAMPLES=points, CLASS_FIELD="id", PATCH_SIZE=16, BLOCK_SIZE=4,
            TRAIN=0.7, VALID=0.3, TEST=0.0, OUTPUT_TRAIN=str(work / "train.gpkg"),
            OUTPUT_VALID=str(work / "valid.gpkg"))
    for name in ("train", "valid"):
        _engine("extract_patches", INPUT=str(work / f"{name}.gpkg"), SOURCE1=[image_path], PATCH_SIZE1=16,
                CLASS_FIELD="class", OUTPUT=str(folder / f"{name}.json"))
    gdal.VectorTranslate(str(work / "one.gpkg"), points, where="id = 1")
    _engine("extract_patches", INPUT=str(work / "one.gpkg"), SOURCE1=[image_path], PATCH_SIZE1=16, CLASS_FIELD="id",
            OUTPUT=str(folder / "oneclass.json"))
    _engine("extract_patches", INPUT=points, SOURCE1=[image_path], PATCH_SIZE1=16, OUTPUT=str(folder / "nolabels.json"))
    _engine("extract_patches", INPUT=points, SOURCE1=[str(folder / "band10.tif")], PATCH_SIZE1=16, CLASS_FIELD="id",
            OUTPUT=str(folder / "oneband.json"))
    _engine("extract_patches", INPUT=points, SOURCE1=[image_path], PATCH_SIZE1=8, CLASS_FIELD="id",
            OUTPUT=str(folder / "small.json"))
    manifest = json.loads((folder / "train.json").read_text())
    manifest["sources"][0]["patches"] = "truncated_source1.tif"
    manifest["labels"]["patches"] = "train_labels.tif"
    (folder / "truncated.json").write_text(json.dumps(manifest))
    _truncate(folder / "train_source1.tif", folder / "truncated_source1.tif")

    _engine("train_model", TRAIN=str(folder / "train.json"), EPOCHS=1, WIDTH=2, SEED=0, OUTPUT=str(folder / "cnn"))
    _engine("create_model", ARCHITECTURE="patch_cnn", BANDS=3, PATCH_SIZE=16, N_CLASSES=7, WIDTH=2,
            OUTPUT=str(folder / "cnn3"))
    shutil.copytree(folder / "cnn", folder / "badcard")
    (folder / "badcard" / "patchflow_card.json").write_text("{broken card")
    _engine("train_classifier", DATASET=str(folder / "train.json"), N_TREES=5, OUTPUT=str(folder / "rf.skops"))
    shutil.copyfile(folder / "rf.skops", folder / "nojson.skops")
    (folder / "garbage.skops").write_bytes(b"this is no pickle")
    shutil.copyfile(folder / "rf.json", folder / "garbage.json")
    for name, reference in (("report_a", points), ("report_b", str(work / "valid.gpkg"))):
        _engine("assess_accuracy", INPUT=str(folder / "labels.tif"), REFERENCE=reference,
                CLASS_FIELD="id" if name == "report_a" else "class", OUTPUT_CSV=str(folder / f"{name}.csv"),
                OUTPUT_HTML=str(work / f"{name}.html"))
        (folder / f"{name}.qml").unlink(missing_ok=True)
    return folder


# ---- the battery ----------------------------------------------------------------------------------


def resolve(value, inputs: Path, outputs: Path):
    if isinstance(value, list):
        return [resolve(v, inputs, outputs) for v in value]
    if isinstance(value, str) and value.startswith("@in/"):
        return str(inputs / value[4:])
    if isinstance(value, str) and value.startswith("@out/"):
        return str(outputs / value[5:])
    return value


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture(scope="module", autouse=True)
def timings_table():
    yield
    if TIMINGS:
        print(f"\nbad-inputs battery: {len(TIMINGS)} cases, {sum(TIMINGS.values()):.1f} s in processing.run")
        for name, seconds in sorted(TIMINGS.items(), key=lambda item: -item[1]):
            print(f"  {seconds:6.2f} s  {name}: {MESSAGES.get(name, '')[:240]}")


def test_every_algorithm_of_the_provider_has_cases(provider):
    names = {algorithm.name() for algorithm in provider.algorithms()}
    assert names == set(BASE) == {case.algorithm for case in CASES}
    assert len(CASES) >= 80 and len({case.id for case in CASES}) == len(CASES)
    signatures = [(case.algorithm, json.dumps(case.changes, sort_keys=True)) for case in CASES]
    assert len(set(signatures)) == len(signatures), "two cases make the same change"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_names_the_parameter_and_changes_nothing(case: Case, pristine, provider, tmp_path):
    import processing

    inputs, outputs = tmp_path / "inputs", tmp_path / "outputs"
    shutil.copytree(pristine, inputs)
    outputs.mkdir()
    for path, text in case.existing.items():
        target = Path(resolve(path, inputs, outputs))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    given = {**BASE[case.algorithm], **case.changes}
    parameters = {key: resolve(value, inputs, outputs) for key, value in given.items() if value is not None}
    before, outputs_before = digests(inputs), listing(outputs)
    algorithm = provider.algorithm(case.algorithm)
    description = algorithm.parameterDefinition(case.key).description()
    feedback = LineRecorder()

    started = time.monotonic()
    with pytest.raises(QgsProcessingException) as caught:
        processing.run(f"patchflow:{case.algorithm}", parameters, context=QgsProcessingContext(), feedback=feedback)
    TIMINGS[case.id] = time.monotonic() - started

    message = str(caught.value)
    MESSAGES[case.id] = message.replace("\n", " | ")
    assert f"{description} ({case.key})" in message, message
    said = message.split(f"({case.key}): ", 1)[-1].splitlines()[0]
    repeated = [line for kind, line in feedback.lines if kind != "error" and said in line]
    assert not repeated, f"the error is said again in the log: {repeated}"
    assert listing(outputs) == outputs_before, "an output was left"
    assert not list(tmp_path.rglob(".patchflow-staging-*")), "a staging folder was left"
    assert digests(inputs) == before, "an input file was changed, or a file was added beside the inputs"
    # how fast: printed with -s (speed targets live in benchmarks, not in timed tests); that errors needing no
    # TensorFlow come before it is imported is asserted by tests/engine/test_checks.py
