"""Seeded stratified splits: K folds for cross-validation, one held-out part for training.

Written here (a few lines) rather than taken from scikit-learn, which would be a large
dependency for two functions; the strata are (complaint, category) so rare categories are
spread over the folds too.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Hashable, Sequence


def stratified_folds(strata: Sequence[Hashable], k: int, seed: int) -> list[list[int]]:
    """Indices split into ``k`` folds, each stratum shuffled and dealt round-robin.

    The dealing continues from one stratum to the next, so fold sizes differ by at most one.
    """
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    if len(strata) < k:
        raise ValueError(f"cannot make {k} folds of {len(strata)} records")
    rng = random.Random(seed)
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, stratum in enumerate(strata):
        groups[stratum].append(i)
    folds: list[list[int]] = [[] for _ in range(k)]
    position = 0
    for stratum in sorted(groups, key=repr):
        members = groups[stratum]
        rng.shuffle(members)
        for i in members:
            folds[position % k].append(i)
            position += 1
    return [sorted(fold) for fold in folds]


def stratified_holdout(
    strata: Sequence[Hashable], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """(kept, held out) indices, about ``fraction`` of each stratum held out."""
    rng = random.Random(seed)
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, stratum in enumerate(strata):
        groups[stratum].append(i)
    kept: list[int] = []
    held: list[int] = []
    for stratum in sorted(groups, key=repr):
        members = groups[stratum]
        rng.shuffle(members)
        n_held = round(len(members) * fraction)
        held.extend(members[:n_held])
        kept.extend(members[n_held:])
    return sorted(kept), sorted(held)
