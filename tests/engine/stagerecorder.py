"""A reporter that keeps every stage and every progress value of a run, in order, and the checks the
stage tests make with it: the stages said in the expected order, progress that only rises to 100."""

from __future__ import annotations

import re

from patchflow.plugin import protocol
from patchflow.plugin.engine.reporting import Reporter
from patchflow.plugin.engine.worker import run_job


class Stages(Reporter):
    """Every stage (text, percent, until) and every progress value, in order; the logged stages' texts."""

    def __init__(self) -> None:
        super().__init__()
        self.stages: list[tuple[str, float | None, float | None]] = []
        self.logged: list[str] = []
        self.values: list[float] = []

    def stage(self, text: str, percent: float | None = None, until: float | None = None, log: bool = True) -> None:
        self.stages.append((text, percent, until))
        if log:
            self.logged.append(text)
        super().stage(text, percent, until, log)

    def progress(self, percent: float) -> None:
        self.values.append(percent)

    @property
    def texts(self) -> list[str]:
        return [text for text, _, _ in self.stages]

    def steps(self, pattern: str) -> list[tuple[str, float | None]]:
        """The stages whose text matches ``pattern`` (e.g. "windows i/N"), with their percent."""
        return [(text, percent) for text, percent, _ in self.stages if re.fullmatch(pattern, text)]


def run(operation: str, **parameters) -> tuple[dict, Stages]:
    reporter = Stages()
    return run_job(protocol.Job(operation, parameters, "stages"), reporter), reporter


def said_in_order(texts: list[str], patterns: list[str]) -> None:
    """Each pattern matches a text (whole), after the one the previous pattern matched."""
    position = 0
    for pattern in patterns:
        found = next((i for i in range(position, len(texts)) if re.fullmatch(pattern, texts[i])), None)
        assert found is not None, f"no stage {pattern!r} after {texts[position - 1] if position else 'the start'}: " \
                                  f"{texts}"
        position = found + 1


def counted(reporter: Stages, pattern: str, count: int) -> None:
    """Stages "<pattern> i/N" for i = 1..N (N = ``count``), their percents rising."""
    steps = reporter.steps(pattern + r" (\d+)/(\d+)")
    numbers = [tuple(int(n) for n in re.findall(r"(\d+)/(\d+)$", text)[0]) for text, _ in steps]
    assert numbers and numbers[-1] == (count, count) and all(total == count for _, total in numbers), numbers
    assert [done for done, _ in numbers] == sorted(done for done, _ in numbers), numbers
    percents = [percent for _, percent in steps]
    assert None not in percents and percents == sorted(percents), percents  # type: ignore[type-var]
    assert count == 1 or percents[0] < percents[-1], percents


def rising(reporter: Stages) -> None:
    """Progress only rises (never back), and ends at 100."""
    values = reporter.values
    assert values and values == sorted(values) and values[-1] == 100, values
