"""Training recipe: every knob of one `fer train` run, each key declared exactly once.

A key is one field of :class:`Recipe`, written with :func:`key`: its type (the annotation), its
default, its bounds or choices and its help text. Everything else follows from that declaration:

* ``--recipe`` validation (:meth:`Recipe.from_dict`): unknown keys (with a "did you mean"), JSON
  types, bounds and choices, each a one-line :class:`~fer.errors.FerError` naming the key;
* the workflow schema's recipe block (:func:`json_schema`), which ``workflow/rules/common.smk``
  injects into ``workflow/schemas/config.schema.yaml`` at planning time, and the merged recipes it
  checks with :meth:`Recipe.from_json`, so ``snakemake -n`` rejects a bad recipe before any job;
* the recipe table in ``config/README.md`` (:func:`markdown_table`; ``make docs`` rewrites it,
  ``tests/test_recipe.py`` proves it current), the key list of ``fer train --help`` and
  :class:`Recipe`'s docstring.

Defaults are reference-ish (reference §3.1: SGD momentum 0.9, weight decay 1e-4, label smoothing
0.1, loss 1.0·main + 0.6·whole + 1.0·ROI, class-balanced sampling); per-data-set schedules (§3.2)
live in the workflow config. This module imports no torch: the workflow reads it at planning.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import typing
from dataclasses import dataclass

from fer.contracts import AUGMENTATIONS, MIN_SIDE, TTA_MODES, VAL_FRACTION_MAX
from fer.errors import FerError, parse_json_object
from fer.labels import CANONICAL
from fer.train.keys import KeySpec, bad_value, default_text, key, spec_of

# Keys of the workflow's recipes that the workflow resolves before `fer train` sees the recipe
# ($comment: what the docs' table says is allowed).
WORKFLOW_KEYS: dict[str, dict] = {
    "init_from": {
        "type": "string",
        "$comment": "a data set name",
        "description": "Workflow only: fine-tune from this workflow's model of the same "
        "architecture trained on another data set (a datasets key with a test split): sets "
        "weights to models/<init_from>/<arch>.pt and makes training wait for it.",
    },
    "reference": {
        "type": "string",
        "$comment": "a file path",
        "description": "Workflow only: one of the authors' released checkpoints (roi.path or "
        "global.path) for this data set and architecture: `fer import-reference` turns it into "
        "the model instead of training it (not for k-fold sets).",
    },
    "reference_classes": {
        "type": "array",
        "$comment": "a list of class names",
        "items": {"enum": list(CANONICAL)},
        "uniqueItems": True,
        "description": "Workflow only: the class order of the reference checkpoint's head, where "
        "the reference code does not give it (FERPlus).",
    },
}


@dataclass(frozen=True)
class Recipe:
    """One training run's settings (every key optional in the JSON; unknown keys are errors)."""

    epochs: int = key(40, "Number of epochs.", minimum=1)
    batch_size: int = key(64, "Training batch size (reference 64).", minimum=1)
    lr: float = key(0.1, "Initial learning rate (onecycle: the peak).", minimum=0, open_below=True)
    optimizer: str = key(
        "sgd",
        "sgd (the reference: momentum, weight_decay) or adamw (torch AdamW with weight_decay as "
        "its decoupled decay, betas (0.9, 0.999)).",
        choices=("sgd", "adamw"),
    )
    schedule: str = key(
        "multistep",
        "Learning-rate schedule, stepped every batch: multistep (the reference's MultiStepLR: "
        "lr *= gamma at each milestone epoch), cosine (CosineAnnealingLR to 0 over the epochs "
        "after warm-up) or onecycle (OneCycleLR peaking at lr; momentum not cycled).",
        choices=("multistep", "cosine", "onecycle"),
    )
    warmup_epochs: int = key(
        0,
        "Epochs of linear warm-up from lr/steps to lr before the schedule (onecycle: its rising "
        "phase; 0 there means OneCycleLR's default 30 %).",
        minimum=0,
    )
    milestones: tuple[int, ...] = key(
        (10, 20, 30), "MultiStepLR epochs where lr *= gamma, strictly increasing.", minimum=1
    )
    gamma: float = key(0.1, "MultiStepLR decay factor.", minimum=0)
    momentum: float = key(0.9, "SGD momentum (reference 0.9).", minimum=0)
    weight_decay: float = key(
        1e-4, "Weight decay (reference 1e-4 with SGD; AdamW's decoupled decay).", minimum=0
    )
    label_smoothing: float = key(
        0.1,
        "Cross-entropy label smoothing (reference 0.1).",
        minimum=0,
        maximum=1,
        open_above=True,
    )
    loss: str = key(
        "ce",
        "ce, or bce on the FERPlus vote vectors (normalised over the model's classes).",
        choices=("ce", "bce"),
    )
    loss_weights: tuple[float, float, float] = key(
        (1.0, 0.6, 1.0),
        "Global-ROI Net loss weights [main, whole, roi] (reference [1, 0.6, 1]).",
        minimum=0,
    )
    balanced_sampler: bool = key(
        True, "Class-balanced sampling with replacement, weights N / n_class (reference on)."
    )
    samples_per_class: int | None = key(
        None,
        "Samples per epoch = this x classes (reference: 10000 AffectNet, 3000 RAF-DB and "
        "FERPlus, 500 CK+); null = one pass over train.",
        minimum=1,
    )
    seed: int = key(0, "Seed of the initialisation, the sampling order and the augmentation.")
    selection: str = key(
        "val",
        "Checkpoint selection split: val (honest), or test as the reference (marked everywhere).",
        choices=("val", "test"),
    )
    val_fraction: float = key(
        0.1,
        "k-fold sets: share of the training folds' subjects carved out for validation "
        "(the workflow sets the data set's val_fraction).",
        minimum=0,
        open_below=True,
        maximum=VAL_FRACTION_MAX,
    )
    global_input: str = key(
        "aligned",
        "Global Net training input: aligned chips, or the un-aligned frames "
        "(original.npy) as the reference.",
        choices=("aligned", "original"),
    )
    weights: str = key(
        "none",
        "Initial weights: none, imagenet (torch cache), a path to torchvision's "
        "ResNet-18 ImageNet file, or a `fer train` checkpoint of the same architecture "
        "(fine-tuned: all but the class head).",
    )
    face_size: int | None = key(
        None,
        "The models' face input side; the stored chips are resized to it (null: the stored "
        "chip_size).",
        minimum=MIN_SIDE,
    )
    roi_size: int | None = key(
        None,
        "The Global-ROI Net's ROI input side; the stored crops are resized to it (null: the "
        "stored crop_size).",
        minimum=MIN_SIDE,
    )
    amp: str = key(
        "auto",
        "Training precision: auto (bf16 autocast where the device computes bf16 natively: CUDA, "
        "CPUs with AVX512_BF16 or AMX; fp32 elsewhere, where bf16 is emulated and slower), bf16, "
        "or none (fp32). run.json records the choice and why.",
        choices=("auto", "bf16", "none"),
    )
    channels_last: bool | None = key(
        None,
        "Memory format of the model and its inputs: true (channels_last), false (NCHW), or null: "
        "channels_last for a bf16 step and on a GPU, NCHW for an fp32 step on the CPU (where "
        "channels_last measured 0.80-0.88x NCHW's speed in 3 of 4 cases: "
        "fer/train/precision.py). run.json records the choice.",
    )
    compile: str = key(
        "none",
        "torch.compile the model with this inductor mode (none: eager). The first steps of each "
        "input shape compile (a minute or more); the same function up to float rounding, so a "
        "run may resume with another value.",
        choices=("none", "default", "reduce-overhead", "max-autotune"),
        trains=False,
    )
    augment: str = key(
        "reference",
        "Training augmentation (fer.train.augment): reference (the paper's chain: flip, colour "
        "jitter, affine, erasing), standard (for small low-resolution faces: flip, random crop "
        "with 1/8 zero padding, erasing) or none.",
        choices=AUGMENTATIONS,
    )
    mixup_alpha: float = key(
        0.0,
        "MixUp: Beta(alpha, alpha) mixing of pictures and targets within a batch (0: off). With "
        "cutmix_alpha too, each batch takes one of the two at random.",
        minimum=0,
    )
    cutmix_alpha: float = key(
        0.0,
        "CutMix: a Beta(alpha, alpha)-sized box pasted from another picture of the batch, the "
        "same relative box in the face and every ROI, targets mixed by its area (0: off).",
        minimum=0,
    )
    ema_decay: float | None = key(
        None,
        "Exponential moving average of the weights (torch AveragedModel, buffers included), "
        "updated every step, used for validation, selection and the saved checkpoint; null: off. "
        "Typical 0.999.",
        minimum=0,
        maximum=1,
        open_below=True,
        open_above=True,
    )
    tta: str = key(
        "none",
        "Test-time augmentation: flip scores each picture as the mean logits of it and its "
        "mirror image. Used for validation, recorded in the checkpoint, and applied by fer "
        "infer, fer predict and fer export alike.",
        choices=TTA_MODES,
    )
    eval_batch_size: int = key(128, "Validation batch size.", minimum=1, trains=False)
    workers: int = key(2, "Read-ahead threads for batches (0: inline).", minimum=0, trains=False)
    max_steps_per_epoch: int | None = key(
        None, "Cap on steps per epoch (quick runs); null = no cap.", minimum=1
    )
    dataset: str = key("", "The data set's name (metadata).", trains=False, workflow_sets=True)
    config_hash: str = key(
        "",
        "Hash of the config the model depends on (metadata).",
        trains=False,
        workflow_sets=True,
    )

    @classmethod
    def from_json(cls, text: str | None, where: str = "--recipe") -> Recipe:
        """Parse a JSON object into a validated Recipe; ``where`` names the source in errors."""
        if text is None or not text.strip():
            return cls()
        return cls.from_dict(parse_json_object(text, where), where)

    @classmethod
    def from_dict(cls, data: dict, where: str = "--recipe") -> Recipe:
        """Build from a dict; an unknown key or a bad value is a FerError naming it."""
        specs = key_specs()
        for name in data:
            if name in WORKFLOW_KEYS:
                raise FerError(
                    f"{where}: recipe key {name!r} is for the workflow config only "
                    "(it resolves it into weights before `fer train` runs)"
                )
            if name not in specs:
                near = difflib.get_close_matches(name, list(specs), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise FerError(
                    f"{where}: unknown recipe key {name!r}{hint}; `fer train --help` "
                    "lists every key"
                )
        if isinstance(data.get("augment"), bool):  # before the chains had names
            raise FerError(
                f"{where}: recipe key 'augment' is {str(data['augment']).lower()}; expected one "
                f"of {list(AUGMENTATIONS)} (true is now 'reference', false 'none')"
            )
        recipe = cls(**{k: specs[k].coerce(v, where) for k, v in data.items()})
        recipe.validate(where)
        return recipe

    def validate(self, where: str = "--recipe") -> None:
        """Check every key's bounds and choices; raise FerError naming the first bad key."""
        for spec in key_specs().values():
            spec.check(getattr(self, spec.name), where)
        steps = self.milestones
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            bad_value(where, "milestones", list(steps), "strictly increasing epochs")
        if self.warmup_epochs >= self.epochs:
            bad_value(
                where, "warmup_epochs", self.warmup_epochs, f"fewer than epochs ({self.epochs})"
            )
        if self.schedule == "multistep" and self.warmup_epochs and steps[0] <= self.warmup_epochs:
            bad_value(
                where,
                "milestones",
                list(steps),
                f"epochs after the warm-up (warmup_epochs {self.warmup_epochs})",
            )

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every key (lists for tuples)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def fingerprint(self) -> str:
        """Short stable hash of the settings that change training (not metadata or workers)."""
        trains = {k for k, s in key_specs().items() if s.trains}
        data = {k: v for k, v in self.to_dict().items() if k in trains}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes) -> Recipe:
        """A copy with ``changes`` applied and validated."""
        recipe = dataclasses.replace(self, **changes)
        recipe.validate()
        return recipe


