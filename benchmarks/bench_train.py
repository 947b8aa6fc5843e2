"""Train-step throughput of `fer train` at the reference input sizes (face 224, ROI 90).

Runs the trainer's own ``train_one_epoch`` (uint8 batch → on-device augmentation → forward →
loss → backward → SGD step) on synthetic uint8 batches, for both models, in fp32 (NCHW) and in
bf16 autocast + channels_last, and prints images per second. Reference code, fp32, these CPUs:
3.45 img/s (Global-ROI Net) and 17.4 img/s (Global Net).

    python benchmarks/bench_train.py --steps 3 --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from fer.recipe import Recipe
from fer.train import Criterion, build_model, train_one_epoch

REFERENCE = {"global": 17.4, "roi": 3.45}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", nargs="+", default=["global", "roi"], help="models to time")
    p.add_argument("--batch-size", type=int, default=16, help="images per train step")
    p.add_argument("--steps", type=int, default=3, help="timed steps per setting (after 1 warm-up)")
    p.add_argument("--face-size", type=int, default=224, help="whole-face input side")
    p.add_argument("--roi-size", type=int, default=90, help="ROI input side")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    return p


def batches(n: int, bs: int, face: int, roi: int, classes: int = 7):
    rng = np.random.default_rng(0)
    for _ in range(n):
        b = {"face": rng.integers(0, 256, (bs, face, face, 3), dtype=np.uint8),
             "label": rng.integers(0, classes, bs)}  # fmt: skip
        for k in ("eye", "nose", "mouth"):
            b[k] = rng.integers(0, 256, (bs, roi, roi, 3), dtype=np.uint8)
        yield b


def bench(arch: str, fast: bool, args) -> float:
    """Images per second of ``args.steps`` train steps after one warm-up step."""
    recipe = Recipe(amp="bf16" if fast else "none", channels_last=fast, batch_size=args.batch_size)
    device = torch.device(args.device)
    sizes = (args.face_size, args.roi_size)
    model, opt, _ = build_model(arch, recipe, 7, sizes, device)
    crit = Criterion(recipe)
    ctx = {"device": device, "sizes": sizes, "channels_last": fast, "amp": fast,
           "state_where": "-"}  # fmt: skip
    gen = torch.Generator(device=device).manual_seed(0)
    bs = args.batch_size
    train_one_epoch(model, crit, opt, batches(1, bs, *sizes), ctx, 1, gen)
    t0 = time.perf_counter()
    stats = train_one_epoch(model, crit, opt, batches(args.steps, bs, *sizes), ctx, 1, gen)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return stats["images"] / (time.perf_counter() - t0)


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"batch {args.batch_size}, face {args.face_size}, roi {args.roi_size}, "
          f"{torch.get_num_threads()} threads, device {args.device}")  # fmt: skip
    for arch in args.archs:
        fp32 = bench(arch, False, args)
        fast = bench(arch, True, args)
        print(f"{arch:6s} fp32 {fp32:7.2f} img/s | bf16+channels_last {fast:7.2f} img/s "
              f"({fast / fp32:.2f}x fp32, {fast / REFERENCE[arch]:.2f}x reference "
              f"{REFERENCE[arch]} img/s)", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
