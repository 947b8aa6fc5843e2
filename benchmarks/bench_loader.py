"""Throughput of the prepared-array loader alone (``fer.train.data.Batches``: gather rows of the
memory-mapped arrays into uint8 batches, read ahead by threads), at the reference sizes.

It writes a synthetic prepared folder (face 224, ROIs 90: 223 KB a Global-ROI sample), warms
the page cache, then times ``Batches.iterate`` per number of read-ahead threads for both models,
with no model behind it, and extrapolates to a 16-core machine: the per-thread rate times 16,
capped by this machine's memory-copy bandwidth (a loader can only move bytes that fast).

    python benchmarks/bench_loader.py --threads 1 2
    python benchmarks/bench_loader.py --rows 4096 --batch-size 64 --pin   # pinned (CUDA)

``benchmarks/gpu_check.py`` uses :func:`write_prepared` and :func:`loader_rate`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOAL = 4000  # img/s, the Global-ROI Net end to end on one H200 (issue 19); the loader: 2x that


def write_prepared(out: Path, n: int, face: int = 224, roi: int = 90, seed: int = 0) -> Path:
    """About ``n`` rows of 7 classes (:func:`fer.synthetic.write_prepared`: learnable, every row
    with ROIs, train / val / test 8:1:1)."""
    from fer.synthetic import write_prepared as synthetic

    per_class = -(-n // 7)
    fractions = {"roi_fraction": 1.0, "test_fraction": 0.1, "val_fraction": 0.1}
    return synthetic(out, per_class, chip_size=face, crop_size=roi, seed=seed, **fractions)


def loader_rate(prepared: Path, arch: str, threads: int, batch: int, n: int, pin: bool) -> float:
    """Images per second of ``Batches.iterate`` over ``n`` sampled train rows."""
    from fer.prepared import open_prepared
    from fer.train.data import Batches, make_split
    from fer.train.recipe import Recipe

    data = open_prepared(prepared)
    split = make_split(data, "train", data.rows(split="train"), Recipe())
    order = np.random.default_rng(0).integers(0, len(split), n)
    batches = Batches(data, arch, split, "aligned", pin)
    t0 = time.perf_counter()
    seen = sum(len(b["label"]) for b in batches.iterate(order, batch, threads))
    return seen / (time.perf_counter() - t0)


def copy_bandwidth(megabytes: int = 512, repeat: int = 5) -> float:
    """GB/s of one thread's large memory copy (the bound on any gather)."""
    a = np.ones(megabytes * 2**20, np.uint8)
    b = np.empty_like(a)
    np.copyto(b, a)
    t0 = time.perf_counter()
    for _ in range(repeat):
        np.copyto(b, a)
    return repeat * a.nbytes / (time.perf_counter() - t0) / 1e9


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=4096, help="prepared rows written")
    p.add_argument("--samples", type=int, default=8192, help="rows gathered per timing")
    p.add_argument("--batch-size", type=int, default=64, help="rows per batch (reference 64)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="read-ahead threads")
    p.add_argument("--chip-size", type=int, default=224, help="stored face chip side")
    p.add_argument("--crop-size", type=int, default=90, help="stored ROI crop side")
    p.add_argument("--pin", action="store_true", help="pinned batches (needs CUDA)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fer-bench-loader-") as tmp:
        t0 = time.perf_counter()
        prepared = write_prepared(Path(tmp) / "prepared", args.rows, args.chip_size, args.crop_size)
        sample = {
            "global": 3 * args.chip_size**2,
            "roi": 3 * (args.chip_size**2 + 3 * args.crop_size**2),
        }
        print(
            f"{args.rows} rows written in {time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPUs; "
            f"sample bytes: global {sample['global']}, roi {sample['roi']}",
            flush=True,
        )
        bandwidth = copy_bandwidth()
        print(f"one thread's memory copy: {bandwidth:.1f} GB/s", flush=True)
        for arch in ("global", "roi"):
            loader_rate(prepared, arch, 2, args.batch_size, 4 * args.batch_size, args.pin)  # warm
            rates = {}
            for threads in args.threads:
                rates[threads] = loader_rate(
                    prepared, arch, threads, args.batch_size, args.samples, args.pin
                )
                mb = rates[threads] * sample[arch] / 1e6
                print(
                    f"{arch:6s} {threads:2d} threads: {rates[threads]:8.0f} img/s ({mb:.0f} MB/s)",
                    flush=True,
                )
            per_thread = max(r / max(t, 1) for t, r in rates.items())
            bound = 16 * bandwidth * 1e9 / sample[arch]
            at16 = min(16 * per_thread, bound)
            print(
                f"{arch:6s} 16 cores, extrapolated: {at16:8.0f} img/s (16 x {per_thread:.0f} "
                f"per thread, bandwidth bound {bound:.0f}) = {at16 / (2 * GOAL):.2f}x the "
                f"2x-goal {2 * GOAL} img/s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
