"""Choices shared by several algorithms (the engine's names, in the order the enums show them)."""

SAMPLING_STRATEGIES = ("constant", "all", "smallest", "total")
SAMPLING_STRATEGY_LABELS = (
    "Constant: the same number per class",
    "All labelled pixels",
    "Smallest class size, for every class",
    "Total number, split in proportion to class sizes",
)
SPLIT_STRATEGIES = ("split", "chessboard", "all", "balanced")
SPLIT_STRATEGY_LABELS = (
    "Split: random blocks in the given proportions",
    "Chessboard: blocks alternate training / validation",
    "All: every patch to training",
    "Balanced: split, then as many patches per class as the rarest has",
)
