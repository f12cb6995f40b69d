"""Loaded inference models kept in a warm worker (``worker --serve``) between jobs.

A model is reused only while its files are unchanged (each file's size, mtime and inode, the card
beside a ``.keras`` file too) and only for the same trust decision it was loaded under: the
safety gate (``modelsafety.open_model``) still checks the model before every lookup, so a model
trusted once is refused again to a job that does not trust it. Off (every job loads its model)
until ``enable`` is called: scripts and tests that run jobs in their own process load afresh.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..reporting import Reporter

MAX_FILES = 10_000  # files of a SavedModel folder looked at; a larger one is not cached
Fingerprint = tuple[tuple[str, int, int, int], ...]

_CACHE: OrderedDict[tuple[str, bool, str], tuple[Fingerprint, Any]] = OrderedDict()
_LIMIT = [0]  # models kept; 0: off


def enable(models: int) -> None:
    """Keep up to ``models`` models (least recently used dropped first); 0 turns the cache off."""
    _LIMIT[0] = max(0, int(models))
    clear()


def clear() -> None:
    _CACHE.clear()


def fingerprint(path: str) -> Fingerprint | None:
    """What identifies the model's files now: (relative path, size, mtime_ns, inode) of each; None
    when it cannot be read or is too large to look at."""
    from .modelcard import card_path

    try:
        files = [path] if os.path.isfile(path) else []
        if os.path.isdir(path):
            for folder, _, names in os.walk(path):
                files += [os.path.join(folder, name) for name in names]
                if len(files) > MAX_FILES:
                    return None
        card = card_path(path)
        if card not in files and os.path.exists(card):
            files.append(card)
        entries = []
        for name in sorted(files):
            info = os.stat(name)
            entries.append((os.path.relpath(name, path), info.st_size, info.st_mtime_ns, info.st_ino))
        return tuple(entries)
    except (OSError, ValueError):
        return None


def cached(path: str, trusted: bool, parameter: str, load: Callable[[], Any], reporter: Reporter | None = None) -> Any:
    """The model at ``path`` loaded under ``trusted`` for ``parameter`` (its errors name it): the one kept
    from an earlier job if its files have not changed since, else ``load()`` (kept for the next job)."""
    if not _LIMIT[0]:
        return load()
    key = (os.path.realpath(path), bool(trusted), parameter)
    before = fingerprint(path)
    kept = _CACHE.get(key)
    if before is not None and kept is not None and kept[0] == before:
        _CACHE.move_to_end(key)
        if reporter is not None:
            reporter.log(f"model {os.path.basename(os.path.normpath(path))}: kept loaded in the worker since an "
                         "earlier run (its files have not changed)")
        return kept[1]
    for stale in [k for k, (f, _) in _CACHE.items() if k[0] == key[0] and f != before]:  # changed on disk
        del _CACHE[stale]
    model = load()
    if before is not None and fingerprint(path) == before:  # not kept if the files changed while loading
        _CACHE[key] = (before, model)
        while len(_CACHE) > _LIMIT[0]:
            _CACHE.popitem(last=False)
    return model
