"""Errors the engine raises for the user to read."""

from __future__ import annotations


class PatchFlowError(Exception):
    """A failure the user can act on; ``parameter`` names the parameter at fault, if any."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter

    def __str__(self) -> str:
        return f"{self.parameter}: {self.message}" if self.parameter else self.message


class Cancelled(Exception):
    """The run was cancelled (signal or closed stdin); outputs are rolled back."""
