"""What the model benchmarks share: their size / device / thread options, the header line, and
the machine's matrix-multiply peak (the ceiling their figures are read against).

Imported by the scripts beside it (``python benchmarks/bench_x.py`` puts this folder on
``sys.path``); not a benchmark itself.
"""

from __future__ import annotations

import argparse
import time

import torch

from fer import cliargs


def add_model_options(p: argparse.ArgumentParser, batch: int, device: str = "cpu") -> None:
    """``--batch-size``, ``--face-size`` / ``--roi-size`` (reference 224 / 90), ``--device``,
    ``--threads``."""
    p.add_argument("--batch-size", type=cliargs.integer(1), default=batch, help="images per step")
    cliargs.add_input_sizes(p, "side in pixels (reference 224 / 90)")
    p.add_argument("--device", default=device, help="torch device: cpu, cuda or cuda:N")
    cliargs.add_threads(p)


def start(args: argparse.Namespace) -> None:
    """Apply ``--threads`` and print what the figures below were measured with."""
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, "
        f"batch {args.batch_size}, face {args.face_size}, roi {args.roi_size}",
        flush=True,
    )


def gemm_peak(dtype: torch.dtype, device: str, n: int = 2048, budget_s: float = 2.0) -> float:
    """GFLOP/s of an n x n x n matrix multiply in ``dtype`` (the practical compute peak), timed
    over at most ``budget_s`` seconds of repeats (an emulated dtype takes minutes per product)."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)

    def timed(repeat: int) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeat):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    first = timed(1)  # warm-up, and the size of one product
    repeat = max(1, min(10, int(budget_s / max(first, 1e-9))))
    if first > budget_s:  # too slow to repeat: the warm-up is the measurement
        return 2 * n**3 / first / 1e9
    return 2 * n**3 * repeat / timed(repeat) / 1e9
