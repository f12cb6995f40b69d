"""The pairs an accuracy assessment scored, one per reference sample: its coordinates (map CRS:
the point itself, or the pixel centre for polygons and label rasters), the reference class and
the map's class (empty where the map has none there: nodata, or outside it). Assess accuracy
writes them beside its scores CSV (``<stem>_pairs.csv``); Compare accuracy pairs two maps'
samples by their coordinates to test whether their accuracies differ (significance.py)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np

from ..errors import PatchFlowError

SUFFIX = "_pairs.csv"
COLUMNS = ("x", "y", "reference", "predicted")
LIMIT = 1_000_000  # samples kept: beyond, no pairs file (assess at sample points for significance instead)
NO_CLASS = -1  # 'predicted' of a sample the map has no class at


def pairs_path(csv_path: str) -> str:
    """Where the pairs of the scores CSV ``csv_path`` are: beside it, ``<stem>_pairs.csv``."""
    return os.path.splitext(csv_path)[0] + SUFFIX


@dataclass
class Pairs:
    """Samples of one assessment: coordinates, reference class, map class (NO_CLASS: none)."""

    xs: np.ndarray
    ys: np.ndarray
    reference: np.ndarray
    predicted: np.ndarray

    def __len__(self) -> int:
        return len(self.xs)

    @property
    def scored(self) -> np.ndarray:
        """The samples the map has a class at (the pairs its scores count)."""
        return self.predicted != NO_CLASS


class PairLog:
    """The samples as they are counted, up to LIMIT (beyond, ``overflow`` and nothing kept)."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = LIMIT if limit is None else limit
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.count = 0
        self.overflow = False

    def add(self, xs: np.ndarray, ys: np.ndarray, reference: np.ndarray, predicted: np.ndarray,
            map_valid: np.ndarray) -> None:
        self.count += len(xs)
        if self.overflow or not len(xs):
            return
        if self.count > self.limit:
            self.overflow, self.parts = True, []
            return
        shown = np.where(map_valid, predicted, NO_CLASS)
        self.parts.append((np.asarray(xs, np.float64), np.asarray(ys, np.float64),
                           np.asarray(reference, np.int64), np.asarray(shown, np.int64)))

    def pairs(self) -> Pairs:
        if not self.parts:
            return Pairs(*(np.empty(0, dtype) for dtype in (np.float64, np.float64, np.int64, np.int64)))
        return Pairs(*(np.concatenate(column) for column in zip(*self.parts)))

    def write(self, path: str) -> None:
        write_pairs(self.pairs(), path)


def write_pairs(pairs: Pairs, path: str) -> None:
    """CSV x, y, reference, predicted; coordinates with all their digits (repr), so that the same
    reference read for two maps gives the same text."""
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(COLUMNS)
        for x, y, ref, pred in zip(pairs.xs.tolist(), pairs.ys.tolist(), pairs.reference.tolist(),
                                   pairs.predicted.tolist()):
            writer.writerow((repr(x), repr(y), ref, "" if pred == NO_CLASS else pred))


def read_pairs(path: str, parameter: str) -> Pairs:
    if not os.path.isfile(path):
        raise PatchFlowError(f"pairs file not found: {path}. Give the <report>{SUFFIX} file Assess accuracy wrote "
                             "beside its CSV.", parameter)
    xs, ys, reference, predicted = [], [], [], []
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise ValueError(f"columns {reader.fieldnames}, not {', '.join(COLUMNS)}")
            for row in reader:
                xs.append(float(row["x"]))
                ys.append(float(row["y"]))
                reference.append(int(row["reference"]))
                predicted.append(int(row["predicted"]) if row["predicted"] else NO_CLASS)
    except (OSError, ValueError, csv.Error) as exc:
        raise PatchFlowError(f"{path} is not a pairs file written by Assess accuracy ({exc}).", parameter) from None
    return Pairs(np.asarray(xs, np.float64), np.asarray(ys, np.float64), np.asarray(reference, np.int64),
                 np.asarray(predicted, np.int64))


def _keys(pairs: Pairs) -> list[tuple[float, float, int]]:
    """Each sample's coordinates (to a millionth of a map unit) and its rank among the samples at
    the same place, so that duplicated points pair in their order."""
    seen: dict[tuple[float, float], int] = {}
    keys = []
    for x, y in zip(np.round(pairs.xs, 6).tolist(), np.round(pairs.ys, 6).tolist()):
        rank = seen.get((x, y), 0)
        seen[(x, y)] = rank + 1
        keys.append((x, y, rank))
    return keys


@dataclass
class Matched:
    """Two maps' samples at the same places: the reference and both maps' classes, where both
    maps have a class; with how many samples only one of them scored."""

    reference: np.ndarray
    first: np.ndarray
    second: np.ndarray
    first_only: int  # samples the second map has no class at
    second_only: int


def match(first: Pairs, second: Pairs, names: tuple[str, str], parameter: str) -> Matched:
    """Pair two assessments by coordinates. They must have been made against the same reference
    samples (same places, same classes): else a PatchFlowError naming ``parameter``."""
    keys_a, keys_b = _keys(first), _keys(second)
    index_b = {key: position for position, key in enumerate(keys_b)}
    common = [(position, index_b[key]) for position, key in enumerate(keys_a) if key in index_b]
    if len(common) != len(keys_a) or len(keys_a) != len(keys_b):
        raise PatchFlowError(
            f"{names[0]} and {names[1]} were assessed at different places ({len(keys_a)} and {len(keys_b)} "
            f"samples, {len(common)} at the same coordinates): a paired test needs both maps assessed against "
            "the same reference (the same points, in the same CRS). Assess both maps with the same REFERENCE, "
            "or compare their scores without significance.", parameter)
    a, b = (np.asarray(side, dtype=np.int64) for side in zip(*common)) if common else (np.empty(0, np.int64),) * 2
    differ = first.reference[a] != second.reference[b]
    if differ.any():
        where = int(np.flatnonzero(differ)[0])
        raise PatchFlowError(
            f"{names[0]} and {names[1]} were assessed against different reference classes ({int(differ.sum())} "
            f"samples differ, e.g. at x {first.xs[a[where]]:.2f}, y {first.ys[a[where]]:.2f}: class "
            f"{first.reference[a[where]]} against {second.reference[b[where]]}). Assess both maps with the same "
            "REFERENCE and CLASS_FIELD (maps with the same class ids).", parameter)
    both = first.scored[a] & second.scored[b]
    return Matched(first.reference[a][both], first.predicted[a][both], second.predicted[b][both],
                   int((first.scored[a] & ~second.scored[b]).sum()), int((~first.scored[a] & second.scored[b]).sum()))
