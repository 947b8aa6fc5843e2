"""A model's training history as the report shows it: its loss and accuracy curves, the headline
facts of its run record, and its recipe, one line per lever (optimizer, schedule, sampling,
augmentation, EMA, test-time views, ...) with only the keys that apply under the others, as
recorded (keys an older fer did not record are left out)."""

from __future__ import annotations

import json
import math

from fer.report import figures, tables
from fer.report.inputs import History

WALL_KEYS = ("wall_time_s", "wall_s", "wall_time", "seconds", "elapsed_s")
RUN_KEYS = (
    *("origin", "seed", "selection", "validated_on", "selected_on_test", "best_epoch"),
    *("best_val_acc", "epochs", "n_train", "n_val", "fold", "resumed_from_epoch", "git_sha"),
    "config_hash",
)
# The recipe beside a model's curves: one line per lever, the first key's value then the others
# that apply, as the run record holds them (keys an older fer did not record are left out).
RECIPE_LINES = (
    ("optimizer", ("optimizer", "lr", "momentum", "weight_decay")),
    ("schedule", ("schedule", "warmup_epochs", "milestones", "gamma")),
    ("epochs", ("epochs", "batch_size", "max_steps_per_epoch")),
    ("sampling", ("balanced_sampler", "samples_per_class")),
    ("augmentation", ("augment", "mixup_alpha", "cutmix_alpha")),
    ("loss", ("loss", "label_smoothing", "loss_weights")),
    ("EMA of weights", ("ema_decay",)),
    ("test-time views", ("tta",)),
    ("input sides", ("face_size", "roi_size")),
    ("initial weights", ("weights",)),
    ("precision", ("amp", "channels_last")),
)


def _applies(key: str, recipe: dict, arch: str | None) -> bool:
    """Whether ``key`` matters under the recipe's other choices (``milestones`` only for the
    multistep schedule, ``momentum`` only for SGD, the heads' weights only for the Global-ROI
    Net, ...)."""
    if key in ("milestones", "gamma"):
        return recipe.get("schedule", "multistep") == "multistep"
    if key == "momentum":
        return recipe.get("optimizer", "sgd") == "sgd"
    if key in ("warmup_epochs", "mixup_alpha", "cutmix_alpha", "max_steps_per_epoch"):
        return bool(recipe.get(key))
    if key == "label_smoothing":
        return recipe.get("loss", "ce") != "bce"
    if key == "loss_weights":
        return arch != "global"
    return True


def _recipe_text(label: str, present: list[str], recipe: dict, run: dict) -> str:
    """One lever's line: its first key's value, then ``key value`` of the others."""
    head = recipe[present[0]]
    if label == "sampling":
        per_class = recipe.get("samples_per_class")
        mix = "class-balanced" if head else "the split's class mix"
        return f"{mix}, " + (
            f"{per_class} per class an epoch" if per_class else "one pass an epoch"
        )
    if label == "input sides":
        return f"face {head} px" + (
            f", ROIs {recipe['roi_size']} px" if "roi_size" in recipe else ""
        )
    text = "off" if head is None else str(head)
    if label == "precision" and isinstance(run.get("precision"), dict):
        text = f"{head} → {run['precision'].get('amp')}"  # what amp: auto chose on the machine
        chosen = run.get("memory_format")  # and what channels_last: null chose
        if isinstance(chosen, dict) and "channels_last" in present:
            setting = json.dumps(recipe["channels_last"])  # true, false or null
            return f"{text} · channels last {setting} → {chosen.get('format')}"
    return " · ".join([text, *(f"{k.replace('_', ' ')} {recipe[k]}" for k in present[1:])])


def recipe_lines(run: dict) -> list[tuple[str, str]]:
    """The recipe of a run record as ``(lever, "value · key value · ...")`` rows."""
    recipe, arch = run.get("recipe") or {}, run.get("arch")
    rows = []
    for label, keys in RECIPE_LINES:
        present = [k for k in keys if k in recipe and _applies(k, recipe, arch)]
        if present and present[0] == keys[0]:
            rows.append((label, _recipe_text(label, present, recipe, run)))
    return rows


def _first(d: dict, keys: tuple[str, ...]):
    return next(((k, d[k]) for k in keys if k in d), (None, None))


def _percent_fact(key: str, value):
    """Accuracies of a run record in the report's one unit, %."""
    if key.endswith("_acc") and isinstance(value, float) and 0 <= value <= 1:
        return f"{100 * value:.2f} %"
    return value


def history_view(h: History) -> dict:
    """A model's training curves and the headline facts of its run record."""
    run = h.run or {}
    facts = [(k, _percent_fact(k, run[k])) for k in RUN_KEYS if k in run]
    wall = _first(run, WALL_KEYS)
    if wall[0]:
        facts.append(("wall time (s)", wall[1]))
    speeds = [r["img_per_s"] for r in h.rows if math.isfinite(r.get("img_per_s", math.nan))]
    if speeds:
        facts.append(("mean img/s", sum(speeds) / len(speeds)))
    selected_on_test = run.get("selected_on_test") is True or run.get("selection") == "test"
    stepwise = (run.get("recipe") or {}).get("schedule", "multistep") == "multistep"
    return {
        "h": h,
        "plots": figures.history_plots(h.rows, run.get("best_epoch"), stepwise) if h.rows else [],
        "facts": facts,
        "recipe": recipe_lines(run),
        "selected_on_test": selected_on_test,
        "run_json": json.dumps(run, indent=2, default=str),
        "anchor": f"model-{tables.slug(h.dataset, h.arch)}",
    }
