"""One run per output: a lock on every output path, taken before the run starts.

Each output's lock is a file in this user's lock folder (``<temp>/patchflow-locks-<user>/``, named
by a hash of the output's real path, so nothing is written beside the output and a folder that
does not exist yet can be locked too), locked with the operating system's advisory lock
(``fcntl.flock``; ``msvcrt.locking`` on Windows) and holding the pid of the run. The operating
system releases it when the process ends, however it ends, so a killed worker never leaves an
output locked; the file itself is removed on release.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from .errors import PatchFlowError

if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]  # (mypy checks for Linux)
            return True
        except OSError:
            return False

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False


def lock_folder() -> Path:
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"patchflow-locks-{user}"


def lock_path(output: str | os.PathLike) -> Path:
    real = os.path.normcase(os.path.realpath(os.path.abspath(output)))
    return lock_folder() / (hashlib.sha1(real.encode("utf-8", "surrogateescape")).hexdigest()[:20] + ".lock")


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return "pid unknown"
    return f"pid {text}" if text.isdigit() else "pid unknown"


class OutputLocks:
    """Context manager: lock every output (parameter -> path) or raise, naming the first one taken."""

    def __init__(self, outputs: Iterable[tuple[str, str]], describe=str) -> None:
        self.outputs = list(outputs)
        self.describe = describe
        self.held: list[tuple[Path, int]] = []

    def acquire(self) -> None:
        for parameter, output in self.outputs:
            path = lock_path(output)
            path.parent.mkdir(mode=0o700, exist_ok=True)
            if any(held == path for held, _ in self.held):
                continue
            fd = self._lock(path)
            if fd is None:
                self.release()
                raise PatchFlowError(
                    f"{os.path.abspath(output)} is being written by another PatchFlow run ({_holder(path)}); "
                    "wait for it to finish or choose another output.", parameter)
            self.held.append((path, fd))

    @staticmethod
    def _lock(path: Path) -> int | None:
        """The locked file's descriptor, or None when another process holds it."""
        for _ in range(5):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                return -1  # a folder we cannot write to: staging reports that, naming the parameter
            if not _try_lock(fd):
                os.close(fd)
                return None
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except OSError:
                same = False
            if same:  # not a file its last holder removed while we opened it
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                return fd
            os.close(fd)
        return None

    def release(self) -> None:
        for path, fd in reversed(self.held):
            if fd < 0:
                continue
            try:
                path.unlink()
            except OSError:
                pass
            os.close(fd)
        self.held.clear()

    def __enter__(self) -> OutputLocks:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
