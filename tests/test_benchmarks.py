"""Benchmarks run their whole paths: the GPU check (benchmarks/gpu_check.sh) on the CPU with
``--dry``, every section printing its figures and none failing; the preprocessing benchmark
against the reference on a few faces. Figures are not asserted (2 shared cores)."""

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


def test_preprocess_benchmark_prints_the_paired_ratio(shared_data):
    """bench_preprocess.py --reference on a few CK+48 faces: fer's line, the reference's, each
    with its start-up, the box agreement and the ratio with and without start-up."""
    import json

    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "bench_preprocess.py"),
            str(shared_data / "ckplus48"),
            "--limit",
            "6",
            "--workers",
            "1",
            "--reference",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = {line["run"]: line for line in map(json.loads, out.stdout.splitlines())}
    assert list(lines) == ["fer", "reference", "box_agreement", "ratio"]
    for run in ("fer", "reference"):
        assert lines[run]["n"] == 6 and lines[run]["startup_s"] > 0
        assert 0 < lines[run]["faces_per_s_with_startup"] <= lines[run]["faces_per_s"]  # rounded
    assert lines["ratio"]["with_startup"] > 0 and lines["ratio"]["loops_only"] > 0
