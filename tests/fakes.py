"""Synthetic manifests for tests of preprocessing (synthetic prepared data: fer.synthetic), and a
seeded pair of real networks at small sizes for tests of fer predict / export / pair."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fer.labels import CANONICAL, SEVEN


def write_manifest(folder: Path, files: list[str], classes=("happy", "sad")) -> Path:
    """A manifest.csv + manifest.summary.json as `fer manifest` writes them."""
    rows = [
        {
            "path": f,
            "label": CANONICAL.index(classes[i % 2]),
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


PRE = {"detector": "mtcnn", "padding": 0.25, "chip_size": 112, "crop_size": 48, "max_pixels": 10**8}


def make_pair(folder: Path, pre: dict = PRE, classes=SEVEN, seed: int = 0, **meta) -> Path:
    """global.pt + roi.pt (input 48 / 24 px) recording ``pre`` as their preprocessing."""
    import torch

    from fer.models import create_model, save_checkpoint

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for kind in ("global", "roi"):
        model = create_model(kind, len(classes), 48, 24)
        with torch.no_grad():  # a head that does not answer the same class for every face
            model.fc.weight.mul_(40.0)
        info = {"classes": list(classes), "global_input": "aligned", "preprocess": pre}
        save_checkpoint(folder / f"{kind}.pt", model, info | meta)
    return folder
