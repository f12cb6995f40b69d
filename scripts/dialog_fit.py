#!/usr/bin/env python3
"""Whether every PatchFlow dialog fits QGIS's default dialog size (688 x 523) without scrolling
sideways: each algorithm's toolbox dialog is built headless (offscreen), shown, resized to that size,
and its parameters panel measured. Prints one JSON object, {algorithm id: measures}.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/dialog_fit.py [--size 688x523] [ALGORITHM_ID ...]

Measures per algorithm: ``width`` (the parameters' minimum width, pixels), ``room`` (the width of
the panel's viewport beside the help text), ``scroll`` (the horizontal scroll bar's range: 0 when
everything fits) and ``widest`` (the widest widgets: class, minimum width, text).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_model3 import start_qgis  # noqa: E402

DEFAULT_SIZE = (688, 523)  # QGIS's own default for a Processing dialog


class HeadlessInterface:
    """What processing.createAlgorithmDialog asks of QGIS's iface (None outside the QGIS desktop)."""

    def mainWindow(self):  # noqa: N802
        return None


def settle() -> None:
    from qgis.PyQt.QtWidgets import QApplication

    for _ in range(5):
        QApplication.processEvents()


def open_dialog(algorithm_id: str, parameters: dict, size: tuple[int, int]):
    """The algorithm's dialog, shown at ``size`` (after show: showing restores a saved geometry)."""
    import processing
    from processing.tools import general

    if general.iface is None:
        general.iface = HeadlessInterface()
    dialog = processing.createAlgorithmDialog(algorithm_id, parameters)
    if dialog is None:
        raise RuntimeError(f"no dialog for {algorithm_id}: is PatchFlow's provider loaded?")
    dialog.show()
    settle()
    dialog.resize(*size)
    settle()
    return dialog


def close(dialog) -> None:
    dialog.close()
    dialog.deleteLater()
    settle()


def measure(algorithm_id: str, size: tuple[int, int]) -> dict:
    from qgis.PyQt.QtWidgets import QAbstractButton, QLabel, QScrollArea, QWidget

    dialog = open_dialog(algorithm_id, {}, size)
    areas = [area for area in dialog.findChildren(QScrollArea) if area.isVisible() and area.widget() is not None]
    panel = max(areas, key=lambda area: area.widget().minimumSizeHint().width())
    widgets = [widget for widget in panel.widget().findChildren(QWidget) if widget.isVisible()]
    widest = sorted(((type(widget).__name__, widget.minimumSizeHint().width(),
                      widget.text() if isinstance(widget, (QLabel, QAbstractButton)) else "")
                     for widget in widgets), key=lambda item: -item[1])[:5]
    found = {"width": panel.widget().minimumSizeHint().width(), "room": panel.viewport().width(),
             "scroll": panel.horizontalScrollBar().maximum(), "dialog": [dialog.width(), dialog.height()],
             "widest": widest}
    close(dialog)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="x".join(map(str, DEFAULT_SIZE)))
    parser.add_argument("algorithms", nargs="*")
    args = parser.parse_args(argv)
    size = tuple(int(value) for value in args.size.split("x"))
    app = start_qgis(gui=True)
    from qgis.core import QgsApplication

    provider = QgsApplication.processingRegistry().providerById("patchflow")
    ids = args.algorithms or sorted(algorithm.id() for algorithm in provider.algorithms())
    print(json.dumps({algorithm_id: measure(algorithm_id, size) for algorithm_id in ids}, indent=1))
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
