"""Output staging: outputs appear together on success and not at all on failure."""

from __future__ import annotations

import pytest

from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.ownership import MARKER, mark_folder, written_by_patchflow
from patchflow.plugin.engine.staging import OutputStaging, staging_dir_for
from patchflow.plugin.protocol import STAGING_PREFIX


def test_stage_then_commit_moves_every_output_into_place(tmp_path):
    staging = OutputStaging("job1")
    a = staging.stage(tmp_path / "a.gpkg", "OUTPUT")
    b = staging.stage(tmp_path / "sub" / "b.json", "OUTPUT_B")
    folder_a = tmp_path / f"{STAGING_PREFIX}job1"
    folder_b = tmp_path / "sub" / f"{STAGING_PREFIX}job1"
    assert a == str(folder_a / "a.gpkg")
    assert b == str(folder_b / "b.json")
    with open(a, "w") as handle:
        handle.write("A")
    with open(b, "w") as handle:
        handle.write("B")
    with open(str(folder_a / "a.gpkg-wal"), "w") as handle:  # a side file a driver may write
        handle.write("W")
    assert not (tmp_path / "a.gpkg").exists()
    staging.commit()
    assert (tmp_path / "a.gpkg").read_text() == "A"
    assert (tmp_path / "a.gpkg-wal").read_text() == "W"
    assert (tmp_path / "sub" / "b.json").read_text() == "B"
    assert not folder_a.exists() and not folder_b.exists()


def test_commit_replaces_existing_outputs(tmp_path):
    (tmp_path / "out.txt").write_text("old")
    (tmp_path / "out.dir").mkdir()
    (tmp_path / "out.dir" / "old").write_text("x")
    mark_folder(tmp_path / "out.dir", "earlier")  # a folder an earlier PatchFlow run wrote
    staging = OutputStaging("j")
    with open(staging.stage(tmp_path / "out.txt", "OUTPUT"), "w") as handle:
        handle.write("new")
    staged_dir = staging_dir_for(tmp_path / "out.dir", "j") / "out.dir"
    staged_dir.mkdir()
    (staged_dir / "new").write_text("y")
    staging.commit()
    assert (tmp_path / "out.txt").read_text() == "new"
    assert sorted(p.name for p in (tmp_path / "out.dir").iterdir()) == [MARKER, "new"]
    assert written_by_patchflow(tmp_path / "out.dir")


@pytest.mark.parametrize("foreign", ["no marker", "a file added to a PatchFlow folder"])
def test_commit_never_replaces_a_folder_patchflow_did_not_write(tmp_path, foreign):
    (tmp_path / "out.dir").mkdir()
    if foreign == "a file added to a PatchFlow folder":
        (tmp_path / "out.dir" / "model.pb").write_text("x")
        mark_folder(tmp_path / "out.dir", "earlier")
    (tmp_path / "out.dir" / "thesis.txt").write_text("keep me")
    (tmp_path / "other.txt").write_text("old")
    with pytest.raises(PatchFlowError, match="not written by PatchFlow"):
        with OutputStaging("j3") as staging:
            with open(staging.stage(tmp_path / "other.txt", "OUTPUT_CSV"), "w") as handle:
                handle.write("new")
            staged_dir = staging_dir_for(tmp_path / "out.dir", "j3") / "out.dir"
            staged_dir.mkdir()
            (staged_dir / "new").write_text("y")
    assert (tmp_path / "out.dir" / "thesis.txt").read_text() == "keep me"
    assert (tmp_path / "other.txt").read_text() == "old"  # nothing moved: all or nothing
    assert not list(tmp_path.glob(".patchflow-staging-*"))


def test_abort_removes_staged_files_and_keeps_previous_outputs(tmp_path):
    (tmp_path / "out.txt").write_text("old")
    staging = OutputStaging("j2")
    with open(staging.stage(tmp_path / "out.txt", "OUTPUT"), "w") as handle:
        handle.write("new")
    staging.abort()
    assert (tmp_path / "out.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_context_manager_rolls_back_on_exception(tmp_path):
    with pytest.raises(ValueError), OutputStaging("j3") as staging:
        with open(staging.stage(tmp_path / "a.tif", "OUTPUT"), "w") as handle:
            handle.write("partial")
        raise ValueError("failed half-way")
    assert list(tmp_path.iterdir()) == []


def test_context_manager_commits_on_success(tmp_path):
    with OutputStaging("j4") as staging:
        with open(staging.stage(tmp_path / "a.tif", "OUTPUT"), "w") as handle:
            handle.write("done")
    assert [p.name for p in tmp_path.iterdir()] == ["a.tif"]


def test_unwritable_folder_is_an_error_naming_the_parameter(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a regular file, not a folder")
    staging = OutputStaging("j5")
    with pytest.raises(PatchFlowError) as caught:
        staging.stage(blocker / "out.gpkg", "OUTPUT_TRAIN")
    assert caught.value.parameter == "OUTPUT_TRAIN"
    assert str(tmp_path / "file.txt") in caught.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_abort_removes_the_output_folders_it_created(tmp_path):
    from patchflow.plugin.engine.staging import OutputStaging

    staging = OutputStaging("job2")
    path = staging.stage(tmp_path / "new" / "deeper" / "out.json", "OUTPUT")
    with open(path, "w") as handle:
        handle.write("partial")
    staging.abort()
    assert list(tmp_path.iterdir()) == []
