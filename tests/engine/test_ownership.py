"""OVERWRITE replaces only folders PatchFlow wrote, and nothing the user added to them."""

from __future__ import annotations

import pytest

from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.ownership import MARKER, check_replaceable, foreign_files, mark_folder


def test_a_missing_or_empty_folder_may_be_written(tmp_path):
    check_replaceable(str(tmp_path / "new"), False, "OUTPUT")
    (tmp_path / "empty").mkdir()
    check_replaceable(str(tmp_path / "empty"), False, "OUTPUT")


def test_an_existing_folder_needs_overwrite(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "saved_model.pb").write_text("x")
    mark_folder(tmp_path / "model", "j")
    with pytest.raises(PatchFlowError, match="tick OVERWRITE") as caught:
        check_replaceable(str(tmp_path / "model"), False, "OUTPUT")
    assert caught.value.parameter == "OUTPUT"
    check_replaceable(str(tmp_path / "model"), True, "OUTPUT")


def test_overwrite_refuses_a_folder_without_the_marker(tmp_path):
    (tmp_path / "documents").mkdir()
    (tmp_path / "documents" / "thesis.txt").write_text("mine")
    with pytest.raises(PatchFlowError, match="not written by PatchFlow") as caught:
        check_replaceable(str(tmp_path / "documents"), True, "OUTPUT")
    assert caught.value.parameter == "OUTPUT"


def test_overwrite_refuses_a_patchflow_folder_the_user_added_files_to(tmp_path):
    folder = tmp_path / "model"
    (folder / "variables").mkdir(parents=True)
    (folder / "variables" / "v.index").write_text("x")
    mark_folder(folder, "j")
    assert foreign_files(folder) == []
    (folder / "variables" / "notes.txt").write_text("mine")
    assert foreign_files(folder) == ["variables/notes.txt"]
    with pytest.raises(PatchFlowError, match="variables/notes.txt"):
        check_replaceable(str(folder), True, "OUTPUT")


def test_a_whole_folder_marker_covers_files_that_come_later(tmp_path):
    mark_folder(tmp_path, "training", whole=True)
    (tmp_path / "checkpoint.keras").write_text("x")
    assert foreign_files(tmp_path) == []
    assert (tmp_path / MARKER).exists()


def test_a_file_where_a_folder_is_expected_is_refused(tmp_path):
    (tmp_path / "model").write_text("x")
    with pytest.raises(PatchFlowError, match="is a file"):
        check_replaceable(str(tmp_path / "model"), True, "OUTPUT")
