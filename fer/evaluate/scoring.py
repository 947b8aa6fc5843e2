"""The torch-free half of ``fer evaluate``: label maps, and the result JSON built from per-task
predictions (validated against fer/schemas/result.schema.json).

The field list is docs/design.md "Result JSON"; the schema describes each one.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from fer.contracts import EXCLUDED
from fer.errors import FerError
from fer.evaluate import metrics
from fer.evaluate.compare import paired_table, validated_fusion
from fer.evaluate.jobs import EvaluateJob
from fer.evaluate.records import Predictions, check_same_rows
from fer.labels import CANONICAL, scored_classes
from fer.prepared import PreparedData

NEEDS = {"global": ("global",), "roi": ("roi",), "fused": ("global", "roi")}  # models per arch

SCHEMA_VERSION = 2
SCHEMA_PATH = Path(__file__).parent.parent / "schemas" / "result.schema.json"


def validate_result(result: dict) -> None:
    """Check a result dict against fer/schemas/result.schema.json (jsonschema, draft 2020-12).

    A failure here is a bug in the evaluator, not a user error, so it raises ``ValueError``.
    """
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(result), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "(root)"
        raise ValueError(f"result JSON breaks {SCHEMA_PATH.name} at {where}: {errors[0].message}")


def _acc(pred: np.ndarray | None, y: np.ndarray, mask: np.ndarray) -> float | None:
    """Accuracy of (S, n) replicate predictions on the ``mask`` rows, pooled over replicates."""
    if pred is None or not mask.any():
        return None
    return float(np.mean(pred[:, mask] == y[mask]))


def arch_mask(arch: str, has_roi: np.ndarray) -> np.ndarray:
    """Rows an arch is scored on: the ROI subset for ``roi``, every scored row otherwise."""
    return has_roi.copy() if arch == "roi" else np.ones_like(has_roi, dtype=bool)


def excluded_counts(record: Predictions) -> dict[str, int]:
    """``{reason: n}``: unreadable and rejected images and, per class, labels the model is not
    scored on."""
    out: Counter = Counter()
    for task in record.meta["tasks"]:
        for status in EXCLUDED:  # records before the picture rules hold no n_rejected
            if task.get(f"n_{status}"):
                out[status] += int(task[f"n_{status}"])
        out.update(f"label_not_scored:{name}" for name in task["dropped"])
    return dict(sorted(out.items()))


def votes_matrix(data: PreparedData, rows: np.ndarray, scored: list[str]) -> np.ndarray | None:
    """FERPlus votes (n × scored classes) of ``rows``, or None when the target has no votes."""
    votes = data.votes(rows)
    return None if votes is None else votes[:, [CANONICAL.index(c) for c in scored]]


def _fold_rows(records: list[Predictions], preds, arch: str) -> list[dict] | None:
    """Per-fold accuracy of ``arch`` (pooled over replicates) for k-fold records, else None."""
    tasks = records[0].meta["tasks"]
    if not tasks or tasks[0]["fold"] is None:
        return None
    r0 = records[0]
    rows = []
    for i, task in enumerate(tasks):
        in_task = r0["task"] == i
        mask = arch_mask(arch, r0["has_roi"]) & in_task
        paths = {k: v["path"] for k, v in task["checkpoints"].items()}
        rows.append(
            {
                "fold": int(task["fold"]),
                "accuracy": _acc(preds, r0["y"], mask),
                "n": int(mask.sum()),
                "n_with_roi": int((r0["has_roi"] & in_task).sum()),
                "checkpoints": paths,
            }
        )
    return rows


def _provenance(cell: EvaluateJob, records: list[Predictions]) -> tuple[dict, list[str]]:
    metas: dict[str, list[dict]] = {"global": [], "roi": []}
    paths: dict[str, list[str]] = {"global": [], "roi": []}
    resize: dict = {}
    for rec in records:
        for task in rec.meta["tasks"]:
            resize.update(task["resize"])
            for kind, ck in task["checkpoints"].items():
                metas[kind].append(ck["meta"])
                paths[kind].append(str(ck["path"]))
    every = metas["global"] + metas["roi"]
    selections = sorted({str(m.get("selection")) for m in every})
    warnings = []
    if "test" in selections:
        warnings.append(
            "selected_on_test: a checkpoint was selected on its data set's test split (as the "
            "reference did), so within-dataset accuracy is optimistic"
        )
    trained_on = sorted({str(m.get("dataset")) for m in every if m.get("dataset")})
    if trained_on and trained_on != [cell.dataset]:
        warnings.append(f"checkpoints say dataset {trained_on}, the cell says {cell.dataset!r}")
    env = records[0].meta["env"]
    n_tasks = len(records[0].meta["tasks"])
    prov = {
        "checkpoints": {k: v[0] for k, v in metas.items() if v},
        "fold_checkpoints": {k: v[:n_tasks] for k, v in metas.items() if n_tasks > 1 and v} or None,
        "checkpoint_paths": {k: v for k, v in paths.items() if v},
        "selection": "test" if "test" in selections else "/".join(selections),
        "selected_on_test": "test" in selections,
        "seed": int(cell.seed),
        "bootstrap": int(cell.bootstrap),
        "git_sha": env.get("git_sha"),
        "config_hash": cell.config_hash or None,
        "versions": env.get("versions", {}),
        "fusion_weights": cell.fusion.to_dict(),
        "global_input": sorted({str(m.get("global_input", "aligned")) for m in metas["global"]}),
        "tta": {k: sorted({str(m.get("tta", "none")) for m in v}) for k, v in metas.items() if v},
        "input_resize": {k: v for k, v in resize.items() if v[0] != v[1]},
        "prepared": records[0].meta["prepared"],
        "predictions": [str(r.path) for r in records if r.path is not None],
        "device": env.get("device"),
    }
    return prov, warnings


def _headline(y, preds, mask, scored, cell: EvaluateJob) -> dict:
    """summarize() of the cell's arch; over several replicates the matrix is summed over them,
    ``n_images`` counts images once and the interval resamples images (seed-mean accuracy)."""
    n_seeds = preds.shape[0]
    if n_seeds == 1:
        return metrics.summarize(y[mask], preds[0][mask], scored, cell.bootstrap, cell.seed)
    pooled = np.tile(y[mask], n_seeds), preds[:, mask].ravel()
    out = metrics.summarize(*pooled, scored, 0, cell.seed)
    correct = preds[:, mask] == y[mask]
    out["n_images"] = int(mask.sum())
    out["accuracy_ci95"] = metrics.bootstrap_replicates(correct, cell.bootstrap, cell.seed)
    return out


def _replicates(records, y, preds, mask, scored) -> dict | None:
    if len(records) == 1:
        return None
    per = [metrics.summarize(y[mask], p[mask], scored, 0) for p in preds]
    acc = [s["accuracy"] for s in per]
    mean, std = metrics.fold_summary(acc)
    return {
        "seeds": [r.meta.get("seed") for r in records],
        "accuracy": acc,
        "mean": mean,
        "std": std,
        "mean_class_accuracy": [s["mean_class_accuracy"] for s in per],
        "macro_f1": [s["macro_f1"] for s in per],
        "predictions": [str(r.path) if r.path else None for r in records],
    }


def score(cell: EvaluateJob, records: list[Predictions], validation: list[Predictions]) -> dict:
    """The result dict of one cell from its prediction records (one per replicate seed)."""
    check_same_rows(records)
    r0 = records[0]
    lmap = r0.meta["label_map"]
    scored, arch = lmap["scored"], cell.arch
    y, has_roi = r0["y"], r0["has_roi"]
    where = Path(r0.meta["prepared"]) / "index.csv"
    if len(y) == 0:
        raise FerError(
            f"{where}: no image of {cell.target} to score "
            f"(rows={r0.meta['rows']}, scored classes {scored})"
        )
    if cell.protocol != r0.meta["protocol"]:
        raise FerError(
            f"{r0.where}: scored with protocol {r0.meta['protocol']!r}, the cell asks for "
            f"{cell.protocol!r}; rerun `fer infer --protocol {cell.protocol}`"
        )
    preds = {}
    for a in ("global", "roi", "fused"):
        each = [rec.predicted(a, cell.fusion) for rec in records]
        preds[a] = None if any(p is None for p in each) else np.stack(each)
    if preds[arch] is None:
        kinds = " and ".join(k for k in NEEDS[arch] if preds[k] is None)
        raise FerError(f"{r0.where}: arch {arch} needs the {kinds} model's logits")
    mask = arch_mask(arch, has_roi)
    if not mask.any():
        raise FerError(
            f"{where}: none of the {len(y)} scored images has ROIs "
            "(has_roi), so the Global-ROI Net cannot be scored"
        )
    result = {
        "schema_version": SCHEMA_VERSION,
        "dataset": cell.dataset,
        "target": cell.target,
        "adapters": adapters(cell, r0),
        "arch": arch,
        "protocol": r0.meta["protocol"],
        "within": r0.meta["rows"] == "within",
        "classes": scored,
        "label_map": lmap,
    }
    result |= _headline(y, preds[arch], mask, scored, cell)
    full = np.ones_like(has_roi)
    result |= {
        "n_scored": int(len(y)),
        "n_with_roi": int(has_roi.sum()),
        "excluded": excluded_counts(r0),
        "roi_subset": {
            "n": int(has_roi.sum()),
            "accuracy": {a: _acc(p, y, has_roi) for a, p in preds.items()},
        },
        "full_set_accuracy": None if arch == "roi" else _acc(preds[arch], y, full),
        "ferplus": None,
    }
    if r0.has("votes"):
        n_seeds = len(records)
        result["ferplus"] = metrics.ferplus_accuracies(
            np.tile(y[mask], n_seeds),
            preds[arch][:, mask].ravel(),
            np.tile(r0["votes"][mask], (n_seeds, 1)),
        )
    folds = _fold_rows(records, preds[arch], arch)
    mean, std = metrics.fold_summary([f["accuracy"] for f in folds]) if folds else (None, None)
    result |= {"folds": folds, "fold_mean": mean, "fold_std": std}
    result["replicates"] = _replicates(records, y, preds[arch], mask, scored)
    result["paired"] = paired_table(records, preds, cell)
    result["validated_fusion"] = validated_fusion(cell, records, validation, preds)
    prov, warnings = _provenance(cell, records)
    if arch == "roi":
        warnings.append(f"roi is scored on the ROI subset only: {int(mask.sum())} of {len(y)}")
    result |= {
        "provenance": prov,
        "synthetic": bool(r0.meta["synthetic"]),
        "warnings": warnings,
    }
    validate_result(result)
    return result


def adapters(cell: EvaluateJob, record: Predictions) -> dict[str, str]:
    """The adapters behind the trained set's and the target's names (report lookups)."""
    metas = [ck["meta"] for t in record.meta["tasks"] for ck in t["checkpoints"].values()]
    trained = next((m["adapter"] for m in metas if m.get("adapter")), None)
    target = record.meta["target_adapter"] or cell.target
    return {"dataset": trained or cell.dataset, "target": target}


def label_map(classes: list[str], data: PreparedData, target: str, protocol: str, ck) -> dict:
    """Scored classes and what is dropped on each side (model logits, target images)."""
    # the protocol's drops are the data set's (the adapter's), whatever the config calls it
    scored = scored_classes(classes, data.classes, data.adapter or target, protocol)
    if not scored:
        raise FerError(
            f"{ck.path}: model classes {classes} share no scored class with "
            f"{data.root} classes {data.classes} (protocol {protocol})"
        )
    return {
        "model_classes": list(classes),
        "target_classes": data.classes,
        "scored": scored,
        "dropped_logits": [c for c in classes if c not in scored],
        "dropped_target_classes": [c for c in data.classes if c not in scored],
        "protocol": protocol,
        "model_columns": [classes.index(c) for c in scored],
    }


def target_labels(data: PreparedData, rows: np.ndarray, scored: list[str]):
    """Scored-class index per row (-1 for an unscored label) and the canonical names."""
    try:
        codes = data.index["label"].to_numpy()[rows].astype(int)
        if codes.size and (codes.min() < 0 or codes.max() >= len(CANONICAL)):
            raise IndexError(f"found {codes.min()}..{codes.max()}")
        names = np.array([CANONICAL[c] for c in codes], dtype=object)
    except (ValueError, IndexError) as exc:
        raise FerError(
            f"{data.root / 'index.csv'}: label column must hold canonical indices "
            f"0-{len(CANONICAL) - 1} ({exc})"
        ) from exc
    pos = {c: i for i, c in enumerate(scored)}
    return np.array([pos.get(n, -1) for n in names], dtype=np.int64), names
