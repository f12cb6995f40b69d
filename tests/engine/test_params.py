"""Typed parameter access: every bad value is an error naming the parameter."""

from __future__ import annotations

import math
import threading

import pytest

from patchflow.plugin.engine.errors import Cancelled, PatchFlowError
from patchflow.plugin.engine.params import Params, RunContext
from patchflow.plugin.engine.reporting import Reporter
from patchflow.plugin.engine.staging import OutputStaging


def error_of(call) -> PatchFlowError:
    with pytest.raises(PatchFlowError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("value", [None, ""])
def test_missing_required_value_names_the_parameter(value):
    params = Params({"INPUT": value})
    for getter in (params.string, params.integer, params.number):
        error = error_of(lambda getter=getter: getter("INPUT"))
        assert error.parameter == "INPUT"
        assert "required" in error.message
    assert error_of(lambda: params.choice("INPUT", ["a"])).parameter == "INPUT"
    assert error_of(lambda: Params({}).string("OUTPUT")).parameter == "OUTPUT"


def test_defaults_apply_to_missing_and_empty_values():
    params = Params({"A": "", "B": None})
    assert params.string("A", "x") == "x"
    assert params.integer("B", 7) == 7
    assert params.number("C", 1.5) == 1.5
    assert params.string("C", None) is None
    assert params.integer("C", None) is None
    assert params.boolean("C") is False
    assert params.boolean("C", True) is True


def test_string_converts_values():
    assert Params({"N": 12}).string("N") == "12"


@pytest.mark.parametrize(("value", "expected"), [(12, 12), ("12", 12), (12.0, 12), ("-3", -3)])
def test_integer_accepts_whole_numbers(value, expected):
    assert Params({"N": value}).integer("N") == expected


@pytest.mark.parametrize("value", [12.5, "12.5", "abc", [1], "1e400x"])
def test_integer_rejects_other_values(value):
    error = error_of(lambda: Params({"N": value}).integer("N"))
    assert error.parameter == "N"
    assert "whole number" in error.message


def test_integer_minimum():
    assert Params({"N": 3}).integer("N", minimum=3) == 3
    error = error_of(lambda: Params({"N": 2}).integer("N", minimum=3))
    assert error.parameter == "N"
    assert "3" in error.message


def test_number():
    assert Params({"X": "2.5"}).number("X") == 2.5
    assert Params({"X": 4}).number("X") == 4.0
    assert error_of(lambda: Params({"X": "two"}).number("X")).parameter == "X"
    error = error_of(lambda: Params({"X": -0.5}).number("X", minimum=0.0))
    assert error.parameter == "X"


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), (1, True), (0, False),
    ("true", True), ("True", True), ("1", True), ("yes", True), ("on", True),
    ("false", False), ("0", False), ("no", False), ("off", False), (" TRUE ", True),
])
def test_boolean(value, expected):
    assert Params({"B": value}).boolean("B") is expected


def test_choice_by_name_or_index():
    choices = ("constant", "all", "smallest")
    assert Params({"S": "all"}).choice("S", choices) == "all"
    assert Params({"S": 2}).choice("S", choices) == "smallest"
    assert Params({}).choice("S", choices, "constant") == "constant"


@pytest.mark.parametrize("value", ["ALL", "nope", 3, -1, True])
def test_choice_rejects_unknown_values(value):
    error = error_of(lambda: Params({"S": value}).choice("S", ("constant", "all", "smallest")))
    assert error.parameter == "S"
    assert "constant, all, smallest" in error.message


def test_paths():
    assert Params({"P": "a.tif"}).paths("P") == ["a.tif"]
    assert Params({"P": ["a.tif", "b.tif"]}).paths("P") == ["a.tif", "b.tif"]
    assert Params({}).paths("P", required=False) == []
    assert Params({"P": []}).paths("P", required=False) == []
    for empty in (None, "", []):
        assert error_of(lambda empty=empty: Params({"P": empty}).paths("P")).parameter == "P"


def test_error_text_names_the_parameter():
    assert str(PatchFlowError("too small", "PATCH_SIZE")) == "PATCH_SIZE: too small"
    assert str(PatchFlowError("broken")) == "broken"
    assert PatchFlowError("m", "P").message == "m"
    assert not issubclass(Cancelled, PatchFlowError)


def test_run_context_cancelled_follows_its_event():
    event = threading.Event()
    context = RunContext("j", Reporter(), OutputStaging("j"), event)
    assert not context.cancelled()
    event.set()
    assert context.cancelled()
    assert not RunContext("k", Reporter(), OutputStaging("k")).cancelled()


def test_sub_reporter_maps_progress_onto_its_span():
    parent = Reporter()
    sub = parent.span(40, 60)
    sub.progress(50)
    assert parent.last_progress == pytest.approx(50)
    sub.progress(150)
    assert parent.last_progress == pytest.approx(60)
    sub.progress(-5)
    assert parent.last_progress == pytest.approx(40)
    sub.span(0, 50).progress(100)
    assert parent.last_progress == pytest.approx(50)
    sub.warning("w")
    sub.log("l")
    assert parent.warnings == ["w"] and parent.logs == ["l"]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", float("nan")])
def test_a_non_finite_number_is_refused_naming_the_parameter(value):
    with pytest.raises(PatchFlowError, match="not a finite number") as caught:
        Params({"LEARNING_RATE": value}).number("LEARNING_RATE", 0.001, minimum=0.0)
    assert caught.value.parameter == "LEARNING_RATE"


def test_nodata_takes_a_number_or_nan_but_not_an_infinity():
    assert Params({"NODATA": "-9999"}).nodata("NODATA") == -9999.0
    assert math.isnan(Params({"NODATA": "nan"}).nodata("NODATA"))
    assert Params({}).nodata("NODATA") is None
    with pytest.raises(PatchFlowError, match="infinities are nodata already") as caught:
        Params({"NODATA": "inf"}).nodata("NODATA")
    assert caught.value.parameter == "NODATA"
