"""Train-step throughput of `fer train` at the reference input sizes (face 224, ROI 90).

Runs the trainer's own ``train_one_epoch`` (uint8 batch → on-device augmentation → forward →
loss → backward → SGD step) on synthetic uint8 batches, for both models, in fp32 NCHW and with
fer's default step (``amp: auto`` and ``channels_last: null`` resolved for this machine: bf16 +
channels_last where the CPU computes bf16 natively, fp32 NCHW elsewhere), and prints images per
second. The reference's fp32 step is measured on this machine too, in its own modules (their
offline re-creations in tests/reference_standins: :func:`reference_step`), and fer's default is
given as a ratio to it and to fer's own fp32 NCHW step (the same logits as the reference's, with
fer's kernels: its attention, for one, is torch's fused one where the reference's is matmul +
softmax); :data:`REFERENCE` holds the reference code's own step, run as published on an idle
2-core Xeon (issue 19): 3.05 img/s (Global-ROI Net) and 18.1 img/s (Global Net). ``--bf16``
also times forced bf16 autocast where ``auto`` chose fp32 (emulated bf16: slow; it shows what
``auto`` avoids).

It also prints the machine's ceiling: the matrix-multiply peak (GFLOP/s of a large GEMM, fp32
and bf16) and the img/s a train step would reach if all of its FLOPs (forward GFLOPs x 3: the
backward pass costs about twice the forward) ran at that peak. No code reaches the ceiling; a
goal above it cannot be met by software on this machine.

    python benchmarks/bench_train.py --steps 3 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import add_model_options, gemm_peak, start

from fer.models import create_model, gflops_per_image
from fer.train.loop import Criterion, Step, build_model, train_one_epoch
from fer.train.precision import memory_format, resolve
from fer.train.recipe import Recipe

REFERENCE = {"global": 18.1, "roi": 3.05}  # the reference code's fp32 step, batch 16 (issue 19)
STANDINS = Path(__file__).resolve().parents[1] / "tests" / "reference_standins"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", nargs="+", default=["global", "roi"], help="models to time")
    p.add_argument("--steps", type=int, default=3, help="timed steps per setting (after 1 warm-up)")
    p.add_argument(
        "--bf16",
        action="store_true",
        help="also time forced bf16 autocast where amp: auto chose fp32 (emulated: slow)",
    )
    add_model_options(p, batch=16)
    return p


def batches(n: int, bs: int, face: int, roi: int, classes: int = 7):
    rng = np.random.default_rng(0)
    for _ in range(n):
        b = {
            "face": rng.integers(0, 256, (bs, face, face, 3), dtype=np.uint8),
            "label": rng.integers(0, classes, bs),
        }
        for k in ("eye", "nose", "mouth"):
            b[k] = rng.integers(0, 256, (bs, roi, roi, 3), dtype=np.uint8)
        yield b


def bench(arch: str, amp: str, channels_last: bool | None, args) -> float:
    """Images per second of ``args.steps`` train steps after one warm-up step."""
    recipe = Recipe(amp=amp, channels_last=channels_last, batch_size=args.batch_size)
    device = torch.device(args.device)
    sizes = (args.face_size, args.roi_size)
    model, opt, _ = build_model(arch, recipe, 7, sizes, device)
    crit = Criterion(recipe)
    step = Step.of(recipe, sizes, device)
    gen = torch.Generator(device=device).manual_seed(0)
    bs = args.batch_size
    train_one_epoch(model, crit, opt, batches(1, bs, *sizes), step, 1, gen)
    t0 = time.perf_counter()
    stats = train_one_epoch(model, crit, opt, batches(args.steps, bs, *sizes), step, 1, gen)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return stats["images"] / (time.perf_counter() - t0)


def reference_step(arch: str, args) -> float | None:
    """Images per second of the reference's own fp32 step on this machine: the reference's
    modules (their offline re-creations in tests/reference_standins: the same layers and ops as
    the authors' ``package/``, e.g. attention as matmul + softmax), SGD (momentum 0.9, weight
    decay 1e-4), cross-entropy with label smoothing 0.1 (weights 1 / 0.6 / 1 over the Global-ROI
    Net's three heads), fp32 NCHW, batch ``args.batch_size`` (reference §3.1). Its inputs are float
    tensors made before the clock starts (the reference normalises in its DataLoader workers),
    where fer's step above converts and augments uint8 batches inside it: a ratio against this
    step understates fer's. None where the stand-ins are not beside this script."""
    if not (STANDINS / "package").is_dir():
        return None
    sys.path.insert(0, str(STANDINS))
    try:
        from package.model1 import ResNet
        from package.resnet_cbam import Resnet
    finally:
        sys.path.remove(str(STANDINS))
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = Resnet(7) if arch == "global" else ResNet(7, n_head=8, resnet_cbam=1)
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    ce = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    bs, face, roi = args.batch_size, args.face_size, args.roi_size
    inputs = [torch.randn(bs, 3, face, face, device=device)]
    if arch != "global":
        inputs += [torch.randn(bs, 3, roi, roi, device=device) for _ in range(3)]
    label = torch.randint(0, 7, (bs,), device=device)

    def step() -> None:
        out = model(*inputs)
        heads = zip((1.0, 0.6, 1.0), out, strict=True) if isinstance(out, tuple) else [(1, out)]
        loss = sum(w * ce(o, label) for w, o in heads)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return args.steps * bs / (time.perf_counter() - t0)


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    start(args)
    peak = {
        "fp32": gemm_peak(torch.float32, args.device),
        "bf16": gemm_peak(torch.bfloat16, args.device),
    }
    print(f"GEMM peak: fp32 {peak['fp32']:.3g} GFLOP/s, bf16 {peak['bf16']:.3g} GFLOP/s")
    device = torch.device(args.device)
    chosen = resolve("auto", device)
    layout = memory_format(None, chosen, device)
    default = f"{chosen.name}+{layout.name}"
    print(f"fer's default step: {default} ({chosen.why}; {layout.why})")
    for arch in args.archs:
        fp32 = bench(arch, "none", False, args)
        rates = {chosen.name: bench(arch, "auto", None, args)}
        if args.bf16 and not chosen.bf16:
            rates["bf16"] = bench(arch, "bf16", True, args)
        fast = rates[chosen.name]
        theirs = reference_step(arch, args)
        print(
            f"{arch:6s} fp32 NCHW (fer's step in fp32, measured now) {fp32:7.2f} img/s | "
            f"fer default ({default}) {fast:7.2f} img/s: {fast / fp32:.2f}x the "
            f"fp32 step measured now, {fast / REFERENCE[arch]:.2f}x the reference code's "
            f"{REFERENCE[arch]} img/s",
            flush=True,
        )
        if theirs is not None:
            print(
                f"       the reference's modules, fp32 NCHW, measured now {theirs:7.2f} img/s: "
                f"fer default {fast / theirs:.2f}x, fer fp32 {fp32 / theirs:.2f}x",
                flush=True,
            )
        if "bf16" in rates and not chosen.bf16:
            print(
                f"       forced bf16+channels_last {rates['bf16']:7.2f} img/s: "
                f"{rates['bf16'] / fp32:.2f}x the fp32 step (what amp: auto avoids here)"
            )
        train_gflop = 3 * gflops_per_image(create_model(arch, 7, args.face_size, args.roi_size))
        for name, rate in rates.items():
            ceiling = peak[name] / train_gflop
            print(
                f"       {name} ceiling {ceiling:7.2f} img/s ({train_gflop:.1f} GFLOP/img at "
                f"{peak[name]:.0f} GFLOP/s): reached {rate / ceiling:.0%}, ceiling = "
                f"{ceiling / REFERENCE[arch]:.2f}x reference"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
