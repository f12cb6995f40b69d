"""Where each patch of a dataset lies: the patch centres' map coordinates (x, y in the manifest's CRS), one
row per patch in the patches-images' order, in a small CSV beside them (``<stem>_positions.csv``, named by the
manifest's ``positions``). The patches-images stay OTBTF's; training reads the positions to score a fully
convolutional model on the source rasters as Apply model serves it."""

from __future__ import annotations

import csv
import os

import numpy as np

HEADER = ["x", "y"]


def positions_path(manifest_path: str) -> str:
    return f"{os.path.splitext(manifest_path)[0]}_positions.csv"


def write_positions(path: str, centres: np.ndarray) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows([repr(float(x)), repr(float(y))] for x, y in centres)


def manifest_entry(path: str) -> dict:
    return {"file": os.path.basename(path), "columns": HEADER,
            "meaning": "map coordinates (the manifest's CRS) of each patch centre, in patches-image order"}


def read_positions(manifest_path: str, manifest: dict) -> tuple[np.ndarray | None, str]:
    """(n, 2) patch centres of the dataset, or None and why not (no positions recorded, file gone or
    not one row per patch)."""
    entry = manifest.get("positions")
    if not entry or not entry.get("file"):
        return None, "the dataset records no patch positions (extracted by an older PatchFlow, or elsewhere)"
    path = os.path.join(os.path.dirname(os.path.abspath(manifest_path)), entry["file"])
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        centres = np.array([[float(x), float(y)] for x, y in rows[1:]], dtype=np.float64).reshape(-1, 2)
    except (OSError, ValueError) as exc:
        return None, f"its patch positions {path} cannot be read ({exc})"
    count = int(manifest.get("n_patches") or 0)
    if len(centres) != count or not np.isfinite(centres).all():
        return None, f"its patch positions {path} hold {len(centres)} rows for {count} patches"
    return centres, ""
