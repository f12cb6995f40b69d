"""The first check of every operation: each output can be written. Its folder exists and takes
files, or the nearest existing folder above it takes the folders to make; the probe is a hidden
folder, removed at once, so nothing a user would see is written.
"""

from __future__ import annotations

import os
import tempfile

from ..errors import PatchFlowError
from ..params import Params


def writable(params: Params, *names: str) -> None:
    """Each output parameter given in ``names`` can be written: its folder exists and takes files,
    or the nearest existing folder above it takes the folders to make."""
    for name in names:
        path = params.values.get(name)
        if path in (None, ""):
            continue
        check_writable(str(path), name)


def check_writable(path: str, parameter: str) -> None:
    final = os.path.abspath(path.split("|", 1)[0])
    folder = os.path.dirname(final)
    existing = folder
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        raise PatchFlowError(f"cannot write to folder {folder}: {existing} is a file, not a folder. Choose an output "
                             "in a folder you can write to.", parameter)
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".patchflow-probe-", dir=existing))
    except OSError as exc:
        raise PatchFlowError(f"cannot write to folder {folder} ({exc.strerror or exc}). Choose an output in a folder "
                             "you can write to.", parameter) from None
