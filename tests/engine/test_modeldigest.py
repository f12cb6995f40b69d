"""The model's digest (models/modeldigest.py) that Dask workers check before loading a model: it covers
every file of a SavedModel folder and a .keras file's card, changes with any byte or file name, and a
mismatch is refused naming MODEL."""

from __future__ import annotations

import pytest

from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.models.modeldigest import model_digest, verify_digest


def saved_model(folder):
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    (folder / "patchflow_card.json").write_text("{}")
    return str(folder)


def test_every_file_and_name_of_a_saved_model_counts(tmp_path):
    path = saved_model(tmp_path / "m")
    first = model_digest(path)
    assert first == model_digest(path) and len(first) == 64
    assert model_digest(saved_model(tmp_path / "elsewhere")) == first  # the place does not count, the files do
    (tmp_path / "m" / "variables" / "variables.index").write_bytes(b"indeX")
    second = model_digest(path)
    assert second != first
    (tmp_path / "m" / "variables" / "variables.index").rename(tmp_path / "m" / "variables" / "variables.idx")
    assert model_digest(path) not in (first, second)
    (tmp_path / "m" / "variables" / "variables.idx").rename(tmp_path / "m" / "variables" / "variables.index")
    assert model_digest(path) == second
    assert model_digest(str(tmp_path / "m" / "saved_model.pb")) == second  # its graph stands for the folder
    (tmp_path / "m" / "assets").mkdir()
    (tmp_path / "m" / "assets" / "extra").write_bytes(b"")
    assert model_digest(path) != second


def test_a_keras_files_card_counts_and_a_mismatch_names_model(tmp_path):
    from patchflow.plugin.engine.models.modelcard import card_path

    keras = tmp_path / "net.keras"
    keras.write_bytes(b"zip")
    alone = model_digest(str(keras))
    card = card_path(str(keras))
    with open(card, "w", encoding="utf-8") as handle:
        handle.write("{}")
    with_card = model_digest(str(keras))
    assert with_card != alone
    verify_digest(str(keras), with_card)
    with open(card, "w", encoding="utf-8") as handle:
        handle.write('{"classes": []}')
    with pytest.raises(PatchFlowError) as error:
        verify_digest(str(keras), with_card)
    assert error.value.parameter == "MODEL" and "not the one checked before the run" in error.value.message
    with pytest.raises(PatchFlowError) as error:
        model_digest(str(tmp_path / "gone.keras"))
    assert error.value.parameter == "MODEL"
