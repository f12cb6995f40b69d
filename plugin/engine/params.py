"""Typed access to a job's parameters; each bad value becomes an error naming the parameter.

Parameter names are the Processing algorithm's (INPUT, PATCH_SIZE, ...), so a message names
what the user sees in the dialog, the modeler and ``qgis_process``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import PatchFlowError
from .reporting import Reporter
from .staging import OutputStaging

_MISSING = object()


class Params:
    def __init__(self, values: dict[str, Any], labels: dict[str, str] | None = None) -> None:
        self.values = values
        self.labels = labels or {}

    def describe(self, name: str) -> str:
        """A parameter as the user sees it: "Training dataset (manifest) (TRAIN)", or "TRAIN" when
        the job came without labels (the command line)."""
        label = self.labels.get(name)
        return f"{label} ({name})" if label else name

    def _get(self, name: str, default: Any) -> Any:
        value = self.values.get(name)
        if value is None or value == "":
            if default is _MISSING:
                raise PatchFlowError("a value is required.", name)
            return default
        return value

    def string(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        return value if value is None else str(value)

    def integer(self, name: str, default: Any = _MISSING, minimum: int | None = None) -> Any:
        value = self._get(name, default)
        if value is None:
            return None
        try:
            number = int(value)
            if number != float(value):
                raise ValueError
        except (TypeError, ValueError):
            raise PatchFlowError(f"'{value}' is not a whole number.", name) from None
        if minimum is not None and number < minimum:
            raise PatchFlowError(f"{number} is too small; use {minimum} or more.", name)
        return number

    def number(self, name: str, default: Any = _MISSING, minimum: float | None = None) -> Any:
        value = self._get(name, default)
        if value is None:
            return None
        try:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
        except (TypeError, ValueError):
            raise PatchFlowError(f"'{value}' is not a finite number; give a number such as 0.5.", name) from None
        if minimum is not None and number < minimum:
            raise PatchFlowError(f"{number:g} is too small; use {minimum:g} or more.", name)
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

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._get(name, default)
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)

    def choice(self, name: str, choices: Sequence[str], default: Any = _MISSING) -> str:
        value = self._get(name, default)
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
