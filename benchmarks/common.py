"""What the model benchmarks share: their size / device / thread options and the header line.

Imported by the scripts beside it (``python benchmarks/bench_x.py`` puts this folder on
``sys.path``); not a benchmark itself.
"""

from __future__ import annotations

import argparse

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
