"""The report's evidence beside each table: paired comparisons, the fusion weight chosen on
validation, replicate spreads, error galleries and confusion-difference views.

Galleries read the prediction records a result names (``provenance.predictions``) and the
prepared chips of its target (``provenance.prepared``/faces.npy), both relative to the folder the
report is rendered in (the workflow's); a record or chip file that is absent leaves a note, never
a crash.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

from fer.fusion import REFERENCE, Fusion
from fer.report import figures
from fer.report.inputs import Cell

GALLERY_SIZE = 12
THUMB = 72
PAIR_TITLES = {
    ("fused", "global"): "Fused − Global",
    ("fused", "roi"): "Fused − Global-ROI",
    ("roi", "global"): "Global-ROI − Global",
}


def paired_row(row: list) -> dict | None:
    """A table row's paired comparisons (the same in each of its cells) and the validated
    fusion of its fused cell, or None when no cell of the row holds them."""
    results = [v.result for v in row if v is not None and v.result is not None]
    paired = next((r["paired"] for r in results if r.get("paired")), None)
    fused = next((r for r in results if r.get("arch") == "fused"), None)
    validated = (fused or {}).get("validated_fusion")
    if not paired and not validated:
        return None
    by_pair = {(p["a"], p["b"]): p for p in paired or []}
    return {
        "pairs": [(PAIR_TITLES[k], by_pair.get(k)) for k in PAIR_TITLES],
        "validated": validated,
        "fixed": (fused or {}).get("accuracy"),
        "fixed_weights": ((fused or {}).get("provenance") or {}).get("fusion_weights"),
    }


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _thumb(chip: np.ndarray) -> str:
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(chip)).resize((THUMB, THUMB), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def gallery(cell: Cell, limit: int = GALLERY_SIZE) -> dict:
    """The cell's misclassified test faces, most confident mistakes first: ``{items, n_wrong,
    note}``; each item has the thumbnail (base64 PNG), the true and predicted class, the
    predicted class's softmax probability, the image path (and its seed with replicates)."""
    from fer.errors import FerError
    from fer.evaluate.records import Predictions

    r = cell.result or {}
    prov = r.get("provenance") or {}
    paths = prov.get("predictions") or []
    if not paths:
        return {"items": [], "n_wrong": None, "note": "no prediction record named"}
    weights = prov.get("fusion_weights")
    try:
        rec = Predictions.load(paths[0])
        fusion = REFERENCE if weights is None else Fusion.from_dict(weights, f"{cell.path}")
    except FerError as exc:
        return {"items": [], "n_wrong": None, "note": str(exc)}
    z = rec.logits(cell.arch, fusion)
    if z is None:
        return {"items": [], "n_wrong": None, "note": f"{rec.where}: no {cell.arch} logits"}
    keep = rec["has_roi"] if cell.arch == "roi" else np.ones(len(rec), bool)
    y, z = rec["y"][keep], np.nan_to_num(np.asarray(z, np.float64)[keep], nan=0.0)
    prob = _softmax(z)
    pred = prob.argmax(1)
    wrong = np.flatnonzero(pred != y)
    order = wrong[np.argsort(-prob[wrong, pred[wrong]], kind="stable")][:limit]
    faces_path = Path(rec.meta["prepared"]) / "faces.npy"
    if not faces_path.is_file():
        return {"items": [], "n_wrong": len(wrong), "note": f"{faces_path}: not found"}
    faces = np.load(faces_path, mmap_mode="r")
    rows, names = rec["row"][keep], rec.scored
    seed = rec.meta.get("seed") if len(paths) > 1 else None
    items = [
        {
            "b64": _thumb(faces[int(rows[i])]),
            "true": names[int(y[i])],
            "pred": names[int(pred[i])],
            "p": float(prob[i, pred[i]]),
            "path": str(rec["path"][keep][i]),
        }
        for i in order
    ]
    note = f"replicate seed {seed} of {len(paths)}" if seed is not None else None
    return {"items": items, "n_wrong": int(len(wrong)), "note": note}


def confusion_difference(fused: dict, glob: dict) -> dict | None:
    """Geometry of the fused − global confusion counts of one row (same images, same classes),
    or None when the two cells do not compare."""
    if fused.get("classes") != glob.get("classes") or fused.get("n_images") != glob.get("n_images"):
        return None
    a = np.asarray(fused["confusion_matrix"], dtype=float)
    b = np.asarray(glob["confusion_matrix"], dtype=float)
    return figures.difference_figure(list(fused["classes"]), (a - b).tolist())
