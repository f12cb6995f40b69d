"""A model's fingerprint for serving elsewhere: the SHA-256 of its files (a SavedModel folder's files, or the
.keras file and the card beside it), computed on the client once the safety gate has checked the model, and
checked again by each Dask worker before it loads the model from the shared path (modelsafety.open_model)."""

from __future__ import annotations

import hashlib
import os

from ..errors import PatchFlowError

CHUNK = 1 << 20


def model_files(path: str) -> list[str]:
    """The files that make the model: every file of a SavedModel folder, or the .keras file and its card."""
    from .modelcard import card_path

    if os.path.basename(path) == "saved_model.pb":  # a SavedModel picked by its graph: the whole folder
        path = os.path.dirname(path) or "."
    files = [path] if os.path.isfile(path) else []
    if os.path.isdir(path):
        for folder, _, names in os.walk(path):
            files += [os.path.join(folder, name) for name in names]
    card = card_path(path)
    if card not in files and os.path.isfile(card):
        files.append(card)
    return sorted(files)


def model_digest(path: str, parameter: str = "MODEL") -> str:
    """The SHA-256 of the model's files: their paths relative to the model and their contents, in order."""
    digest = hashlib.sha256()
    if os.path.basename(path) == "saved_model.pb":
        path = os.path.dirname(path) or "."
    base = path if os.path.isdir(path) else os.path.dirname(path)
    try:
        files = model_files(path)
        if not files:
            raise FileNotFoundError(2, "no such file or folder")
        for name in files:
            digest.update(os.path.relpath(name, base).encode("utf-8") + b"\0")
            with open(name, "rb") as handle:
                while block := handle.read(CHUNK):
                    digest.update(block)
            digest.update(b"\0")
    except OSError as exc:
        raise PatchFlowError(f"cannot read the model {path} ({exc.strerror or exc}). Check that it is on a file system "
                             "every worker sees at the same path.", parameter) from None
    return digest.hexdigest()


def verify_digest(path: str, expected: str, parameter: str = "MODEL") -> None:
    """Refuse the model when its files are not the ones checked on the client (changed or replaced since)."""
    found = model_digest(path, parameter)
    if found != expected:
        raise PatchFlowError(f"the model {path} is not the one checked before the run (SHA-256 {found[:16]}..., "
                             f"checked: {expected[:16]}...): it changed during the run, so this worker refuses to "
                             "load it. Leave the model as it is while it is served, and run again.", parameter)
