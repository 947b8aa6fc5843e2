"""Seeded, stratified, group-aware splits: a validation split carved from train, and k folds.

Both work on whole groups (subjects), so one subject never lands on both sides; rows without a
group are groups of one. Groups are visited in a seeded random order (largest first for k-fold)
and placed greedily where they bring the per-class counts closest to their targets (squared
error), which keeps every class's share near the requested one ("stratified-ish"; exact per class
when every group is a single image).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence

from fer.errors import FerError


def _groups(labels: Sequence[str], groups: Sequence[str]) -> dict[str, list[int]]:
    """Row indices per group; an empty group name makes the row its own group."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group if group else f"\0row{i}"].append(i)
    return members


def _delta(counts: Counter, current: dict[str, float], target: dict[str, float]) -> float:
    """Change in squared distance to ``target`` if ``counts`` were added to ``current``."""
    return sum(n * (2 * (current[c] - target[c]) + n) for c, n in counts.items())


def carve_val(
    labels: Sequence[str], groups: Sequence[str], fraction: float, seed: int
) -> list[bool]:
    """Mask of the rows to move from train to val: about ``fraction`` of each class, whole groups.

    Deterministic for a given ``seed``; ``fraction`` must be in [0, 1).
    """
    if not 0 <= fraction < 1:
        raise FerError(f"val fraction must be in [0, 1), got {fraction}")
    mask = [False] * len(labels)
    if fraction == 0 or not labels:
        return mask
    members = _groups(labels, groups)
    keys = sorted(members)
    random.Random(seed).shuffle(keys)
    target = {c: fraction * n for c, n in Counter(labels).items()}
    current = dict.fromkeys(target, 0.0)
    for key in keys:
        counts = Counter(labels[i] for i in members[key])
        if _delta(counts, current, target) < 0:
            for c, n in counts.items():
                current[c] += n
            for i in members[key]:
                mask[i] = True
    return mask


def kfold(labels: Sequence[str], groups: Sequence[str], k: int, seed: int) -> list[int]:
    """Fold index 0..k-1 of every row: whole groups per fold, class counts balanced across folds.

    Fewer groups than folds is a :class:`FerError`. Deterministic for a given ``seed``.
    """
    members = _groups(labels, groups)
    if k < 2 or len(members) < k:
        raise FerError(f"k-fold needs 2 <= k <= number of groups ({len(members)}), got k={k}")
    keys = sorted(members)
    random.Random(seed).shuffle(keys)
    keys.sort(key=lambda g: -len(members[g]))  # stable: random order within equal sizes
    target = {c: n / k for c, n in Counter(labels).items()}
    fold_counts = [dict.fromkeys(target, 0.0) for _ in range(k)]
    sizes = [0] * k
    folds = [-1] * len(labels)
    for key in keys:
        counts = Counter(labels[i] for i in members[key])
        best = min(range(k), key=lambda f: (_delta(counts, fold_counts[f], target), sizes[f], f))
        for c, n in counts.items():
            fold_counts[best][c] += n
        sizes[best] += len(members[key])
        for i in members[key]:
            folds[i] = best
    return folds
