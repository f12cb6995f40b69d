"""Engine tests: helpers to run operations in-process (no QGIS involved)."""

from __future__ import annotations

import pytest


@pytest.fixture
def run_op():
    """run_op(operation, **parameters) -> (outputs, reporter)."""
    from patchflow.plugin import protocol
    from patchflow.plugin.engine.reporting import Reporter
    from patchflow.plugin.engine.worker import run_job

    def run(operation: str, **parameters):
        reporter = Reporter()
        outputs = run_job(protocol.Job(operation, parameters, "test"), reporter)
        return outputs, reporter

    return run
