"""The GPU check (benchmarks/gpu_check.sh) runs its whole path on the CPU with ``--dry``: every
section prints its figures and none fails. Figures are not asserted (2 shared cores)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("env", "data", "loader", "step", "train", "eval", "parity", "mtcnn")


@pytest.mark.slow
def test_gpu_check_dry_runs_every_section(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "2"}
    out = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry", "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    for name in SECTIONS:
        assert f"\n== {name}\n" in out.stdout, name
        assert f"{name}: FAILED" not in out.stdout
    for line in ("loader roi", "step roi", "fer train roi", "eval roi", "parity roi", "mtcnn cpu"):
        assert line in out.stdout, line
    assert "GPU check done: 0 failed" in out.stdout
    assert (tmp_path / "prepared" / "faces.npy").is_file()