_SPECS: dict[str, KeySpec] = {}


def key_specs() -> dict[str, KeySpec]:
    """Every recipe key's declaration, in declaration order."""
    if not _SPECS:
        hints = typing.get_type_hints(Recipe)
        _SPECS.update({f.name: spec_of(f, hints[f.name]) for f in dataclasses.fields(Recipe)})
    return _SPECS


def config_keys() -> list[KeySpec]:
    """The keys a workflow config may set (metadata the workflow fills in left out)."""
    return [s for s in key_specs().values() if not s.workflow_sets]


def json_schema() -> dict:
    """The workflow schema's ``$defs/recipe``: every config key, and the workflow-only ones."""
    props = {s.name: s.schema() for s in config_keys()} | WORKFLOW_KEYS
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        "description": "Training recipe keys (fer/train/recipe.py). Any subset; unset keys "
        "take the trainer's defaults.",
    }


def markdown_table() -> str:
    """The recipe table of config/README.md: key, default, allowed values, meaning."""
    lines = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for s in config_keys():
        lines.append(f"| `{s.name}` | `{default_text(s.default)}` | {s.expected()} | {s.help} |")
    for name, prop in WORKFLOW_KEYS.items():
        lines.append(f"| `{name}` | – | {prop['$comment']} | {prop['description']} |")
    return "\n".join(lines) + "\n"


def help_text() -> str:
    """The key list of ``fer train --help``."""
    lines = ["recipe keys (--recipe JSON; any subset, the rest take these defaults):"]
    for s in config_keys():
        lines.append(f"  {s.name:<20} {default_text(s.default):<16} {s.expected()}")
    return "\n".join(lines)


Recipe.__doc__ = (
    (Recipe.__doc__ or "")
    + "\n\n"
    + "\n".join(
        f"    {s.name}: {s.help} Default {default_text(s.default)}; {s.expected()}."
        for s in key_specs().values()
    )
)
