"""A checkpoint's metadata, built in one place for every way a checkpoint is made (``fer train``,
``fer import-reference``): the contract of docs/design.md "Models"."""

from __future__ import annotations

from fer import __version__
from fer.models.transforms import IMAGENET, Normalisation


def checkpoint_meta(
    *,
    model: str,
    classes: list[str],
    sizes: tuple[int, int],
    dataset: str,
    adapter: str,
    selection: str,
    preprocess: dict,
    seed: int | None = None,
    global_input: str = "aligned",
    fold: int | None = None,
    best_epoch: int | None = None,
    best_val_acc: float | None = None,
    git_sha: str | None = None,
    config_hash: str = "",
    recipe: dict | None = None,
    init: dict | None = None,
    normalisation: Normalisation = IMAGENET,
    origin: dict | None = None,
    warning: str | None = None,
    synthetic: bool = False,
    tta: str = "none",
) -> dict:
    """The meta of a ``model`` checkpoint over ``classes`` with input sides ``sizes`` (face, ROI).

    ``preprocess``: how its training data was prepared (``params.json``: detector, padding, stored
    sizes…), so that ``fer predict`` prepares a new picture alike; ``global_input``: what the
    Global Net sees (``aligned`` or ``original``; every other model: ``aligned``); ``selection``:
    the split the checkpoint was chosen on (``test`` is flagged ``selected_on_test``);
    ``recipe``: the training recipe (None: not trained by fer); ``origin``: where an imported
    checkpoint came from (``{"origin": ..., "reference": {...}}``); ``warning``: shown with it;
    ``synthetic``: trained on synthetic pictures (the demo), not faces (:func:`synthetic`);
    ``tta``: the test-time views its logits are taken on (:mod:`fer.models.tta`).
    """
    meta = {
        "model": model,
        "classes": list(classes),
        "face_size": int(sizes[0]),
        "roi_size": int(sizes[1]),
        "fer_version": __version__,
        "dataset": dataset,
        "adapter": adapter,
        "synthetic": bool(synthetic),
        **(origin or {}),
        "seed": seed,
        "selection": selection,
        "global_input": global_input if model == "global" else "aligned",
        "tta": tta,
        "fold": fold,
        "best_epoch": best_epoch,
    }
    if best_val_acc is not None:
        meta["best_val_acc"] = best_val_acc
    meta |= {"git_sha": git_sha, "config_hash": config_hash}
    if recipe is not None:
        meta["recipe"] = recipe
    meta |= {
        "selected_on_test": selection == "test",
        "init": init,
        "preprocess": dict(preprocess),
        "normalisation": normalisation.to_meta(),
    }
    if warning:
        meta["warning"] = warning
    return meta


SYNTHETIC_ADAPTERS = ("demo",)  # before meta recorded "synthetic": the adapters that said so


def synthetic(meta: dict) -> bool:
    """Whether a checkpoint was trained on synthetic pictures: its meta's ``synthetic``, or, for
    a checkpoint written before fer recorded it, an adapter of a synthetic set (the demo)."""
    if "synthetic" in meta:
        return bool(meta["synthetic"])
    return meta.get("adapter") in SYNTHETIC_ADAPTERS
