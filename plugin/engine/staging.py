"""Outputs are written under a temporary name and moved into place only when all are complete.

Each output goes to ``<its folder>/.patchflow-staging-<job id>/<its name>``; ``commit`` moves
every file there into the output folder, ``abort`` deletes the staging folders. A worker
killed outright leaves a staging folder that the client deletes, knowing the job id.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import TracebackType

from ..protocol import STAGING_PREFIX
from .errors import PatchFlowError
from .ownership import mark_folder, written_by_patchflow


def staging_dir_for(final_path: str | os.PathLike, job_id: str) -> Path:
    return Path(final_path).absolute().parent / f"{STAGING_PREFIX}{job_id}"


class OutputStaging:
    """Context manager: stage outputs, commit them together, roll back on any exception."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.staged: dict[Path, Path] = {}
        self.created_folders: list[Path] = []  # output folders that did not exist, removed on abort

    def stage(self, final_path: str | os.PathLike, parameter: str) -> str:
        """Where to write ``final_path`` until commit; checks the folder is writable now."""
        final = Path(final_path).absolute()
        folder = staging_dir_for(final, self.job_id)
        try:
            missing = [p for p in (final.parent, *final.parent.parents) if not p.exists()]
            final.parent.mkdir(parents=True, exist_ok=True)
            self.created_folders.extend(missing)
            folder.mkdir(exist_ok=True)
            probe = folder / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise PatchFlowError(
                f"cannot write to folder {final.parent} ({exc.strerror or exc}). "
                "Choose an output in a folder you can write to.",
                parameter,
            ) from None
        staged = folder / final.name
        self.staged[final] = staged
        return str(staged)

    def commit(self) -> None:
        """Move every staged item into place; a folder replaces only a folder PatchFlow wrote (or an
        empty one), and is marked as PatchFlow's. Checked for every item before anything moves."""
        folders = sorted({staged.parent for staged in self.staged.values()})
        moves = [(item, folder.parent / item.name) for folder in folders for item in sorted(folder.iterdir())]
        for _item, target in moves:
            if target.is_dir() and not target.is_symlink() and os.listdir(target) and not written_by_patchflow(target):
                raise PatchFlowError(f"{target} exists and was not written by PatchFlow: it is left as it is and "
                                     "nothing was written. Choose another output.")
        for item, target in moves:
            if item.is_dir() and not item.is_symlink():
                mark_folder(item, self.job_id)
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
        for folder in folders:
            folder.rmdir()
        self.staged.clear()

    def abort(self) -> None:
        for folder in {staged.parent for staged in self.staged.values()}:
            shutil.rmtree(folder, ignore_errors=True)
        for folder in self.created_folders:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                pass
        self.staged.clear()
        self.created_folders.clear()

    def __enter__(self) -> OutputStaging:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif self.staged:
            try:
                self.commit()
            except BaseException:
                self.abort()
                raise
