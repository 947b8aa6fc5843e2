"""Synthetic prepared data for unit tests of training and evaluation (no detector needed).

Images are learnable: each class has its own mean colour and a class-specific stripe in the face
and in each ROI, plus noise, so a few training steps move accuracy well above chance.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from fer.labels import SEVEN
from fer.prepared import ROI_NAMES


def _pattern(rng, label: int, size: int, n_classes: int) -> np.ndarray:
    img = rng.normal(100, 25, (size, size, 3))
    img[..., label % 3] += 60
    band = size // n_classes
    img[label * band : (label + 1) * band, :, :] += 80
    return np.clip(img, 0, 255).astype(np.uint8)


def write_fake_prepared(
    root: str | Path,
    n_per_class: int = 8,
    classes: tuple[str, ...] = SEVEN,
    face_size: int = 32,
    roi_size: int = 16,
    roi_fraction: float = 0.75,
    kfold: int | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> Path:
    """Write a prepared folder following docs/design.md; returns its path."""
    from fer.labels import CANONICAL

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, faces, rois = [], [], {k: [] for k in ROI_NAMES}
    n = n_per_class * len(classes)
    for i in range(n):
        k = i % len(classes)
        name = classes[k]
        has_roi = rng.random() < roi_fraction
        r = rng.random()
        split = "test" if r < test_fraction else ("val" if r < test_fraction + 0.15 else "train")
        rows.append(
            {
                "path": f"{name}/img_{i:04d}.png",
                "label": CANONICAL.index(name),
                "label_name": name,
                "split": "train" if kfold else split,
                "group": f"s{i % 12:02d}",
                "fold": (i % 12) % kfold if kfold else -1,
                "box": "",
                "landmarks": "",
                "votes": "",
                "status": "ok" if has_roi else "landmarks_failed",
                "has_roi": int(has_roi),
                "n_faces": 1,
                "roi_boxes": "",
            }
        )
        faces.append(_pattern(rng, k, face_size, len(classes)))
        for name_roi in ROI_NAMES:
            crop = _pattern(rng, k, roi_size, len(classes))
            rois[name_roi].append(crop if has_roi else np.zeros_like(crop))
    pd.DataFrame(rows).to_csv(root / "index.csv", index=False)
    np.save(root / "faces.npy", np.stack(faces))
    for name_roi in ROI_NAMES:
        np.save(root / f"{name_roi}.npy", np.stack(rois[name_roi]))
    np.save(root / "landmarks.npy", np.full((n, 68, 2), np.nan, np.float32))
    params = {"face_size": face_size, "roi_size": roi_size, "padding": 0.25, "detector": "none"}
    (root / "params.json").write_text(json.dumps(params))
    summary = {"dataset": "fake", "classes": list(classes), "synthetic": True}
    (root / "summary.json").write_text(json.dumps(summary))
    return root


def write_manifest(folder: Path, files: list[str], classes=("happy", "sad")) -> Path:
    """A manifest.csv + manifest.summary.json as `fer manifest` writes them."""
    rows = [
        {
            "path": f,
            "label": 1 + i % 2,
            "label_name": classes[i % 2],
            "split": "test",
            "group": "",
            "fold": -1,
            "box": "",
            "landmarks": "",
            "votes": "",
        }
        for i, f in enumerate(files)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    summary = {"dataset": "edge", "classes": list(classes), "synthetic": True}
    (folder / "manifest.summary.json").write_text(json.dumps(summary))
    return folder / "manifest.csv"
