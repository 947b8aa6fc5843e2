"""fer against the oldest torch / torchvision its metadata allows (pyproject.toml's floors):
both are installed, exactly at the floors, into a scratch folder put before the venv's
site-packages, and fer imports, trains both models a few steps with `fer train`, runs its MTCNN
and writes checkpoints today's torch loads. The CUDA libraries come from the venv (unused on the
CPU); the pair is 0.5 GB from PyPI (pip's cache keeps it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from fer.models import load_checkpoint
from fer.synthetic import write_prepared

REPO = Path(__file__).resolve().parents[1]


def floors() -> dict[str, str]:
    """{"torch": "2.11", "torchvision": "0.26"}: the ``>=`` bounds of pyproject.toml."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        m = re.fullmatch(r"(torch|torchvision)>=([0-9.]+)", dep.replace(" ", ""))
        if m:
            out[m[1]] = m[2]
    assert set(out) == {"torch", "torchvision"}, deps
    return out


def exact(version: str) -> str:
    """A floor as an exact pin: ``2.11`` → ``2.11.0``."""
    return version if version.count(".") >= 2 else f"{version}.0"


CHECK = """
import json, sys, numpy as np, torch, torchvision
from fer.cli import main
from fer.preprocess.mtcnn import FastMTCNN
from fer.preprocess.mtcnn_torch import TorchNets
out = {"torch": torch.__version__, "torchvision": torchvision.__version__,
       "torch_file": torch.__file__}
prepared, models = sys.argv[1], sys.argv[2]
recipe = json.dumps({"epochs": 1, "batch_size": 8, "max_steps_per_epoch": 2, "workers": 1})
for arch in ("global", "roi"):
    rc = main(["train", "--prepared", prepared, "--arch", arch, "--out", f"{models}/{arch}.pt",
               "--threads", "1", "--no-progress", "--recipe", recipe])
    out[arch] = rc
detector = FastMTCNN("cpu")
detector.nets = TorchNets("cpu")  # the torch nets (a GPU's), not the CPU's NumPy ones
out["mtcnn"] = len(detector.detect(np.zeros((2, 64, 64, 3), np.uint8)))
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_fer_trains_with_the_oldest_torch_the_metadata_allows(tmp_path):
    want = {k: exact(v) for k, v in floors().items()}
    site = tmp_path / "oldest"
    pins = [f"{k}=={v}" for k, v in want.items()]
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    got = subprocess.run([*pip, *pins], capture_output=True, text=True, timeout=900)
    if got.returncode != 0 and "No matching distribution" not in got.stderr:
        pytest.skip(f"could not fetch {pins} (no package index?): {got.stderr[-300:]}")
    assert got.returncode == 0, got.stderr[-2000:]
    prepared = write_prepared(tmp_path / "prepared", n_per_class=6, chip_size=32, crop_size=16)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    run = subprocess.run(
        [sys.executable, "-c", CHECK, str(prepared), str(tmp_path / "models")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["torch_file"].startswith(str(site)), result
    assert result["torch"].split("+")[0] == want["torch"], result
    assert result["torchvision"].split("+")[0] == want["torchvision"], result
    assert result["global"] == 0 and result["roi"] == 0 and result["mtcnn"] == 2, result
    for arch in ("global", "roi"):  # written by the oldest torch, read by today's
        model, meta = load_checkpoint(tmp_path / "models" / f"{arch}.pt")
        run_json = json.loads((tmp_path / "models" / f"{arch}.run.json").read_text())
        assert meta["model"] == arch and run_json["versions"]["torch"].startswith(want["torch"])
