"""Synthetic prepared data (the layout of docs/design.md "Prepared data") for tests and
benchmarks: no detector, no picture files, deterministic from a seed.

Images are learnable: each class has its own mean colour and a class-specific stripe in the face
and in each ROI, plus noise, so a few training steps move accuracy well above chance. Arrays are
written row by row into memory maps, so a benchmark's tens of thousands of 224 px rows never sit in
memory at once.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from fer.contracts import ROI_NAMES
from fer.labels import CANONICAL, SEVEN


def pattern(rng: np.random.Generator, label: int, size: int, n_classes: int) -> np.ndarray:
    """One ``size``² RGB picture of class ``label``: noise, a colour and a stripe per class."""
    img = rng.normal(100, 25, (size, size, 3))
    img[..., label % 3] += 60
    band = max(size // n_classes, 1)
    img[label * band : (label + 1) * band, :, :] += 80
    return np.clip(img, 0, 255).astype(np.uint8)


def write_prepared(
    root: str | Path,
    n_per_class: int = 8,
    classes: tuple[str, ...] = SEVEN,
    chip_size: int = 32,
    crop_size: int = 16,
    roi_fraction: float = 0.75,
    kfold: int | None = None,
    test_fraction: float = 0.25,
    val_fraction: float = 0.15,
    n_groups: int = 12,
    seed: int = 0,
    dataset: str = "fake",
) -> Path:
    """Write a prepared folder of ``n_per_class × len(classes)`` rows into ``root``; returns it.

    Row ``i`` is class ``i mod C``, subject ``s{i mod n_groups}``; a share ``roi_fraction`` of the
    rows has ROIs (the others: status ``landmarks_failed``, zero crops). Splits are drawn per row
    (``test_fraction``, ``val_fraction``, the rest train), or with ``kfold`` every row is train
    with fold ``(i mod n_groups) mod kfold`` (whole subjects per fold).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = n_per_class * len(classes)
    faces = np.lib.format.open_memmap(root / "faces.npy", "w+", np.uint8, (n, *(chip_size,) * 2, 3))
    rois = {
        k: np.lib.format.open_memmap(root / f"{k}.npy", "w+", np.uint8, (n, *(crop_size,) * 2, 3))
        for k in ROI_NAMES
    }
    rows = []
    for i in range(n):
        k = i % len(classes)
        name = classes[k]
        has_roi = rng.random() < roi_fraction
        r = rng.random()
        split = (
            "test" if r < test_fraction else "val" if r < test_fraction + val_fraction else "train"
        )
        rows.append(
            {
                "path": f"{name}/img_{i:04d}.png",
                "label": CANONICAL.index(name),
                "label_name": name,
                "split": "train" if kfold else split,
                "group": f"s{i % n_groups:02d}",
                "fold": (i % n_groups) % kfold if kfold else -1,
                "box": "",
                "landmarks": "",
                "votes": "",
                "status": "ok" if has_roi else "landmarks_failed",
                "has_roi": int(has_roi),
                "n_faces": 1,
                "roi_boxes": "",
            }
        )
        faces[i] = pattern(rng, k, chip_size, len(classes))
        for roi in ROI_NAMES:
            crop = pattern(rng, k, crop_size, len(classes))
            rois[roi][i] = crop if has_roi else 0
    for arr in (faces, *rois.values()):
        arr.flush()
    del faces, rois
    pd.DataFrame(rows).to_csv(root / "index.csv", index=False)
    np.save(root / "landmarks.npy", np.full((n, 68, 2), np.nan, np.float32))
    params = {"chip_size": chip_size, "crop_size": crop_size, "padding": 0.25, "detector": "none"}
    (root / "params.json").write_text(json.dumps(params))
    summary = {"dataset": dataset, "classes": list(classes), "synthetic": True}
    (root / "summary.json").write_text(json.dumps(summary))
    return root
