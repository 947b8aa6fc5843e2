"""Training recipe: every knob of one `fer train` run, as a frozen, validated dataclass.

The workflow passes the merged per-data-set dict as one JSON string (``--recipe``) so that a
changed setting reruns exactly the training it affects. Defaults are reference-ish (reference
§3.1: SGD momentum 0.9, weight decay 1e-4, label smoothing 0.1, loss 1.0·main + 0.6·whole +
1.0·ROI, class-balanced sampling); per-data-set schedules (§3.2) live in the workflow config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

from fer.errors import FerError, parse_json_object

CHOICES: dict[str, tuple[str, ...]] = {
    "loss": ("ce", "bce"),
    "selection": ("val", "test"),
    "global_input": ("aligned", "original"),
    "amp": ("bf16", "none"),
}


@dataclass(frozen=True)
class Recipe:
    """One training run's settings (every key optional in the JSON; unknown keys are errors).

    epochs, batch_size, lr, milestones (epochs where lr *= gamma), gamma, momentum,
    weight_decay: SGD + MultiStepLR stepped per epoch. label_smoothing: CE only. loss: "ce", or
    "bce" on the FERPlus ``votes`` (normalised over the model's classes). loss_weights: [main,
    whole, roi] for the Global-ROI Net. balanced_sampler: WeightedRandomSampler with weights
    N / n_class; samples_per_class × C samples per epoch (null: one pass over train). seed:
    init, sampler order and augmentation. selection: "val" (honest) or "test" (reference
    reproduction only; marked in every output). val_fraction: share of the training folds'
    groups carved into val for k-fold sets. global_input: "aligned" or "original" frames for
    the Global Net. weights: "none", "imagenet", a ResNet-18 file, or a `fer train` checkpoint
    of the same architecture to fine-tune from (all but the class head). face_size, roi_size:
    train-time input sizes (null: the prepared sizes). amp: "bf16" autocast or "none".
    channels_last, augment (the reference chain, fer.train.augment), eval_batch_size, workers
    (read-ahead threads), max_steps_per_epoch (quick runs). dataset, config_hash: metadata.
    """

    epochs: int = 40
    batch_size: int = 64
    lr: float = 0.1
    milestones: tuple[int, ...] = (10, 20, 30)
    gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    loss: str = "ce"
    loss_weights: tuple[float, float, float] = (1.0, 0.6, 1.0)
    balanced_sampler: bool = True
    samples_per_class: int | None = None
    seed: int = 0
    selection: str = "val"
    val_fraction: float = 0.1
    global_input: str = "aligned"
    weights: str = "none"
    face_size: int | None = None
    roi_size: int | None = None
    amp: str = "bf16"
    channels_last: bool = True
    augment: bool = True
    eval_batch_size: int = 128
    workers: int = 2
    max_steps_per_epoch: int | None = None
    dataset: str = ""
    config_hash: str = ""

    @classmethod
    def from_json(cls, text: str | None, where: str = "--recipe") -> Recipe:
        """Parse a JSON object into a validated Recipe; ``where`` names the source in errors."""
        if text is None or not text.strip():
            return cls()
        data = parse_json_object(text, where)
        return cls.from_dict(data, where)

    @classmethod
    def from_dict(cls, data: dict, where: str = "--recipe") -> Recipe:
        """Build from a dict; an unknown key or a badly typed value is a FerError naming it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FerError(f"{where}: unknown recipe key(s) {unknown}; known keys: {sorted(known)}")
        values = {k: _coerce(k, v, where) for k, v in data.items()}
        recipe = cls(**values)
        recipe.validate(where)
        return recipe

    def validate(self, where: str = "--recipe") -> None:
        """Check ranges and choices; raise FerError naming the first bad key."""
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                _bad(where, key, getattr(self, key), f"one of {list(allowed)}")
        for key in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, key) < 1:
                _bad(where, key, getattr(self, key), "an integer >= 1")
        for key in ("samples_per_class", "max_steps_per_epoch", "face_size", "roi_size"):
            value = getattr(self, key)
            if value is not None and value < 1:
                _bad(where, key, value, "null or an integer >= 1")
        if self.workers < 0:
            _bad(where, "workers", self.workers, "an integer >= 0")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            _bad(where, "lr", self.lr, "a finite number > 0")
        if any(b <= a for a, b in zip(self.milestones, self.milestones[1:], strict=False)):
            _bad(where, "milestones", list(self.milestones), "strictly increasing epochs")
        if any(m < 1 for m in self.milestones):
            _bad(where, "milestones", list(self.milestones), "epochs >= 1")
        if len(self.loss_weights) != 3 or any(w < 0 for w in self.loss_weights):
            _bad(where, "loss_weights", list(self.loss_weights), "[main, whole, roi] >= 0")
        if not 0 <= self.label_smoothing < 1:
            _bad(where, "label_smoothing", self.label_smoothing, "a number in [0, 1)")
        if not 0 < self.val_fraction < 1:
            _bad(where, "val_fraction", self.val_fraction, "a number in (0, 1)")
        for key in ("gamma", "momentum", "weight_decay"):
            if getattr(self, key) < 0:
                _bad(where, key, getattr(self, key), "a number >= 0")

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every key (lists for tuples)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def fingerprint(self) -> str:
        """Short stable hash of the settings that change training (not metadata or workers)."""
        data = {k: v for k, v in self.to_dict().items() if k not in _NOT_TRAINING}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes) -> Recipe:
        """A copy with ``changes`` applied and validated."""
        recipe = dataclasses.replace(self, **changes)
        recipe.validate()
        return recipe


_NOT_TRAINING = {"dataset", "config_hash", "workers", "eval_batch_size"}

_TYPES: dict[str, type] = {
    "epochs": int, "batch_size": int, "lr": float, "gamma": float, "momentum": float,
    "weight_decay": float, "label_smoothing": float, "loss": str, "balanced_sampler": bool,
    "seed": int, "selection": str, "val_fraction": float, "global_input": str, "weights": str,
    "amp": str, "channels_last": bool, "augment": bool, "eval_batch_size": int, "workers": int,
    "dataset": str, "config_hash": str,
}  # fmt: skip
_OPTIONAL_INT = ("samples_per_class", "face_size", "roi_size", "max_steps_per_epoch")


def _bad(where: str, key: str, value, expected: str):
    raise FerError(f"{where}: recipe key {key!r} is {value!r}; expected {expected}")


def _coerce(key: str, value, where: str):
    """Check one value's JSON type; ints are accepted where floats are expected."""
    if key in _OPTIONAL_INT:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            _bad(where, key, value, "null or an integer")
        return value
    if key == "milestones":
        if not isinstance(value, list) or not all(_is_int(v) for v in value):
            _bad(where, key, value, "a list of integer epochs")
        return tuple(value)
    if key == "loss_weights":
        if not isinstance(value, list) or not all(_is_number(v) for v in value):
            _bad(where, key, value, "a list of three numbers [main, whole, roi]")
        return tuple(float(v) for v in value)
    kind = _TYPES[key]
    if kind is float and _is_number(value):
        return float(value)
    if kind is int and _is_int(value):
        return value
    if kind in (str, bool) and isinstance(value, kind):
        return value
    _bad(where, key, value, f"a JSON {kind.__name__}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
