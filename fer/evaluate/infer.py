"""``fer infer``: run trained models once over a target into the prediction record its cells are
scored from (:mod:`fer.evaluate.records`), following reference §4.3 and §5.

A record holds both models' logits, after slicing to the scored classes: the Global Net on every
scored image, the Global-ROI Net on the images with ROIs. :mod:`fer.evaluate.scoring` then fuses
them, ``w_roi·z_roi + w_global·z_global`` where ROIs exist and the Global Net alone where they do
not, and scores each cell:

* ``global`` is scored on every image (input: the checkpoint's ``global_input`` array),
* ``roi`` on the ROI subset only (its ``n_images`` says how many),
* ``fused`` on every image; inside the fusion the Global Net sees ``faces.npy`` (the aligned chip,
  or the resized frame where alignment failed), exactly as the reference's ``re`` listing.

Rows: ``--validation`` scores the rows each checkpoint pair was selected on
(:func:`validation_tasks`); ``--within`` the target's ``test`` split, or, for a k-fold target,
checkpoint *i* (meta ``fold`` *i*) on the rows of fold *i* (per-fold results, their mean ± std and
the pooled metrics). Without either (cross-dataset) every usable row is scored by one checkpoint
per arch; logits of model classes outside the scored classes (``fer.labels.scored_classes``) are cut
before argmax and before fusion; target images with an unscored label are left out and counted in
``excluded``, as are unreadable images.

Input sizes: prepared arrays whose size differs from the checkpoint's ``face_size`` / ``roi_size``
are resized on the fly by the models' eval transform (:mod:`fer.models.inference`, antialiased
bilinear) and the result records it under ``provenance.input_resize``. A checkpoint with
``global_input: original`` needs ``original.npy``; its absence is an error naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer.contracts import EXCLUDED
from fer.errors import FerError
from fer.evaluate.jobs import InferJob
from fer.evaluate.records import RECORD_VERSION, Predictions
from fer.evaluate.scoring import label_map, target_labels, votes_matrix
from fer.models.inference import (
    Checkpoint,
    Inference,
    global_logits,
    load_checkpoints,
    roi_logits,
)
from fer.prepared import ROI_NAMES, PreparedData, open_prepared
from fer.provenance import git_sha, resolve_device, versions


@dataclass
class Task:
    """The rows one pair of checkpoints scores (one fold, or the whole evaluation set)."""

    fold: int | None
    rows: np.ndarray
    excluded: dict[str, int]  # rows of the selection left out, by status (unreadable, rejected)
    global_ck: Checkpoint | None = None
    roi_ck: Checkpoint | None = None


def model_classes(cks: list[Checkpoint]) -> list[str]:
    """The one class list every checkpoint outputs; a disagreement is a FerError naming both."""
    first = cks[0]
    for ck in cks[1:]:
        if list(ck.meta["classes"]) != list(first.meta["classes"]):
            raise FerError(
                f"{ck.path}: classes {ck.meta['classes']} differ from "
                f"{first.path}: {first.meta['classes']}"
            )
    return list(first.meta["classes"])


def _selection(data: PreparedData, fold: int | None, within: bool):
    """Usable rows of a fold / the test split / everything, and how many of each excluded
    status (unreadable, rejected) were left out."""
    idx = data.index
    if fold is not None:
        chosen = (idx["fold"].astype(int) == fold).to_numpy()
        rows = data.rows(fold=fold)
    elif within:
        chosen = (idx["split"] == "test").to_numpy()
        rows = data.rows(split="test")
    else:
        chosen, rows = np.ones(len(idx), bool), data.rows()
    statuses = idx["status"].to_numpy()[chosen]
    return rows, {s: int((statuses == s).sum()) for s in EXCLUDED}


def plan_tasks(data: PreparedData, g: list[Checkpoint], r: list[Checkpoint], within: bool):
    """Pair checkpoints with the rows they score (see the module docstring)."""
    if not (within and data.is_kfold):
        for cks in (g, r):
            if len(cks) > 1:
                raise FerError(
                    f"{cks[1].path}: one checkpoint per arch expected here "
                    "(several only for a k-fold target with --within)"
                )
        rows, bad = _selection(data, None, within)
        return [Task(None, rows, bad, g[0] if g else None, r[0] if r else None)]
    by_fold: dict[int, dict[str, Checkpoint]] = {}
    for kind, cks in (("global", g), ("roi", r)):
        for ck in cks:
            if ck.fold is None:
                raise FerError(
                    f"{ck.path}: k-fold target {data.root} needs fold checkpoints "
                    "(meta fold is null)"
                )
            if kind in by_fold.setdefault(ck.fold, {}):
                raise FerError(f"{ck.path}: a second {kind} checkpoint for fold {ck.fold}")
            by_fold[ck.fold][kind] = ck
    tasks = []
    for fold in sorted(by_fold):
        pair = by_fold[fold]
        if g and r and len(pair) < 2:
            raise FerError(
                f"{next(iter(pair.values())).path}: fold {fold} has no partner "
                "checkpoint of the other arch"
            )
        rows, bad = _selection(data, fold, within)
        tasks.append(Task(fold, rows, bad, pair.get("global"), pair.get("roi")))
    return tasks


def _side(data: PreparedData, name: str, arr: np.ndarray) -> int:
    """The stored side of a prepared array, checked to be N×S×S×3."""
    if arr.ndim != 4 or arr.shape[1] != arr.shape[2] or arr.shape[3] != 3:
        raise FerError(f"{data.root / (name + '.npy')}: shape {arr.shape}; expected N×S×S×3")
    return int(arr.shape[1])


def _view(data: PreparedData, ck: Checkpoint):
    """The Global Net's views of the prepared rows: ``aligned`` is ``faces.npy``, ``original``
    the whole frames (``original.npy``, which only a ``global_input: original`` model needs)."""

    def view(name: str) -> np.ndarray:
        if name == "aligned":
            return data.faces
        if data.original is None:
            raise FerError(
                f"{data.root / 'original.npy'}: missing; {ck.path} was trained on "
                "global_input: original"
            )
        return data.original

    return view


VIEW_FILES = {"aligned": "faces", "original": "original"}  # the prepared array of each view


def task_logits(task: Task, data: PreparedData, lmap: dict, run: Inference):
    """Both models' logits (scored columns) on one task's scored rows, and what the record says
    about the task (fold, unreadable and unscored counts, input resizes, checkpoints)."""
    y, names = target_labels(data, task.rows, lmap["scored"])
    keep = y >= 0
    rows = task.rows[keep]
    has_roi = data.index["has_roi"].to_numpy()[rows].astype(int) == 1
    cols = lmap["model_columns"]
    arrays = {"row": rows, "y": y[keep], "has_roi": has_roi}
    info = {
        "fold": task.fold,
        "n_unreadable": task.excluded["unreadable"],
        "n_rejected": task.excluded["rejected"],
        "dropped": names[~keep].tolist(),
        "resize": {},
        "checkpoints": {},
    }
    if task.global_ck is not None:
        ck = task.global_ck
        view = _view(data, ck)
        z = global_logits(ck, view, rows, run)
        own = ck.global_input
        arrays["z_global"] = z[own][:, cols]
        if own != "aligned":  # the fusion takes the Global Net on the aligned chip (ref §5.1)
            arrays["z_global_faces"] = z["aligned"][:, cols]
        for name in z:
            file = VIEW_FILES[name]
            info["resize"][f"global/{file}"] = [_side(data, file, view(name)), ck.sizes["face"]]
    if task.roi_ck is not None:
        ck = task.roi_ck
        inputs = {"face": data.faces, **{k: data.rois[k] for k in ROI_NAMES}}
        arrays["z_roi"] = roi_logits(ck, inputs, rows, has_roi, run)[:, cols]
        for k, arr in inputs.items():
            file = "faces" if k == "face" else k
            info["resize"][f"roi/{file}"] = [_side(data, file, arr), ck.sizes[k]]
    for kind, ck in (("global", task.global_ck), ("roi", task.roi_ck)):
        if ck is not None:
            info["checkpoints"][kind] = {"path": str(ck.path), "meta": ck.meta}
    return arrays, info


def validation_tasks(data: PreparedData, tasks: list[Task]) -> tuple[list[Task], str | None]:
    """The tasks re-pointed at the rows each pair selected its checkpoints on (``rows: val``):
    the rows both models held out (their recipes' carve). None of them, with the reason, where a
    checkpoint records no validation split (imported, or selected on test)."""
    from fer.train.data import carve

    out = []
    for task in tasks:
        held_out = None
        for ck in (task.global_ck, task.roi_ck):
            if ck is None:
                continue
            recipe = ck.meta.get("recipe")
            if not isinstance(recipe, dict):
                return [], f"{ck.path}: records no training recipe (an imported checkpoint)"
            if recipe.get("selection", "val") != "val":
                return [], f"{ck.path}: selected on {recipe.get('selection')}, no validation split"
            _, val = carve(
                data,
                task.fold,
                "val",
                float(recipe.get("val_fraction", 0.1)),
                int(recipe.get("seed", 0)),
            )
            held_out = val if held_out is None else np.intersect1d(held_out, val)
        none = dict.fromkeys(EXCLUDED, 0)
        out.append(Task(task.fold, held_out, none, task.global_ck, task.roi_ck))
    return out, None


def _concat(parts: list[dict]) -> dict:
    keys = parts[0].keys()
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def infer(spec: InferJob) -> Predictions:
    """Open the target's prepared data and checkpoints, run each model once over the rows
    ``spec.rows`` asks for, and return the record every cell is scored from."""
    data = open_prepared(spec.prepared)
    g = load_checkpoints(list(spec.global_ckpts), "global")
    r = load_checkpoints(list(spec.roi_ckpts), "roi")
    return infer_loaded(spec, data, g, r)


def infer_loaded(spec: InferJob, data: PreparedData, g: list[Checkpoint], r: list[Checkpoint]):
    """:func:`infer` on opened prepared data and loaded checkpoints (``spec``'s files are not
    read: its rows, protocol and how the models run are)."""
    if not g and not r:
        raise FerError("no checkpoint given (--global-ckpt and/or --roi-ckpt)")
    classes = model_classes(g + r)
    lmap = label_map(classes, data, spec.target, spec.protocol, (g + r)[0])
    tasks = plan_tasks(data, g, r, spec.rows != "all")
    reason = None
    if spec.rows == "val":
        tasks, reason = validation_tasks(data, tasks)
    run = Inference(resolve_device(spec.device), spec.batch_size, spec.progress)
    parts, infos = [], []
    for i, task in enumerate(tasks):
        arrays, info = task_logits(task, data, lmap, run)
        arrays["task"] = np.full(len(arrays["row"]), i, np.int64)
        parts.append(arrays)
        infos.append(info)
    if parts:
        arrays = _concat(parts)
    else:  # a validation record without a validation split
        arrays = {
            "row": np.zeros(0, np.int64),
            "y": np.zeros(0, np.int64),
            "has_roi": np.zeros(0, bool),
            "task": np.zeros(0, np.int64),
        }
        for kind, name in (("global", "z_global"), ("roi", "z_roi")):
            if g if kind == "global" else r:
                arrays[name] = np.zeros((0, len(lmap["scored"])), np.float32)
    rows = arrays["row"]
    arrays["path"] = data.index["path"].astype(str).to_numpy()[rows].astype(str)
    groups = data.index["group"] if "group" in data.index.columns else None
    groups = np.full(len(data.index), "") if groups is None else groups.fillna("").astype(str)
    arrays["group"] = np.asarray(groups)[rows].astype(str)
    if len(rows):
        votes = votes_matrix(data, rows, lmap["scored"])
        if votes is not None:
            arrays["votes"] = votes
    seeds = sorted({ck.meta.get("seed") for ck in g + r}, key=str)
    meta = {
        "record_version": RECORD_VERSION,
        "dataset": spec.dataset,
        "target": spec.target,
        "rows": spec.rows,
        "protocol": spec.protocol,
        "label_map": lmap,
        "seed": seeds[0] if len(seeds) == 1 else None,
        "tasks": infos,
        "target_adapter": data.adapter,
        "synthetic": bool(data.summary.get("synthetic", False)),
        "prepared": str(Path(spec.prepared)),
        "env": {"git_sha": git_sha(), "versions": versions(), "device": str(run.device)},
        "reason": reason,
    }
    return Predictions(arrays, meta)
