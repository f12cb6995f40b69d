"""scripts/screenshots.py headless, in a subprocess (the test session's QGIS has no GUI): the toolbox
dialogs grabbed, a styled class map rendered with its legend, the NC image rendered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CLASSES = [(1, "#1f77b4", "forest"), (2, "#ff7f0e", "urban"), (3, "#2ca02c", "water")]
QML = """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="AllStyleCategories"><pipe>
<rasterrenderer type="paletted" opacity="1" band="1" alphaBand="-1" nodataColor=""><colorPalette>
{entries}
</colorPalette></rasterrenderer></pipe></qgis>
"""


def fake_demo(folder: Path, make_raster) -> Path:
    """A demo output folder holding what the script reads: summary.json and a styled class map."""
    (folder / "map").mkdir(parents=True)
    classes = np.repeat(np.array([1, 2, 3], dtype=np.uint8), 40)[None, :].repeat(60, axis=0)
    class_map = make_raster(folder / "map" / "cnn_map.tif", classes)
    entries = "\n".join(f'<paletteEntry value="{v}" color="{c}" alpha="255" label="{n}" />' for v, c, n in CLASSES)
    class_map.with_suffix(".qml").write_text(QML.format(entries=entries), encoding="utf-8")
    steps = [{"key": "apply", "algorithm": "patchflow:applymodel", "results": {"OUTPUT": str(class_map)}}]
    (folder / "summary.json").write_text(json.dumps({"steps": steps}), encoding="utf-8")
    return folder


def test_screenshots_headless(nc, tmp_path, make_raster):
    from qgis.PyQt.QtGui import QColor, QImage

    demo = fake_demo(tmp_path / "demo", make_raster)
    out = tmp_path / "img"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "screenshots.py"), "--demo", str(demo),
                           "--image", str(nc / "landsat_multiband.tif"), "--output", str(out)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    names = {"apply_model_dialog.png", "train_model_dialog.png", "class_map.png", "landsat_input.png"}
    assert {p.name for p in out.iterdir()} == names
    assert all(str(out / name) in done.stdout for name in names)  # the written paths are printed

    dialog = QImage(str(out / "apply_model_dialog.png"))
    assert (dialog.width(), dialog.height()) == (688, 523)  # QGIS's default dialog size
    assert len({dialog.pixel(x, y) for x in range(0, 688, 7) for y in range(0, 523, 7)}) > 5  # drawn widgets

    class_map = QImage(str(out / "class_map.png"))
    assert class_map.width() == 900
    colors = {QColor(class_map.pixel(x, y)).name() for x in range(0, 900, 5) for y in range(0, class_map.height(), 5)}
    assert {color for _, color, _ in CLASSES} <= colors  # every class in its QML colour (map and legend)
    assert not QImage(str(out / "landsat_input.png")).isNull()
