"""The hostile-input suite's tools: run a verb as a user would (a subprocess), check that it was
refused in one line, and see that no file appeared or changed where it should not.

docs/safety.md states the five rules; each test module here generates the inputs of one rule
(tables of generators, several variants each) and runs every verb it concerns against them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fakes import fer, make_pair, refused  # noqa: F401 - the suite's tools, here

# the detector and sizes of the hostile suite's models: no detection, so a run is quick
PRE_NONE = {"detector": "none", "padding": 0.25, "chip_size": 48, "crop_size": 24}


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file under ``folders`` with the sha256 of its bytes (symlinks by their target)."""
    out = {}
    for folder in folders:
        for p in sorted(Path(folder).rglob("*")):
            if p.is_symlink():
                out[str(p)] = "-> " + os.readlink(p)
            elif p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            elif p.is_dir():
                out[str(p)] = "dir"
    return out


def face_like(side: int = 64, seed: int = 0) -> np.ndarray:
    """A textured grey picture (not a face; ``--detector none`` takes it whole)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side]
    base = 128 + 60 * np.sin(x / 5.0) * np.cos(y / 7.0) + rng.normal(0, 8, (side, side))
    return np.clip(base, 0, 255).astype(np.uint8)


def save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="session")
def pair(tmp_path_factory) -> Path:
    """A models folder (global.pt, roi.pt, fusion.json) of seeded networks, detector none."""
    from fer.fusion import REFERENCE
    from fer.predict.models import write_fusion

    folder = make_pair(tmp_path_factory.mktemp("hostile-models") / "demo", PRE_NONE)
    write_fusion(folder, REFERENCE, "test")
    return folder


@pytest.fixture
def raw(tmp_path) -> Path:
    """A class-folder data set of textured pictures: happy/ and sad/, three each."""
    root = tmp_path / "raw"
    for k, label in enumerate(("happy", "sad")):
        for i in range(3):
            save(root / label / f"{label}{i}.png", face_like(64, 10 * k + i))
    return root
