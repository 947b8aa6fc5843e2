"""Synthetic manifests for tests of preprocessing (synthetic prepared data: fer.synthetic)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


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
