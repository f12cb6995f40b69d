"""Stratified block split (grid_split STRATIFY): whole blocks are swapped between sets, starting from
the seeded random split, until every class has patches in every set written, whenever whole blocks
allow it; blocks are swapped pairwise, so each set keeps its number of blocks (the TRAIN / VALID /
TEST proportions), and partners of about the same size are tried first (the patch proportions stay
close). Rarest classes are placed first. What cannot be placed is warned about, naming the class, the
set and why."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..reporting import Reporter

SET_NAMES = (("the training set", "OUTPUT_TRAIN"), ("the validation set", "OUTPUT_VALID"),
             ("the test set", "OUTPUT_TEST"))
MAX_DONORS = 24  # groups of blocks holding the missing class tried per step
MAX_PARTNERS = 32  # blocks of the set lacking it tried per single block moved
BUDGET = 6000  # evaluations of a candidate split, at most


class Blocks:
    """What stratification knows of the blocks: for each class (indices into ``classes``) the groups of
    blocks one of its patches needs in a single set (one block, or the blocks a sample's patch covers),
    each block's usable patches (``sizes``), and ``outcome(labels)``: the (3, classes) patch counts a
    block labelling gives once every rule of the split (overlaps dropped, straddling samples) applies."""

    def __init__(self, classes: Sequence[int], groups: list[list[tuple[int, ...]]], sizes: np.ndarray,
                 outcome: Callable[[np.ndarray], np.ndarray]) -> None:
        self.classes = list(classes)
        self.groups = groups
        self.sizes = sizes
        self.outcome = outcome
        self.holders = [np.unique([b for g in class_groups for b in g]).astype(np.int64) for class_groups in groups]
        self.places = [_separate(class_groups) for class_groups in groups]
        # (block, class) pairs: which blocks hold which classes
        self.pair_class = np.concatenate([np.full(len(h), k, np.int64) for k, h in enumerate(self.holders)] or
                                         [np.empty(0, np.int64)])
        self.pair_block = np.concatenate(self.holders or [np.empty(0, np.int64)]).astype(np.int64)

    def held(self, labels: np.ndarray) -> np.ndarray:
        """(3, classes): how many blocks of each set hold each class."""
        sets = labels[self.pair_block]
        used = sets >= 0
        n = len(self.classes)
        return np.bincount(sets[used] * n + self.pair_class[used], minlength=3 * n).reshape(3, n)

    def leaving(self, held: np.ndarray, s: int) -> np.ndarray:
        """Per block: how many classes set ``s`` would lose if the block left it (it is their only holder)."""
        alone = (held[s, self.pair_class] <= 1).astype(np.float64)
        return np.bincount(self.pair_block, weights=alone, minlength=len(self.sizes)).astype(np.int64)


def _separate(groups: list[tuple[int, ...]]) -> int:
    """How many of ``groups`` share no block (greedily, smallest first): how many sets can have the class."""
    used: set[int] = set()
    count = 0
    for group in sorted(groups, key=len):
        if used.isdisjoint(group):
            used.update(group)
            count += 1
    return count


def missing_pairs(counts: np.ndarray, wanted: Sequence[int]) -> list[tuple[int, int]]:
    """(class index, set) of every class with no patch in a wanted set."""
    return [(k, s) for s in wanted for k in range(counts.shape[1]) if counts[s, k] == 0]


def stratify(labels: np.ndarray, blocks: Blocks, wanted: Sequence[int], seed: int) -> np.ndarray:
    """Block labels (0 train, 1 valid, 2 test) with every class in every ``wanted`` set where a search
    of block swaps finds it; ``labels`` itself when the random split already has it."""
    labels = labels.copy()
    missing = missing_pairs(blocks.outcome(labels), wanted)
    rng = np.random.default_rng(seed + 101)
    evaluations = 1
    while missing and evaluations < BUDGET:
        improved = False
        for k, s in sorted(missing, key=lambda pair: (blocks.places[pair[0]], pair[1])):
            if len(wanted) - sum(1 for c, _ in missing if c == k) >= blocks.places[k]:
                continue  # the class is already in as many sets as its separate blocks allow
            improved, evaluations, missing = _place(labels, blocks, k, s, wanted, rng, evaluations, missing)
            if improved or evaluations >= BUDGET:
                break
        if not improved:
            break
    return labels


def _place(labels: np.ndarray, blocks: Blocks, k: int, s: int, wanted: Sequence[int], rng: np.random.Generator,
           evaluations: int, missing: list) -> tuple[bool, int, list]:
    """Try to bring class ``k`` into set ``s``: move the blocks of one of its groups there, each swapped
    with a block of ``s`` (those that take no class away from ``s`` first, then those of its size).
    Keeps (in ``labels``) the first exchange that leaves fewer classes missing."""
    held = blocks.held(labels)
    options = blocks.groups[k]
    movers = [[b for b in group if labels[b] != s] for group in options]
    noise = rng.random(len(options))
    order = sorted(range(len(options)), key=lambda i: (len(movers[i]), sum(held[labels[b], k] <= 1 for b in movers[i]),
                                                        noise[i]))
    partners = np.flatnonzero(labels == s)
    leaving = blocks.leaving(held, s)[partners]
    for i in order[:MAX_DONORS]:
        if not movers[i]:
            continue
        pool = ~np.isin(partners, options[i])
        if pool.sum() < len(movers[i]):
            continue
        for attempt in range(MAX_PARTNERS if len(movers[i]) == 1 else 4):
            chosen = _partners(movers[i], partners[pool], leaving[pool], blocks.sizes, attempt, rng)
            if chosen is None:
                break
            moved = list(movers[i]) + chosen
            before = labels[moved].copy()
            labels[movers[i]], labels[chosen] = s, before[:len(movers[i])]
            evaluations += 1
            after = missing_pairs(blocks.outcome(labels), wanted)
            if len(after) < len(missing):
                return True, evaluations, after
            labels[moved] = before
            if evaluations >= BUDGET:
                return False, evaluations, missing
    return False, evaluations, missing


def _partners(movers: list[int], pool: np.ndarray, leaving: np.ndarray, sizes: np.ndarray, attempt: int,
              rng: np.random.Generator) -> list[int] | None:
    """Distinct blocks of the target set to swap with ``movers``: the ``attempt``-th best for a single
    block; for several, the best ones at attempt 0, then random picks among the best few."""
    if len(movers) == 1:
        ranked = pool[np.lexsort((np.abs(sizes[pool] - sizes[movers[0]]), leaving))]
        return [int(ranked[attempt])] if attempt < len(ranked) else None
    ranked = pool[np.lexsort((np.abs(sizes[pool] - int(np.mean(sizes[movers]))), leaving))]
    if attempt == 0:
        return [int(b) for b in ranked[:len(movers)]]
    top = ranked[:3 * len(movers)]
    return [int(b) for b in rng.choice(top, len(movers), replace=False)]


def warn_missing(reporter: Reporter, counts: np.ndarray, blocks: Blocks, wanted: Sequence[int], names: dict,
                 block_words: str) -> list[tuple[int, int]]:
    """One warning per wanted set that lacks classes, naming the set, the classes and why each could
    not be put there; returns the (class id, set) pairs."""
    pairs = missing_pairs(counts, wanted)
    for s in sorted({s for _, s in pairs}):
        absent = [k for k, t in pairs if t == s]
        labels = [_label(blocks.classes[k], names) for k in absent]
        reasons = []
        for k, label in zip(absent, labels):
            places = blocks.places[k]
            if places < len(wanted):
                reasons.append(f"Class {label} lies in {places} separate block{'s' if places != 1 else ''} only "
                               f"({block_words}) and a block goes whole to one set, so it cannot be in all "
                               f"{len(wanted)} sets: use a smaller BLOCK_SIZE, or label more of it.")
            else:
                reasons.append(f"Class {label} covers {len(blocks.holders[k])} blocks, but no exchange of whole "
                               "blocks that keeps the proportions brings it there (a patch over two blocks counts "
                               "only when both are of one set; patches next to another set's blocks are dropped): "
                               "try a smaller BLOCK_SIZE or another SEED.")
        where, output = SET_NAMES[s]
        reporter.warning(f"{where} ({output}) has no sample of class(es) {', '.join(labels)}: their recall and F1 "
                         f"cannot be measured there, and its overall scores say nothing about them. "
                         f"{' '.join(reasons)}")
    return [(blocks.classes[k], s) for k, s in pairs]


def _label(class_id: int, names: dict) -> str:
    info = names.get(class_id)
    name = getattr(info, "name", info) or ""
    return f"{class_id} ({name})" if name and name != f"class {class_id}" else f"{class_id}"


def class_groups(covered: np.ndarray, class_index: np.ndarray, n_classes: int) -> list[list[tuple[int, ...]]]:
    """Per class, the distinct groups of blocks its items need in one set, from each usable item's
    (n, m) covered blocks (m = 1: a patch centre in its block)."""
    groups: list[set[tuple[int, ...]]] = [set() for _ in range(n_classes)]
    unique = np.unique(np.column_stack([class_index, np.sort(covered, axis=1)]), axis=0)
    for row in unique.tolist():
        groups[row[0]].add(tuple(sorted(set(row[1:]))))
    return [sorted(g) for g in groups]
