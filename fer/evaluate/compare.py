"""Comparisons inside one table row: the paired tests of its archs and the fused weight chosen
on validation rows (docs/design.md "Replicates and paired tests"). Torch-free."""

from __future__ import annotations

import numpy as np

from fer.errors import FerError
from fer.evaluate import metrics
from fer.evaluate.jobs import EvaluateJob
from fer.evaluate.records import Predictions
from fer.fusion import GRID, Fusion


def subject_groups(record: Predictions) -> np.ndarray | None:
    """Each image's subject where the set records one for every image (and more than one
    subject), else None: the units the paired tests resample."""
    groups = record["group"]
    return groups if (groups != "").all() and len(np.unique(groups)) > 1 else None


PAIRS = (("fused", "global"), ("fused", "roi"), ("roi", "global"))


def paired_table(records, preds: dict, cell: EvaluateJob) -> list[dict]:
    """Accuracy differences a − b of each pair of archs on the images both are scored on (the
    ROI subset where ``roi`` is one), pooled over replicates (docs/design.md "Paired tests")."""
    r0 = records[0]
    y, has_roi = r0["y"], r0["has_roi"]
    groups = subject_groups(r0)
    out = []
    for a, b in PAIRS:
        if preds[a] is None or preds[b] is None:
            continue
        mask = has_roi if "roi" in (a, b) else np.ones_like(has_roi)
        if not mask.any():
            continue
        res = metrics.paired_difference(
            preds[a][:, mask] == y[mask],
            preds[b][:, mask] == y[mask],
            None if groups is None else groups[mask],
            cell.bootstrap,
            cell.seed,
        )
        out.append({"a": a, "b": b, "subset": "roi" if "roi" in (a, b) else "all"} | res)
    return out


def choose_fusion(record: Predictions, fixed: Fusion) -> tuple[Fusion, float, int]:
    """(weights, validation accuracy, n) of the grid weights (:meth:`Fusion.grid`) with the best
    fused accuracy on a validation record; ties go to the w_roi nearest ``fixed``'s share of
    the weights, then to the smaller."""
    y = record["y"]
    best = None
    for fusion in Fusion.grid():
        acc = float(np.mean(record.predicted("fused", fusion) == y))
        key = (-acc, abs(fusion.w_roi - fixed.roi_share), fusion.w_roi)
        if best is None or key < best[0]:
            best = (key, fusion, acc)
    return best[1], best[2], len(y)


def validated_fusion(cell: EvaluateJob, records, validation, base) -> dict | None:
    """The fused cell with the weight chosen on each replicate's validation rows, beside the
    fixed one: per seed the weight, its validation accuracy and the test accuracy."""
    if cell.arch != "fused" or not validation:
        return None
    by_seed = {v.meta.get("seed"): v for v in validation}
    if len(by_seed) != len(validation) or set(by_seed) != {r.meta.get("seed") for r in records}:
        raise FerError(
            f"validation records of seeds {sorted(map(str, by_seed))} do not match the "
            f"prediction records' {sorted(str(r.meta.get('seed')) for r in records)}"
        )
    reasons = sorted({v.meta.get("reason") for v in validation if v.meta.get("reason")})
    if reasons or any(len(v) == 0 for v in validation):
        return {
            "grid": list(GRID),
            "per_seed": [],
            "accuracy": None,
            "accuracy_ci95": None,
            "paired_vs_global": None,
            "reason": "; ".join(reasons) or "no validation rows",
        }
    per_seed, preds = [], []
    y = records[0]["y"]
    for rec in records:
        val = by_seed[rec.meta.get("seed")]
        chosen, val_acc, n_val = choose_fusion(val, cell.fusion)
        pred = rec.predicted("fused", chosen)
        preds.append(pred)
        per_seed.append(
            {
                "seed": rec.meta.get("seed"),
                "weights": {"roi": chosen.w_roi, "global": round(chosen.w_global, 2)},
                "val_accuracy": val_acc,
                "n_val": n_val,
                "accuracy": float(np.mean(pred == y)),
                "validation": str(val.path) if val.path else None,
            }
        )
    preds = np.stack(preds)
    correct = preds == y
    boot = (
        metrics.bootstrap_ci(int(correct.sum()), correct.size, cell.bootstrap, cell.seed)
        if len(records) == 1
        else metrics.bootstrap_replicates(correct, cell.bootstrap, cell.seed)
    )
    groups = subject_groups(records[0])
    vs_global = None
    if base["global"] is not None:
        vs_global = metrics.paired_difference(
            correct, base["global"] == y, groups, cell.bootstrap, cell.seed
        )
    return {
        "grid": list(GRID),
        "per_seed": per_seed,
        "accuracy": float(correct.mean()),
        "accuracy_ci95": boot,
        "paired_vs_global": vs_global,
        "reason": None,
    }
