"""CLIP: image outputs (a super-resolved image) bounded to the range of the model's training target, the
per-band [min, max] its card records from the training dataset's statistics; a generator can write values far
outside it on unseen data (negative radiances, say). Outputs without a range on the card are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..params import Params
from ..reporting import Reporter
from .plan import ServingPlan


@dataclass
class Clip:
    low: np.ndarray  # per output channel (-inf / inf where there is no range)
    high: np.ndarray
    below: int = 0  # values raised to the low bound, of valid output pixels
    above: int = 0

    def apply(self, values: np.ndarray, invalid: np.ndarray) -> np.ndarray:
        """(h, w, channels) bounded; the clipped values of valid pixels counted."""
        valid = ~invalid
        self.below += int((values < self.low)[valid].sum())
        self.above += int((values > self.high)[valid].sum())
        return np.clip(values, self.low.astype(values.dtype), self.high.astype(values.dtype))

    def report(self, reporter: Reporter) -> None:
        bounds = ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in zip(self.low, self.high) if np.isfinite(lo))
        reporter.log(f"CLIP: {self.below} values raised to the training target's minimum and {self.above} lowered "
                     f"to its maximum (per band {bounds}, from the model card).")


def clip_for(params: Params, plan: ServingPlan, channels: dict[str, int], reporter: Reporter) -> Clip | None:
    """The bounds of the chosen outputs (``channels``: each output's channel count), when CLIP is on and the
    card gives a range for at least one image output; None otherwise."""
    card = plan.model.card
    low, high, known = [], [], False
    for name in plan.outputs:
        count = channels[name]
        try:
            spec = card.output(name) if card is not None else None
        except KeyError:
            spec = None
        value_range = spec.value_range if spec is not None and spec.kind == "image" else None
        if value_range and len(value_range) == count:
            low += [float(lo) for lo, _ in value_range]
            high += [float(hi) for _, hi in value_range]
            known = True
        else:
            low += [-np.inf] * count
            high += [np.inf] * count
    if not known:
        return None
    if not params.boolean("CLIP"):
        reporter.log("CLIP off: the image is written as the model gives it, not bounded to the training range.")
        return None
    return Clip(np.array(low), np.array(high))
