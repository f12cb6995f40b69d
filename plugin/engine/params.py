"""Typed access to a job's parameters; each bad value becomes an error naming the parameter.

Parameter names are the Processing algorithm's (INPUT, PATCH_SIZE, ...), so a message names
what the user sees in the dialog, the modeler and ``qgis_process``. Defaults, bounds and choices
come from the operation's declaration (plugin/declarations.py), the one the dialog is built from;
an explicit ``default`` overrides the declared one (a default that depends on another parameter).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..declarations import Operation, Param
from .errors import PatchFlowError
from .reporting import Reporter
from .staging import OutputStaging

_MISSING = object()


class Params:
    def __init__(self, values: dict[str, Any], labels: dict[str, str] | None = None,
                 declaration: Operation | None = None) -> None:
        self.values = values
        self.labels = labels or {}
        self.declaration = declaration

    def declared(self, name: str) -> Param | None:
        return self.declaration.parameter(name) if self.declaration is not None else None

    def _default(self, name: str, default: Any) -> Any:
        """An explicit default, else the declared one: None for an optional parameter without one,
        required (a missing value is an error) for the others."""
        param = self.declared(name)
        if default is not _MISSING or param is None:
            return default
        if param.engine_default is not None:
            return param.engine_default
        return None if param.optional else _MISSING

    def _bound(self, name: str, given: Any, which: str) -> Any:
        param = self.declared(name)
        return given if given is not None or param is None else getattr(param, which)

    def describe(self, name: str) -> str:
        """A parameter as the user sees it: "Training dataset (manifest) (TRAIN)", or "TRAIN" when
        the job came without labels (the command line)."""
        label = self.labels.get(name)
        return f"{label} ({name})" if label else name

    def _get(self, name: str, default: Any, required: bool = False) -> Any:
        value = self.values.get(name)
        if value is None or value == "":
            default = _MISSING if required else self._default(name, default)
            if default is _MISSING:
                raise PatchFlowError("a value is required.", name)
            return default
        return value

    def string(self, name: str, default: Any = _MISSING, required: bool = False) -> Any:
        value = self._get(name, default, required)
        return value if value is None else str(value)

    def integer(self, name: str, default: Any = _MISSING, minimum: int | None = None,
                maximum: int | None = None, required: bool = False) -> Any:
        value = self._get(name, default, required)
        if value is None:
            return None
        try:
            number = int(value)
            if number != float(value):
                raise ValueError
        except (TypeError, ValueError):
            raise PatchFlowError(f"'{value}' is not a whole number.", name) from None
        return self._within(name, number, minimum, maximum)

    def number(self, name: str, default: Any = _MISSING, minimum: float | None = None,
               maximum: float | None = None, required: bool = False) -> Any:
        value = self._get(name, default, required)
        if value is None:
            return None
        try:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
        except (TypeError, ValueError):
            raise PatchFlowError(f"'{value}' is not a finite number; give a number such as 0.5.", name) from None
        return self._within(name, number, minimum, maximum)

    def _within(self, name: str, number: Any, minimum: Any, maximum: Any) -> Any:
        """The number, if within its bounds (given, else declared)."""
        minimum, maximum = self._bound(name, minimum, "minimum"), self._bound(name, maximum, "maximum")
        text = (lambda v: f"{v:g}") if isinstance(number, float) else (lambda v: f"{int(v)}")
        param = self.declared(name)
        why = f" ({param.why})" if param is not None and param.why else ""
        if minimum is not None and number < minimum:
            raise PatchFlowError(f"{text(number)} is too small; use {text(minimum)} or more{why}.", name)
        if maximum is not None and number > maximum:
            raise PatchFlowError(f"{text(number)} is too large; use {text(maximum)} or less{why}.", name)
        return number

    def nodata(self, name: str) -> float | None:
        """A nodata value: any finite number, or NaN (which is nodata anyway); None when not given."""
        value = self._get(name, None)
        if value is None:
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise PatchFlowError(f"'{value}' is not a number; give the value that marks nodata.", name) from None
        if math.isinf(number):
            raise PatchFlowError(f"{value} cannot mark nodata (infinities are nodata already); give a finite "
                                 "number, or leave it empty.", name)
        return number

    def boolean(self, name: str, default: Any = _MISSING) -> bool:
        if default is _MISSING and self.declared(name) is None:
            default = False
        value = self._get(name, default)
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)

    def choice(self, name: str, choices: Sequence[str] | None = None, default: Any = _MISSING) -> str:
        """One of ``choices`` (else the declared ones: an enum's engine values, or a boolean's engine
        values for false and true), or its index."""
        param = self.declared(name)
        if choices is None:
            choices = param.values if param is not None else ()
        value = self._get(name, default)
        if isinstance(value, bool) and param is not None and param.kind == "boolean" and len(choices) == 2:
            return choices[value]
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(choices):
            return choices[value]
        if str(value) not in choices:
            raise PatchFlowError(f"'{value}' is not one of: {', '.join(choices)}.", name)
        return str(value)

    def paths(self, name: str, required: bool = True) -> list[str]:
        value = self.values.get(name)
        if value in (None, "", []):
            if required:
                raise PatchFlowError("at least one file is required.", name)
            return []
        if isinstance(value, str):
            return [value]
        return [str(v) for v in value]


@dataclass
class RunContext:
    """What an operation gets besides its parameters."""

    job_id: str
    reporter: Reporter
    staging: OutputStaging
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()
