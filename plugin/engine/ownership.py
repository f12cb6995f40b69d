"""What PatchFlow wrote, so that OVERWRITE replaces only that.

Every output folder PatchFlow writes (a model folder, a training work folder) holds a marker,
``.patchflow-output.json``, listing the files PatchFlow put there. A folder is PatchFlow's to
replace only when it has the marker and holds nothing the marker does not list: a file the user
added, or a folder that was never PatchFlow's, is never deleted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import PatchFlowError

MARKER = ".patchflow-output.json"
WHOLE_FOLDER = "*"  # a work folder: everything in it is PatchFlow's (checkpoints come and go)


def _files_below(folder: Path) -> list[str]:
    found = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            found.append(os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/"))
    return sorted(found)


def mark_folder(folder: str | os.PathLike, job_id: str, whole: bool = False) -> None:
    """Write the marker into ``folder``: its current files (or the whole folder) are PatchFlow's."""
    folder = Path(folder)
    files = [WHOLE_FOLDER] if whole else [name for name in _files_below(folder) if name != MARKER]
    text = json.dumps({"written_by": "PatchFlow", "job": job_id, "files": files}, indent=1, allow_nan=False)
    (folder / MARKER).write_text(text + "\n", encoding="utf-8")


def foreign_files(folder: str | os.PathLike) -> list[str] | None:
    """Files in ``folder`` that PatchFlow did not write; None when the folder has no marker."""
    folder = Path(folder)
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        listed = set(marker["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if WHOLE_FOLDER in listed:
        return []
    return [name for name in _files_below(folder) if name != MARKER and name not in listed]


def written_by_patchflow(folder: str | os.PathLike) -> bool:
    return foreign_files(folder) == []


def check_replaceable(path: str, overwrite: bool, parameter: str, what: str = "folder", empty_ok: bool = True) -> None:
    """Raise unless ``path`` may be written: absent, an empty folder (unless not ``empty_ok``), or
    (with OVERWRITE) a folder PatchFlow wrote that holds nothing else."""
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path) or os.path.islink(path):
        raise PatchFlowError(f"{path} is a file; the output is a {what}. Choose a folder name.", parameter)
    if empty_ok and not os.listdir(path):
        return  # an empty folder (Processing may have made it) holds nothing to lose
    if not overwrite:
        raise PatchFlowError(f"{path} exists: tick OVERWRITE to replace it, or choose another folder.", parameter)
    if not os.listdir(path):
        return
    foreign = foreign_files(path)
    if foreign is None:
        raise PatchFlowError(
            f"{path} exists and was not written by PatchFlow (it has no {MARKER}), so OVERWRITE will not "
            "delete it. Choose another folder, or empty it yourself.", parameter)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise PatchFlowError(
            f"{path} holds files PatchFlow did not write ({shown}), so OVERWRITE will not delete it. Move "
            "them out, or choose another folder.", parameter)
