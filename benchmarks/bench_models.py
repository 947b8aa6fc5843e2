"""Forward and train-step throughput (img/s) of every registered model, plus GFLOPs per image.

    python benchmarks/bench_models.py                      # batch 16, 224/90, CPU, fp32 + bf16-cl
    python benchmarks/bench_models.py --models roi --iters 5 --device cuda

Train step = forward + loss (CE with label smoothing 0.1; Global-ROI: 1·x + 0.6·x_whole + 1·x_roi)
+ backward + SGD(momentum 0.9, weight decay 1e-4) step, as the reference trainers. Modes: ``fp32``
(contiguous) and ``bf16-cl`` (bf16 autocast, channels_last model and inputs). The reference code's
fp32 CPU train step measured 3.45 img/s (Global-ROI) and 17.4 img/s (Global).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch
import torch.nn.functional as F
from common import add_model_options, start

from fer.models import create_model, example_inputs, gflops_per_image, list_models

LOSS_WEIGHTS = (1.0, 0.6, 1.0)  # reference beta_roi for (x, x_whole, x_roi)


def get_args_parser() -> argparse.ArgumentParser:
    """Command-line flags of the benchmark."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=list_models(), help="models to time")
    p.add_argument(
        "--modes",
        nargs="+",
        default=["fp32", "bf16-cl"],
        choices=["fp32", "bf16-cl"],
        help="precision/layout modes to time",
    )
    add_model_options(p, batch=16)
    p.add_argument("--num-classes", type=int, default=7, help="output classes")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations before timing")
    p.add_argument("--iters", type=int, default=3, help="timed iterations per measurement")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    return p


def _loss(out, target: torch.Tensor) -> torch.Tensor:
    outs = out if isinstance(out, tuple) else (out,)
    return sum(
        w * F.cross_entropy(o, target, label_smoothing=0.1)
        for w, o in zip(LOSS_WEIGHTS, outs, strict=False)
    )


def _timed(step, warmup: int, iters: int, device: str) -> float:
    for _ in range(warmup):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def bench_one(arch: str, mode: str, args: argparse.Namespace) -> dict:
    """Time forward (eval, no grad) and one train step of ``arch`` in ``mode``; one result row."""
    model = create_model(arch, args.num_classes, args.face_size, args.roi_size).to(args.device)
    inputs = example_inputs(model, args.batch_size, device=args.device)
    if mode == "bf16-cl":
        model = model.to(memory_format=torch.channels_last)
        inputs = {k: v.contiguous(memory_format=torch.channels_last) for k, v in inputs.items()}
        autocast = lambda: torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16)  # noqa: E731
    else:
        autocast = contextlib.nullcontext
    target = torch.arange(args.batch_size, device=args.device) % args.num_classes
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def forward():
        with torch.no_grad(), autocast():
            model(**inputs)

    def train_step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = _loss(model(**inputs), target)
        loss.backward()
        opt.step()

    model.eval()
    fwd = _timed(forward, args.warmup, args.iters, args.device)
    model.train()
    step = _timed(train_step, args.warmup, args.iters, args.device)
    return {
        "model": arch,
        "mode": mode,
        "batch": args.batch_size,
        "face": args.face_size,
        "roi": args.roi_size,
        "forward_img_s": args.batch_size / fwd,
        "train_img_s": args.batch_size / step,
    }


def main(argv=None) -> int:
    """Print one row per (model, mode), GFLOPs per image first."""
    args = get_args_parser().parse_args(argv)
    start(args)
    rows = []
    for arch in args.models:
        model = create_model(arch, args.num_classes, args.face_size, args.roi_size)
        params = sum(p.numel() for p in model.parameters())
        print(f"{arch:7s} params {params:,}  GFLOPs/img {gflops_per_image(model):.2f}")
        for mode in args.modes:
            row = bench_one(arch, mode, args)
            rows.append(row)
            print(
                f"{arch:7s} {mode:8s} forward {row['forward_img_s']:8.2f} img/s   "
                f"train step {row['train_img_s']:8.2f} img/s",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
