"""Synthetic manifests for tests of preprocessing (synthetic prepared data: fer.synthetic), a
seeded pair of real networks at small sizes for tests of fer predict / export / pair, and the
`fer` command run as a user's shell runs it (with the one-line-error check)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


BIN = Path(sys.executable).parent


def fer(*args, cwd=None, timeout=300, stdin=None, env=None) -> subprocess.CompletedProcess:
    """``fer ARGS`` in a subprocess, as a user's shell would run it."""
    return subprocess.run(
        [str(BIN / "fer"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        input=stdin,
        env={**os.environ, **(env or {})},
    )


def refused(r: subprocess.CompletedProcess, *fragments: str) -> str:
    """The run exited 2 with exactly one ``error: ...`` line, last on stderr after whatever
    progress it printed, holding every fragment, and no traceback; returns that line."""
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], r.stderr[-2000:]
    for text in fragments:
        assert text in errors[0], (text, errors[0])
    return errors[0]


def prepare_args(manifest: Path, raw: Path, out: Path, *extra) -> list:
    """``fer prepare`` of ``manifest`` at small sizes without detection, one worker."""
    return [
        "prepare",
        "--manifest",
        manifest,
        "--root",
        raw,
        "--out",
        out,
        "--detector",
        "none",
        "--chip-size",
        32,
        "--crop-size",
        16,
        "--workers",
        1,
        *extra,
    ]
