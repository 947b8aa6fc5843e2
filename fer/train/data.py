"""Training data for `fer train`: honest splits, targets, the class-balanced sampler, and batches.

Everything reads through :func:`fer.prepared.open_prepared`; images stay uint8 in the (memory-
mapped) prepared arrays until a batch is gathered, so nothing is decoded per step.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from fer.data.splits import carve_val
from fer.errors import FerError
from fer.labels import CANONICAL
from fer.prepared import ROI_NAMES, PreparedData
from fer.train.recipe import Recipe


@dataclass
class Split:
    """Rows of one split with their class positions (and, for BCE, normalised vote vectors)."""

    name: str
    rows: np.ndarray
    labels: np.ndarray
    votes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def counts(self, classes: list[str]) -> dict[str, int]:
        """Rows per class name."""
        n = np.bincount(self.labels, minlength=len(classes))
        return {c: int(k) for c, k in zip(classes, n, strict=True)}


def label_positions(data: PreparedData, rows: np.ndarray) -> np.ndarray:
    """Canonical label indices of ``rows`` → positions in ``data.classes``; others: FerError."""
    lookup = np.full(len(CANONICAL), -1, dtype=np.int64)
    for pos, name in enumerate(data.classes):
        lookup[CANONICAL.index(name)] = pos
    labels = data.index["label"].to_numpy()[rows].astype(np.int64)
    bad = (labels < 0) | (labels >= len(CANONICAL))
    pos = np.where(bad, -1, lookup[np.clip(labels, 0, len(CANONICAL) - 1)])
    if (pos < 0).any():
        row = int(rows[np.flatnonzero(pos < 0)[0]])
        raise FerError(
            f"{data.root / 'index.csv'}: row {row} has label {labels[pos < 0][0]}, not one of "
            f"the data set's classes {data.classes} (summary.json)"
        )
    return pos


def vote_vectors(data: PreparedData, rows: np.ndarray) -> np.ndarray:
    """FERPlus ``votes`` of ``rows`` over the model's classes, each row summing to 1.

    Rows whose votes give no class of the model are returned as all-zero vectors (the caller
    drops and counts them).
    """
    votes = data.votes(rows)
    if votes is None:
        if not len(rows):
            return np.zeros((0, len(data.classes)), np.float32)
        where = data.root / "index.csv"
        raise FerError(f"{where}: loss 'bce' needs FERPlus vote vectors, but `votes` is empty")
    out = votes[:, [CANONICAL.index(c) for c in data.classes]].astype(np.float32)
    total = out.sum(axis=1, keepdims=True)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 0)


def make_split(data: PreparedData, name: str, rows: np.ndarray, recipe: Recipe) -> Split:
    """A :class:`Split` over ``rows``; BCE rows whose votes name none of the classes are dropped."""
    labels = label_positions(data, rows)
    if recipe.loss != "bce":
        return Split(name, rows, labels)
    votes = vote_vectors(data, rows)
    keep = votes.sum(axis=1) > 0
    return Split(name, rows[keep], labels[keep], votes[keep])


def hold_out_groups(data: PreparedData, rows: np.ndarray, fraction: float, seed: int):
    """Split ``rows`` (a k-fold set's training folds) into (train, val) with the manifest's own
    validation carve (:func:`fer.data.splits.carve_val`: whole groups, about ``fraction`` of
    each class, seeded). Rows without a group count as their own group. The test fold is never
    looked at."""
    where = data.root / "index.csv"
    groups = data.index["group"].astype(str).to_numpy()[rows]
    labels = data.index["label"].to_numpy()[rows].astype(str)
    n_groups = len(np.unique(np.where(groups == "", np.char.add("row", rows.astype(str)), groups)))
    if n_groups < 2:
        raise FerError(
            f"{where}: the training folds hold {n_groups} group(s); need >= 2 to carve a "
            "validation part (or use selection: test)"
        )
    in_val = np.array(carve_val(list(labels), list(groups), fraction, seed), dtype=bool)
    if not in_val.any() or in_val.all():
        raise FerError(
            f"{where}: a validation carve of {fraction} of the training folds' {n_groups} "
            "groups leaves one side empty; change val_fraction (or use selection: test)"
        )
    return rows[~in_val], rows[in_val]


def carve(data: PreparedData, fold: int | None, selection: str, val_fraction: float, seed: int):
    """(train rows, selection rows) of a training run, before the Global-ROI Net's ROI filter.

    ``fold``: the held-out fold of a k-fold set (its training part is every other fold), else
    None (the set's own splits). Selection rows: the ``val`` split, or for a fold the seeded group
    carve of its training part (``val_fraction``, ``seed + fold``); with ``selection: test`` the
    test split (or the fold itself). ``fer infer --rows val`` scores the same rows.
    """
    where = data.root / "index.csv"
    if fold is not None:
        if not data.is_kfold:
            raise FerError(f"{where}: --fold {fold} given but the data set has no k-fold indices")
        train = data.rows(split="train", fold=fold)
        if selection == "test":
            return train, data.rows(fold=fold)
        return hold_out_groups(data, train, val_fraction, seed + fold)
    if data.is_kfold:
        raise FerError(f"{where}: the data set is k-fold; pass --fold K")
    return data.rows(split="train"), data.rows(split="val" if selection == "val" else "test")


def build_splits(data: PreparedData, arch: str, recipe: Recipe, fold: int | None):
    """(train, val) :class:`Split` for ``arch``; ``val`` is the test split when selecting on test.

    Global-ROI trains and validates on rows with ROIs only; the Global Net on all usable rows.
    """
    train, val = carve(data, fold, recipe.selection, recipe.val_fraction, recipe.seed)
    if arch == "roi":
        has_roi = data.index["has_roi"].astype(int).to_numpy() == 1
        train, val = train[has_roi[train]], val[has_roi[val]]
    val_name = "val" if recipe.selection == "val" else "test"
    splits = make_split(data, "train", train, recipe), make_split(data, val_name, val, recipe)
    check_splits(data, arch, splits, recipe)
    return splits


def check_splits(data: PreparedData, arch: str, splits: tuple[Split, Split], recipe: Recipe):
    """Fail clearly on an empty split or a class without training rows."""
    where = data.root / "index.csv"
    what = "rows with ROIs" if arch == "roi" else "usable rows"
    train, val = splits
    if len(train) == 0:
        raise FerError(f"{where}: no training {what} for the {arch} model")
    if len(val) == 0:
        hint = "" if recipe.selection == "test" else " (the manifest needs a `val` split)"
        raise FerError(f"{where}: the {val.name} split has no {what}{hint}")
    missing = [c for c, n in train.counts(data.classes).items() if n == 0]
    if missing:
        raise FerError(f"{where}: no training {what} for class(es) {missing} ({arch} model)")


def sample_weights(train: Split, n_classes: int) -> np.ndarray:
    """Reference sampler weights: N / n_class(label); for votes the mean over voted classes."""
    if train.votes is None:
        counts = np.bincount(train.labels, minlength=n_classes).astype(np.float64)
        return len(train) / counts[train.labels]
    positive = train.votes > 0
    counts = positive.sum(axis=0).astype(np.float64)
    per_class = np.divide(len(train), counts, out=np.zeros_like(counts), where=counts > 0)
    return (positive * per_class).sum(axis=1) / positive.sum(axis=1)


def epoch_size(n_train: int, recipe: Recipe, n_classes: int) -> int:
    """Pictures per epoch: ``samples_per_class`` × classes or one pass, capped by
    ``max_steps_per_epoch``."""
    n = recipe.samples_per_class * n_classes if recipe.samples_per_class else n_train
    if recipe.max_steps_per_epoch:
        n = min(n, recipe.max_steps_per_epoch * recipe.batch_size)
    return n


def epoch_steps(n_train: int, recipe: Recipe, n_classes: int) -> int:
    """Training batches per epoch (:meth:`Batches.iterate` drops a last batch of one)."""
    n, bs = epoch_size(n_train, recipe, n_classes), recipe.batch_size
    return n // bs + (n % bs > 1)


def epoch_order(train: Split, recipe: Recipe, n_classes: int, gen: torch.Generator) -> np.ndarray:
    """Positions into ``train`` for one epoch: weighted with replacement, or a permutation."""
    n = recipe.samples_per_class * n_classes if recipe.samples_per_class else len(train)
    if recipe.balanced_sampler:
        weights = torch.as_tensor(sample_weights(train, n_classes), dtype=torch.double)
        order = torch.multinomial(weights, n, replacement=True, generator=gen)
    else:
        reps = -(-n // len(train))
        order = torch.cat([torch.randperm(len(train), generator=gen) for _ in range(reps)])[:n]
    if recipe.max_steps_per_epoch:
        order = order[: recipe.max_steps_per_epoch * recipe.batch_size]
    return order.numpy()


class Batches:
    """uint8 batches of a split, gathered from the prepared arrays by background threads."""

    def __init__(
        self, data: PreparedData, arch: str, split: Split, global_input: str, pin: bool = False
    ):
        self.pin = pin  # page-locked tensors (CUDA): the copy to the device runs async
        face = data.faces
        if arch == "global" and global_input == "original":
            if data.original is None:
                raise FerError(
                    f"{data.root / 'original.npy'}: missing; global_input 'original' needs the "
                    "resized frames (prepare with original frames kept)"
                )
            face = data.original
        self.arrays = {"face": face}
        if arch == "roi":
            self.arrays.update({name: data.rois[name] for name in ROI_NAMES})
        self.split = split

    def gather(self, positions: np.ndarray) -> dict:
        """One batch: ``face`` (and ROIs) uint8 N×S×S×3, ``label`` and, for BCE, ``votes``.

        Values are numpy arrays, or pinned CPU tensors when ``pin`` is set.
        """
        rows = self.split.rows[positions]
        order = np.argsort(rows, kind="stable")  # sequential reads from the memory map
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        batch = {k: np.ascontiguousarray(a[rows[order]][inverse]) for k, a in self.arrays.items()}
        batch["label"] = self.split.labels[positions]
        if self.split.votes is not None:
            batch["votes"] = self.split.votes[positions]
        if self.pin:
            batch = {
                k: torch.from_numpy(np.ascontiguousarray(v)).pin_memory() for k, v in batch.items()
            }
        return batch

    def iterate(
        self, order: np.ndarray, batch_size: int, workers: int, drop_single: bool = False
    ) -> Iterator[dict[str, np.ndarray]]:
        """Batches of ``order`` in order; ``workers`` threads read ahead (0: read inline)."""
        chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        if drop_single and chunks and len(chunks[-1]) < 2:
            chunks = chunks[:-1]  # BatchNorm cannot train on a batch of one
        if workers == 0:
            yield from (self.gather(c) for c in chunks)
            return
        with ThreadPoolExecutor(workers) as pool:
            ahead = [pool.submit(self.gather, c) for c in chunks[: 2 * workers]]
            for i in range(len(chunks)):
                batch = ahead[i].result()
                ahead[i] = None
                nxt = i + 2 * workers
                if nxt < len(chunks):
                    ahead.append(pool.submit(self.gather, chunks[nxt]))
                yield batch
