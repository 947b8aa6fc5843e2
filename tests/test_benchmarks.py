"""Benchmarks run their whole paths: the GPU check (benchmarks/gpu_check.sh) on the CPU with
``--dry``, every section printing its figures and none failing; the preprocessing benchmark
against the reference on a few faces; the predict benchmark at the demo's sizes. Figures are not
asserted (2 shared cores), only their consistency."""

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


def test_predict_benchmark_prints_rates_memory_and_the_fp32_ceiling(tmp_path):
    """bench_predict.py at the demo's sizes on 4 pictures, the networks under onnxruntime: both
    rate lines with the process's peak memory, and the ceiling line whose figures are one
    consistent account (GFLOPS reached = inference images/s × GFLOPs per image)."""
    import json

    figures = tmp_path / "figures.json"
    argv = [sys.executable, str(REPO / "benchmarks" / "bench_predict.py"), "--skip-video"]
    argv += ["--skip-startup", "--n-images", "4", "--batch-size", "2", "--face-size", "48"]
    argv += ["--roi-size", "24", "--stored", "112", "48", "--workers", "0", "--backend", "onnx"]
    argv += ["--json", str(figures)]
    env = {**os.environ, "FER_CACHE": str(tmp_path / "cache")}
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "batch   2 (0 workers, onnx)" in out.stdout
    assert out.stdout.count("; peak RSS ") == 2
    assert "of this machine's fp32 matrix product" in out.stdout
    f = json.loads(figures.read_text())
    c, batched = f["ceiling"], f["batch2"]
    total = sum(c["gflops_per_image"].values())
    assert c["gflops_per_image"]["roi"] > c["gflops_per_image"]["global"] > 0
    assert c["inference_gflops"] == pytest.approx(batched["inference_img_per_s"] * total)
    assert c["networks_ceiling_img_per_s"] == pytest.approx(c["sgemm_gflops"] / total)
    assert batched["peak_rss_mb"] >= f["batch1"]["peak_rss_mb"] > 100


def test_train_benchmark_pairs_fer_with_the_reference_modules():
    """bench_train.py at tiny sizes: fer's fp32 and default steps, the reference's own modules'
    fp32 step (the stand-ins) with both ratios, and the ceiling, for both models."""
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "bench_train.py"),
            *("--steps", "1", "--batch-size", "2", "--threads", "2"),
            *("--face-size", "32", "--roi-size", "16"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    for arch in ("global", "roi"):
        mine = next(i for i, line in enumerate(lines) if line.startswith(f"{arch} "))
        assert "fer default" in lines[mine] and "the fp32 step measured now" in lines[mine]
        assert "the reference's modules, fp32 NCHW" in lines[mine + 1]
        assert "fer default" in lines[mine + 1] and "fer fp32" in lines[mine + 1]
        assert "ceiling" in lines[mine + 2]
