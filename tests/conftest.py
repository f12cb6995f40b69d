"""Shared fixtures. The checkout is imported as the package ``patchflow`` (as QGIS would install
it) through a link in .cache/plugins; real data comes from ../shared/data, else from the demo's
pinned wheel."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

# TensorFlow exports its own SQLite symbols; imported into a process where QGIS runs, Qt's SQLite
# driver would call them when QGIS exits (QgsAuthManager's teardown) and crash. Loading the
# system SQLite globally first keeps Qt on it.
ctypes.CDLL("libsqlite3.so.0", mode=ctypes.RTLD_GLOBAL)

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LINKS = ROOT / ".cache" / "plugins"
LINKS.mkdir(parents=True, exist_ok=True)
if not (LINKS / "patchflow").exists():
    (LINKS / "patchflow").symlink_to(ROOT)
sys.path.insert(0, str(LINKS))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["PATCHFLOW_PYTHON"] = str(ROOT / ".venv" / "bin" / "python")
SHARED = ROOT.parent / "shared" / "data"
_PROVIDERS: list = []


SIDE_FILES = (".aux.xml", ".ovr", ".msk", ".qml")  # what GDAL or QGIS would write beside a raster


def _data_state() -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file in the real-data folders the tests read."""
    state = {}
    for folder in (SHARED, ROOT / ".cache" / "demo-data"):
        if folder.is_dir():
            for path in folder.rglob("*"):
                if path.is_file():
                    info = path.stat()
                    state[str(path)] = (info.st_size, info.st_mtime_ns)
    return state


@pytest.fixture(scope="session", autouse=True)
def real_data_left_as_it_was():
    """Fails the run when anything in it writes beside the real data it reads (an .aux.xml, a changed file)."""
    before = _data_state()
    yield
    after = _data_state()
    added = sorted(path for path in set(after) - set(before) if path.endswith(SIDE_FILES))  # not a download
    changed = sorted(path for path in set(after) & set(before) if after[path] != before[path])
    assert not (added or changed), f"written beside the inputs: added {added}, changed {changed}"


@pytest.fixture(scope="session")
def nc() -> Path:
    """North Carolina Landsat-7 scene, labelled points, polygons and label raster."""
    shared = SHARED / "nc_landsat7"
    if (shared / "landsat_multiband.tif").exists():
        return shared
    subprocess.run(["bash", str(ROOT / "scripts" / "get_demo_data.sh")], check=True)
    return ROOT / ".cache" / "demo-data" / "nc"


@pytest.fixture(scope="session")
def spot6() -> Path:
    """The 1.5 m Spot-6-like Amsterdam scene and OTBTF patches-images (../shared/data only)."""
    folder = SHARED / "spot6_amsterdam"
    if not (folder / "fake_spot6.jp2").exists():
        pytest.skip("../shared/data/spot6_amsterdam is not here")
    return folder


@pytest.fixture
def provider(qgis_app, qgis_processing):
    """PatchFlow's provider registered in the test session's QGIS (again, if a test unloaded it)."""
    from qgis.core import QgsApplication

    from patchflow.plugin.provider import PatchFlowProvider

    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("patchflow")
    if existing is not None:
        return existing
    instance = PatchFlowProvider()
    assert registry.addProvider(instance)
    _PROVIDERS.append(instance)  # the registry holds the C++ side only: keep the Python side alive
    return instance



@pytest.fixture(scope="session")
def nc_nearest_mean_map(nc, tmp_path_factory) -> Path:
    """A real, imperfect classification of the NC scene (nearest class mean of the 5 bands), for
    accuracy tests that need a map that is neither perfect nor random."""
    import numpy as np
    from osgeo import gdal

    source = gdal.Open(str(nc / "landsat_multiband.tif"))
    image = source.ReadAsArray().astype(np.float64)
    labels = gdal.Open(str(nc / "landsat96_labelled_pixels.tif")).ReadAsArray()
    means = np.stack([image[:, labels == c].mean(axis=1) for c in range(1, 8)])
    classified = (((image[None] - means[:, :, None, None]) ** 2).sum(axis=1).argmin(axis=0) + 1).astype(np.uint8)
    path = tmp_path_factory.mktemp("nc_map") / "map.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), source.RasterXSize, source.RasterYSize, 1, gdal.GDT_Byte)
    ds.SetGeoTransform(source.GetGeoTransform())
    ds.SetProjection(source.GetProjection())
    ds.GetRasterBand(1).WriteArray(classified)
    ds = None
    return path

