"""Outputs never touch inputs: an output that is, lies inside, or contains an input of the same
run is refused before the run starts, naming both parameters. Nor do they replace more than
PatchFlow writes: a GeoPackage (or SQLite) output that holds layers other than the one PatchFlow
would write there is refused, since writing the file would drop them.

Outputs are the parameters named ``OUTPUT`` or ``OUTPUT_<something>`` (every algorithm's
destinations are). Inputs are every other parameter whose value names an existing file or folder,
with what a JSON input (a dataset manifest, a classifier's description) names in turn: the
patches-images of a manifest are inputs of a training run too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

from ..declarations import OPERATIONS
from .errors import PatchFlowError

MAX_JSON_BYTES = 16 << 20  # a manifest larger than this is not read for the files it names


# every destination is declared (OUTPUT, OUTPUT_CSV, ...); OUTPUT_TYPE and OUTPUTS are not outputs
_DESTINATIONS = {p.name for op in OPERATIONS.values() for p in op.parameters if p.destination}
_NOT_DESTINATIONS = {p.name for op in OPERATIONS.values() for p in op.parameters if not p.destination}


def is_output(name: str) -> bool:
    """A destination parameter: a declared one, or an undeclared OUTPUT / OUTPUT_<something>."""
    if name in _DESTINATIONS:
        return True
    return name not in _NOT_DESTINATIONS and (name == "OUTPUT" or name.startswith("OUTPUT_"))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def _file_part(text: str) -> str:
    """A GDAL/OGR source without its ``|layername=...`` suffix."""
    return text.split("|", 1)[0]


def _real(path: str) -> str:
    return os.path.normcase(os.path.realpath(os.path.abspath(path)))


def _named_in_json(path: str) -> Iterator[str]:
    """Existing files (not folders) a JSON input names (relative names are relative to its folder)."""
    try:
        if os.path.getsize(path) > MAX_JSON_BYTES:
            return
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError, UnicodeDecodeError):
        return
    folder = os.path.dirname(os.path.abspath(path))
    for text in _strings(data):
        if len(text) > 4096 or "\n" in text or not (os.sep in text or "/" in text or "." in text):
            continue
        candidate = os.path.join(folder, _file_part(text))
        if os.path.isfile(candidate):
            yield candidate


def inputs_of(values: dict[str, Any]) -> list[tuple[str, str]]:
    """(parameter, real path) of every existing file or folder the job reads."""
    found: list[tuple[str, str]] = []
    for name, value in values.items():
        if is_output(name):
            continue
        for text in _strings(value):
            path = _file_part(text)
            if not path or "://" in path or path.startswith("/vsi") or not os.path.exists(path):
                continue
            found.append((name, _real(path)))
            if path.lower().endswith(".json") and os.path.isfile(path):
                found.extend((name, _real(named)) for named in _named_in_json(path))
    return found


def outputs_of(values: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name, _real(_file_part(value))) for name, value in values.items()
            if is_output(name) and isinstance(value, str) and value.strip()]


def _inside(path: str, folder: str) -> bool:
    return path != folder and path.startswith(folder.rstrip(os.sep) + os.sep)


def check_outputs_apart(values: dict[str, Any], describe: Callable[[str], str] = str) -> None:
    """Raise, naming the output and the input, when an output would overwrite or delete an input."""
    outputs = outputs_of(values)
    for index, (name, output) in enumerate(outputs):
        for other_name, other in outputs[:index]:
            if other == output:
                raise PatchFlowError(f"{output} is also chosen for {describe(other_name)}: each output needs its "
                                     "own file. Choose another name.", name)
    for name, output in outputs:
        for input_name, source in inputs_of(values):
            if output == source:
                how = "is the same file as"
            elif _inside(source, output):
                how = "contains"
            elif _inside(output, source):
                how = "lies inside"
            else:
                continue
            raise PatchFlowError(
                f"{output} {how} the input {source} of {describe(input_name)}: writing it would overwrite or "
                "delete that input. Choose an output elsewhere.", name)


DATABASES = (".gpkg", ".sqlite", ".db")


def _layer_names(path: str) -> list[str] | None:
    from osgeo import gdal

    try:
        ds = gdal.OpenEx(path, gdal.OF_VECTOR | gdal.OF_READONLY)
    except RuntimeError:
        return None
    if ds is None:
        return None
    return [ds.GetLayer(index).GetName() for index in range(ds.GetLayerCount())]


def check_outputs_hold_nothing_else(values: dict[str, Any]) -> None:
    """Raise when a database output already holds layers other than the one PatchFlow writes (its
    file name's stem): replacing the file would drop them."""
    for name, output in outputs_of(values):
        if not output.lower().endswith(DATABASES) or not os.path.isfile(output):
            continue
        layers = _layer_names(output)
        own = os.path.splitext(os.path.basename(output))[0]
        others = [layer for layer in layers or [] if layer != own]
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            raise PatchFlowError(
                f"{output} already holds other layers ({shown}); PatchFlow writes the whole file, so they would be "
                "lost. Choose a new file name.", name)
