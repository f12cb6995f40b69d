#!/usr/bin/env python3
"""Screenshots for the README and docs/tutorial.md, taken headless: the toolbox dialogs of Apply model and Train model,
pre-filled with the demo's inputs, and the demo's styled class map and input image rendered by QGIS.

    make screenshots                  # after make demo
    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots.py [--demo DIR] [--image TIF] [--output DIR]

Writes docs/img/{apply_model_dialog,train_model_dialog,class_map,landsat_input}.png (PNG, 256
colours) and prints their paths. The class map is the demo's Apply model map (its Classify map
when the demo has no Apply model step), styled by its .qml sidecar, with a legend drawn below.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo-output"
IMAGE = ROOT / ".cache" / "demo-data" / "nc" / "landsat_multiband.tif"
OUTPUT = ROOT / "docs" / "img"
DIALOG_SIZE = (688, 523)  # QGIS's default Processing dialog: what a user sees first
MAP_WIDTH = 900
INPUT_WIDTH = 600
RGB_BANDS = (4, 3, 2)  # near infrared, red, green: vegetation shows red
MAP_STEPS = ("apply", "classify")  # demo step keys that write a class map, preferred first

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp/runtime-patchflow")
Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)

import numpy as np  # noqa: E402
from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsContrastEnhancement,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QSize, Qt  # noqa: E402
from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_model3 import start_qgis  # noqa: E402  (QGIS, Processing and the provider, as the model3 scripts)


def palette(image: QImage, size: int = 256, exact: int = 64) -> list[int]:
    """A colour table for the image: its most frequent colours exactly (flat UI and class colours),
    the rest by median cut (anti-aliasing, photos)."""
    rgb = image.convertToFormat(QImage.Format_RGB32)
    pointer = rgb.constBits()
    pointer.setsize(rgb.sizeInBytes())
    pixels = np.frombuffer(pointer, np.uint32).reshape(rgb.height(), -1)[:, :rgb.width()].ravel() & 0xFFFFFF
    colors, counts = np.unique(pixels, return_counts=True)
    if len(colors) <= size:
        return [0xFF000000 | int(c) for c in colors]
    popular = colors[np.argsort(counts)[::-1][:exact]]
    channels = np.stack([(colors >> 16) & 255, (colors >> 8) & 255, colors & 255], axis=1).astype(np.int64)
    boxes = [np.arange(len(colors))]
    while len(boxes) < size - exact:
        spans = [np.ptp(channels[box], axis=0).max() if len(box) > 1 else -1 for box in boxes]
        widest = int(np.argmax(spans))
        if spans[widest] <= 0:
            break
        box = boxes.pop(widest)
        channel = int(np.argmax(np.ptp(channels[box], axis=0)))
        box = box[np.argsort(channels[box, channel])]
        cumulative = np.cumsum(counts[box])
        cut = int(np.clip(np.searchsorted(cumulative, cumulative[-1] / 2), 1, len(box) - 1))
        boxes += [box[:cut], box[cut:]]
    means = [np.average(channels[box], axis=0, weights=counts[box]).round().astype(int) for box in boxes]
    table = {0xFF000000 | int(c) for c in popular}
    table |= {0xFF000000 | (int(r) << 16) | (int(g) << 8) | int(b) for r, g, b in means}
    return sorted(table)[:size]


def save_small(image: QImage, path: Path) -> Path:
    """PNG with a 256-colour palette (a tenth of true colour's size; nothing visible lost)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    small = image.convertToFormat(QImage.Format_Indexed8, palette(image))
    if not small.save(str(path), "PNG", 0):
        raise OSError(f"cannot write {path}")
    return path


def shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# ---- toolbox dialogs --------------------------------------------------------------------------


class HeadlessInterface:
    """What processing.createAlgorithmDialog asks of QGIS's iface (None outside the QGIS desktop)."""

    def mainWindow(self):  # noqa: N802
        return None


def grab_dialog(algorithm_id: str, parameters: dict, path: Path) -> Path:
    import processing
    from processing.tools import general
    from qgis.PyQt.QtWidgets import QApplication

    if general.iface is None:
        general.iface = HeadlessInterface()
    dialog = processing.createAlgorithmDialog(algorithm_id, parameters)
    if dialog is None:
        raise RuntimeError(f"no dialog for {algorithm_id}: is PatchFlow's provider loaded?")
    dialog.show()  # showing restores the last dialog geometry saved: resize after
    for _ in range(5):
        QApplication.processEvents()
    dialog.resize(*DIALOG_SIZE)
    for _ in range(5):
        QApplication.processEvents()
    image = dialog.grab().toImage()
    dialog.close()
    dialog.deleteLater()
    QApplication.processEvents()
    return save_small(image, path)


def dialogs(output: Path) -> list[Path]:
    """Pre-filled as scripts/demo.py runs them, with paths relative to the checkout."""
    registry = QgsApplication.processingRegistry()
    written = []
    apply_id = "patchflow:applymodel"
    if registry.algorithmById(apply_id) is not None:
        written.append(grab_dialog(apply_id, {
            "MODEL": shown(DEMO / "model" / "saved_model.pb"),
            "SOURCE1": [shown(IMAGE)],
            "OUTPUT": shown(DEMO / "map" / "cnn_map.tif"),
        }, output / "apply_model_dialog.png"))
    else:
        print(f"screenshots: {apply_id} is not registered; no Apply model dialog", file=sys.stderr)
    written.append(grab_dialog("patchflow:trainmodel", {
        "TRAIN": shown(DEMO / "patches" / "train.json"),
        "VALID": shown(DEMO / "patches" / "valid.json"),
        "ARCHITECTURE": 0, "EPOCHS": 30, "BATCH_SIZE": 32, "AUGMENT": True, "CLASS_WEIGHTS": True,
        "SEED": 0, "OVERWRITE": True, "OUTPUT": shown(DEMO / "model"),
    }, output / "train_model_dialog.png"))
    return written


# ---- maps -------------------------------------------------------------------------------------


def render(layer: QgsRasterLayer, width: int) -> QImage:
    extent = layer.extent()
    height = round(width * extent.height() / extent.width())
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setOutputSize(QSize(width, height))
    settings.setExtent(extent)
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def load_raster(path: Path) -> QgsRasterLayer:
    layer = QgsRasterLayer(str(path), path.stem)
    if not layer.isValid():
        raise RuntimeError(f"QGIS cannot open {path}")
    return layer


def class_map_path(demo: Path) -> tuple[Path, str]:
    """The class map of the demo's map-making step (Apply model before Classify), and its algorithm."""
    summary = json.loads((demo / "summary.json").read_text(encoding="utf-8"))
    steps = {step["key"]: step for step in summary.get("steps", [])}
    for key in MAP_STEPS:
        output = steps.get(key, {}).get("results", {}).get("OUTPUT")
        if output and Path(output).exists():
            return Path(output), steps[key]["algorithm"]
    raise FileNotFoundError(f"no class map in {demo / 'summary.json'}: run 'make demo' first")


def legend(image: QImage, entries: list[tuple[str, QColor]], title: str) -> QImage:
    """The map with a strip below: a title, then a swatch and a name per class, in rows."""
    font = QFont("DejaVu Sans", 11)
    swatch, pad, column = 16, 12, 180
    per_row = max(1, (image.width() - 2 * pad) // column)
    rows = (len(entries) + per_row - 1) // per_row
    strip = pad + 22 + rows * (swatch + 10) + pad
    result = QImage(image.width(), image.height() + strip, QImage.Format_RGB32)
    result.fill(QColor("white"))
    painter = QPainter(result)
    painter.drawImage(0, 0, image)
    painter.setFont(font)
    painter.setPen(QColor("#222222"))
    top = image.height() + pad
    painter.drawText(pad, top, image.width() - 2 * pad, 20, Qt.AlignLeft | Qt.AlignVCenter, title)
    for index, (name, color) in enumerate(entries):
        x = pad + (index % per_row) * column
        y = top + 26 + (index // per_row) * (swatch + 10)
        painter.fillRect(x, y, swatch, swatch, color)
        painter.setPen(QColor("#555555"))
        painter.drawRect(x, y, swatch, swatch)
        painter.setPen(QColor("#222222"))
        painter.drawText(x + swatch + 8, y - 2, column - swatch - 12, swatch + 4, Qt.AlignLeft | Qt.AlignVCenter,
                         name)
    painter.end()
    return result


def class_map(demo: Path, output: Path) -> Path:
    path, algorithm = class_map_path(demo)
    print(f"class map: {shown(path)} ({algorithm})")
    if algorithm != "patchflow:applymodel":
        print(f"screenshots: {shown(demo)} has no Apply model map (an older demo?); rerun 'make demo' to show it",
              file=sys.stderr)
    layer = load_raster(path)
    qml = path.with_suffix(".qml")
    message, ok = layer.loadNamedStyle(str(qml))
    if not ok:
        raise RuntimeError(f"cannot apply {qml}: {message}")
    renderer = layer.renderer()
    if not isinstance(renderer, QgsPalettedRasterRenderer):
        raise RuntimeError(f"{qml} is not a paletted (class) style")
    entries = [(f"{c.value:g} {c.label}", c.color) for c in renderer.classes()]
    title = f"{demo.name}/{path.relative_to(demo)}, written by {algorithm}, styled by {qml.name}"
    return save_small(legend(render(layer, MAP_WIDTH), entries, title), output / "class_map.png")


def landsat_input(image: Path, output: Path) -> Path:
    layer = load_raster(image)
    renderer = QgsMultiBandColorRenderer(layer.dataProvider(), *RGB_BANDS)
    enhancements = []
    for band in RGB_BANDS:
        # cumulative cut 2-98 %, as QGIS's default for multiband rasters
        low, high = layer.dataProvider().cumulativeCut(band, 0.02, 0.98)
        enhancement = QgsContrastEnhancement(layer.dataProvider().dataType(band))
        enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)
        enhancement.setMinimumValue(low)
        enhancement.setMaximumValue(high)
        enhancements.append(enhancement)
    renderer.setRedContrastEnhancement(enhancements[0])
    renderer.setGreenContrastEnhancement(enhancements[1])
    renderer.setBlueContrastEnhancement(enhancements[2])
    layer.setRenderer(renderer)
    return save_small(render(layer, INPUT_WIDTH), output / "landsat_input.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, default=DEMO, help="the demo's output folder (make demo)")
    parser.add_argument("--image", type=Path, default=IMAGE, help="the demo's input image (make data)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where the PNGs go")
    args = parser.parse_args(argv)
    demo, image, output = args.demo.resolve(), args.image.resolve(), args.output.resolve()
    if not (demo / "summary.json").exists() or not image.exists():
        sys.exit(f"screenshots: {shown(demo)}/summary.json or {shown(image)} missing: run 'make demo' first.")
    from osgeo import gdal

    # rendering the input makes QGIS compute its statistics: keep them out of an .aux.xml beside it (every
    # thread, the map renderer's too; this process only takes screenshots)
    gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")
    os.chdir(ROOT)  # the dialogs show paths relative to the checkout, as the tutorial's commands use them
    app = start_qgis(gui=True)
    try:
        written = dialogs(output)
        written += [class_map(demo, output), landsat_input(image, output)]
    finally:
        app.exitQgis()
    for path in written:
        print(f"{shown(path)}  ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
