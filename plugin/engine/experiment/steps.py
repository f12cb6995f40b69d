"""One engine operation run as a step of another, in this process: its parameters checked against
its declaration, its outputs staged on their own and committed into the caller's work folder (itself
inside the caller's staged output, so a cancel or a failure of the caller removes them too), the
caller's cancel event shared."""

from __future__ import annotations

import itertools
from typing import Any

from ...declarations import OPERATIONS as DECLARATIONS
from ..errors import Cancelled, PatchFlowError
from ..params import Params, RunContext
from ..reporting import Reporter
from ..staging import OutputStaging

_COUNTER = itertools.count(1)


def run_step(operation: str, values: dict[str, Any], context: RunContext, reporter: Reporter, what: str) -> dict:
    """Run ``operation`` with ``values``; ``what`` (e.g. "training the fcnn on the SR image") is put
    before an error's message so that it says which step failed."""
    from ..operations import OPERATIONS

    if context.cancelled():
        raise Cancelled()
    params = Params(values, {}, DECLARATIONS[operation])
    job_id = f"{context.job_id}-step{next(_COUNTER)}"
    step = RunContext(job_id, reporter, OutputStaging(job_id), context.cancel_event)
    try:
        with step.staging:
            result = OPERATIONS[operation](params, step)
            if context.cancelled():
                raise Cancelled()
    except PatchFlowError as exc:
        raise PatchFlowError(f"{what} ({operation}, {exc.parameter or 'no parameter'}): {exc.message}") from None
    return result
