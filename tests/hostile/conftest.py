"""The hostile-input suite's tools: run a verb as a user would (a subprocess), check that it was
refused in one line, and see that no file appeared or changed where it should not.

docs/safety.md states the five rules; each test module here generates the inputs of one rule
(tables of generators, several variants each) and runs every verb it concerns against them."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import BIN
from tests.fakes import make_pair

# the detector and sizes of the hostile suite's models: no detection, so a run is quick
PRE_NONE = {"detector": "none", "padding": 0.25, "chip_size": 48, "crop_size": 24}


def fer(*args, cwd=None, timeout=120, stdin=None, env=None) -> subprocess.CompletedProcess:
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
    """The run exited 2 with exactly one line on stderr after whatever progress it printed,
    ``error: ...`` holding every fragment, and no traceback; returns that line."""
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], r.stderr[-2000:]
    for text in fragments:
        assert text in errors[0], (text, errors[0])
    return errors[0]


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
