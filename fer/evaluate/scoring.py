"""The torch-free half of ``fer evaluate``: label maps, logit fusion, and the result JSON built
from per-task predictions (validated against fer/schemas/result.schema.json).

The field list is docs/design.md "Result JSON"; the schema describes each one.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from fer.errors import FerError
from fer.evaluate import EvalCell, metrics
from fer.labels import CANONICAL, scored_classes
from fer.prepared import PreparedData

SCHEMA_VERSION = 1
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


def _pool(outputs: list[dict], key: str) -> np.ndarray | None:
    if any(key not in o for o in outputs):
        return None
    return np.concatenate([np.asarray(o[key]) for o in outputs])


def _acc(pred: np.ndarray | None, y: np.ndarray, mask: np.ndarray) -> float | None:
    if pred is None or not mask.any():
        return None
    return float(np.mean(pred[mask] == y[mask]))


def arch_mask(arch: str, has_roi: np.ndarray) -> np.ndarray:
    """Rows an arch is scored on: the ROI subset for ``roi``, every scored row otherwise."""
    return has_roi.copy() if arch == "roi" else np.ones_like(has_roi, dtype=bool)


def excluded_counts(outputs: list[dict]) -> dict[str, int]:
    """``{reason: n}``: unreadable images and, per class, labels the model is not scored on."""
    out: Counter = Counter()
    for o in outputs:
        if o["unreadable"]:
            out["unreadable"] += int(o["unreadable"])
        out.update(f"label_not_scored:{name}" for name in o["dropped"])
    return dict(sorted(out.items()))


def votes_matrix(data, rows: np.ndarray, scored: list[str]) -> np.ndarray | None:
    """FERPlus votes (n × scored classes) of ``rows``, or None when the target has no votes."""
    if "votes" not in data.index.columns:
        return None
    cells = data.index["votes"].astype(str).to_numpy()[rows]
    filled = np.array([c.strip() not in ("", "nan") for c in cells], dtype=bool)
    if not filled.any():
        return None
    where = data.root / "index.csv"
    if not filled.all():
        raise FerError(
            f"{where}: {int((~filled).sum())} scored rows have an empty votes cell; "
            "a FERPlus target needs votes on every row"
        )
    try:
        votes = np.stack([metrics.parse_votes(c, len(CANONICAL)) for c in cells])
    except ValueError as exc:
        raise FerError(f"{where}: {exc}") from exc
    return votes[:, [CANONICAL.index(c) for c in scored]]


def _fold_rows(tasks, outputs, arch: str) -> list[dict] | None:
    """Per-fold accuracy of ``arch`` for k-fold tasks; None when the tasks are not folds."""
    if tasks[0].fold is None:
        return None
    rows = []
    for task, o in zip(tasks, outputs, strict=True):
        mask = arch_mask(arch, o["has_roi"])
        pred = o.get(arch)
        paths = {
            k: str(ck.path)
            for k, ck in (("global", task.global_ck), ("roi", task.roi_ck))
            if ck is not None
        }
        rows.append(
            {
                "fold": int(task.fold),
                "accuracy": _acc(pred, o["y"], mask),
                "n": int(mask.sum()),
                "n_with_roi": int(o["has_roi"].sum()),
                "checkpoints": paths,
            }
        )
    return rows


def _provenance(cell: EvalCell, tasks, env: dict, resize: dict) -> tuple[dict, list[str]]:
    metas: dict[str, list[dict]] = {"global": [], "roi": []}
    paths: dict[str, list[str]] = {"global": [], "roi": []}
    for task in tasks:
        for kind, ck in (("global", task.global_ck), ("roi", task.roi_ck)):
            if ck is not None:
                metas[kind].append(ck.meta)
                paths[kind].append(str(ck.path))
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
    prov = {
        "checkpoints": {k: v[0] for k, v in metas.items() if v},
        "fold_checkpoints": {k: v for k, v in metas.items() if len(v) > 1} or None,
        "checkpoint_paths": {k: v for k, v in paths.items() if v},
        "selection": "test" if "test" in selections else "/".join(selections),
        "selected_on_test": "test" in selections,
        "seed": int(cell.seed),
        "bootstrap": int(cell.bootstrap),
        "git_sha": env.get("git_sha"),
        "config_hash": cell.config_hash or None,
        "versions": env.get("versions", {}),
        "fusion_weights": cell.fusion_weights,
        "global_input": sorted({str(m.get("global_input", "aligned")) for m in metas["global"]}),
        "input_resize": {k: v for k, v in resize.items() if v[0] != v[1]},
        "prepared": str(Path(cell.prepared)),
        "device": env.get("device"),
    }
    return prov, warnings


def assemble_result(cell: EvalCell, data, tasks, outputs, lmap: dict, env: dict) -> dict:
    """The result dict of one cell from every task's predictions (see the module docstring)."""
    scored, arch = lmap["scored"], cell.arch
    y, has_roi = _pool(outputs, "y"), _pool(outputs, "has_roi").astype(bool)
    preds = {a: _pool(outputs, a) for a in ("global", "roi", "fused")}
    if len(y) == 0:
        raise FerError(
            f"{data.root / 'index.csv'}: no image of {cell.target} to score "
            f"(within={cell.within}, scored classes {scored})"
        )
    mask = arch_mask(arch, has_roi)
    if not mask.any():
        raise FerError(
            f"{data.root / 'index.csv'}: none of the {len(y)} scored images has ROIs "
            "(has_roi), so the Global-ROI Net cannot be scored"
        )
    result = {
        "schema_version": SCHEMA_VERSION,
        "dataset": cell.dataset,
        "target": cell.target,
        "adapters": adapters(cell, data, tasks),
        "arch": arch,
        "protocol": cell.protocol,
        "within": bool(cell.within),
        "classes": scored,
        "label_map": lmap,
    }
    result |= metrics.summarize(y[mask], preds[arch][mask], scored, cell.bootstrap, cell.seed)
    full = np.ones_like(has_roi)
    result |= {
        "n_scored": int(len(y)),
        "n_with_roi": int(has_roi.sum()),
        "excluded": excluded_counts(outputs),
        "roi_subset": {
            "n": int(has_roi.sum()),
            "accuracy": {a: _acc(p, y, has_roi) for a, p in preds.items()},
        },
        "full_set_accuracy": None if arch == "roi" else _acc(preds[arch], y, full),
        "ferplus": None,
    }
    votes = votes_matrix(data, _pool(outputs, "rows"), scored)
    if votes is not None:
        result["ferplus"] = metrics.ferplus_accuracies(y[mask], preds[arch][mask], votes[mask])
    folds = _fold_rows(tasks, outputs, arch)
    mean, std = metrics.fold_summary([f["accuracy"] for f in folds]) if folds else (None, None)
    result |= {"folds": folds, "fold_mean": mean, "fold_std": std}
    resize = {k: v for o in outputs for k, v in o["resize"].items()}
    prov, warnings = _provenance(cell, tasks, env, resize)
    if arch == "roi":
        warnings.append(f"roi is scored on the ROI subset only: {int(mask.sum())} of {len(y)}")
    result |= {
        "provenance": prov,
        "synthetic": bool(data.summary.get("synthetic", False)),
        "warnings": warnings,
    }
    return result


def adapters(cell: EvalCell, data, tasks) -> dict[str, str]:
    """The adapters behind the trained set's and the target's names (report lookups)."""
    metas = [ck.meta for t in tasks for ck in (t.global_ck, t.roi_ck) if ck is not None]
    trained = next((m["adapter"] for m in metas if m.get("adapter")), None)
    return {"dataset": trained or cell.dataset, "target": data.adapter or cell.target}


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


def fuse(z_roi: np.ndarray, z_global: np.ndarray, has_roi: np.ndarray, w: dict) -> np.ndarray:
    """Fused logits: ``w_roi·z_roi + w_global·z_global`` where ``has_roi``, else ``z_global``.

    ``z_roi`` rows where ``has_roi`` is False are ignored (they may hold anything, e.g. NaN).
    """
    z = np.array(z_global, dtype=np.float64, copy=True)
    m = np.asarray(has_roi, dtype=bool)
    z[m] = w["roi"] * np.asarray(z_roi, dtype=np.float64)[m] + w["global"] * z[m]
    return z


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
