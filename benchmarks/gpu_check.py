"""The GPU check: fer's training, evaluation and MTCNN paths on one GPU, in one go, on data it
makes itself (run by ``benchmarks/gpu_check.sh``; ``--dry``: the same path on the CPU, tiny).

It needs only torch, torchvision, numpy and pandas (no dlib, facenet-pytorch weights are used
where installed, no Snakemake, no ``../shared``), and prints, one section each:

1. ``env``: versions, the device, and that fer imports;
2. ``data``: a synthetic prepared folder at the reference sizes (face 224, ROI 90);
3. ``loader``: img/s of the prepared-array loader alone (``fer.train.data.Batches``) per number
   of read-ahead threads;
4. ``step``: train-step img/s of both models (bf16 autocast, channels_last, the trainer's own
   ``train_one_epoch`` with its on-device augmentation), eager and ``torch.compile``d;
5. ``train``: end-to-end ``fer train`` img/s (``fer.train.run_job``: loader, copies, augmentation,
   step, validation, checkpoints), eager and compiled;
6. ``eval``: evaluation img/s (``fer.models.inference.model_logits``) of the trained models;
7. ``parity``: the same weights and inputs on the CPU and the device, fp32 and bf16 logits;
8. ``mtcnn``: fer's batched MTCNN on the device, frames/s, and its boxes against the CPU's.

Peak device memory is printed after each section. A section that fails prints ``FAILED`` with
the error and the others still run; the exit status is the number of failed sections.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from bench_loader import GOAL, loader_rate, write_prepared

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry", action="store_true", help="CPU, tiny sizes and counts: the path only")
    p.add_argument("--device", default=None, help="torch device (default cuda; cpu with --dry)")
    p.add_argument("--rows", type=int, default=None, help="prepared rows (default 8192; dry 224)")
    p.add_argument("--batch-size", type=int, default=64, help="train batch (reference 64)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile runs")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp one)")
    return p


def section(name: str):
    """Decorator: run a section, print its peak device memory; count a failure, go on."""

    def wrap(fn):
        def run(ctx):
            print(f"\n== {name}", flush=True)
            if ctx.cuda:
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            try:
                fn(ctx)
            except Exception as exc:  # report, then the other sections
                ctx.failed.append(name)
                print(f"{name}: FAILED: {type(exc).__name__}: {exc}", flush=True)
                traceback.print_exc(limit=4)
            peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if ctx.cuda else "n/a"
            print(f"{name}: {time.perf_counter() - t0:.1f} s, peak device memory {peak}")

        return run

    return wrap


class Context:
    def __init__(self, args):
        self.args, self.dry = args, args.dry
        self.device = torch.device(args.device or ("cpu" if args.dry else "cuda"))
        self.cuda = self.device.type == "cuda"
        self.face, self.roi = (32, 16) if args.dry else (224, 90)
        self.rows = args.rows or (112 if args.dry else 8192)
        self.batch = 8 if args.dry else args.batch_size
        self.compile = [] if (args.dry or args.no_compile) else ["default"]
        self.work = args.work or Path(tempfile.mkdtemp(prefix="fer-gpu-check-"))
        self.prepared = self.work / "prepared"
        self.failed: list[str] = []
        self.models: dict[str, Path] = {}


@section("env")
def env(ctx: Context):
    import torchvision

    import fer
    import fer.evaluate.infer  # noqa: F401
    import fer.train.loop  # noqa: F401

    print(
        f"python {sys.version.split()[0]}, torch {torch.__version__}, torchvision "
        f"{torchvision.__version__}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"fer {fer.__version__}, {os.cpu_count()} CPUs"
    )
    if ctx.cuda:
        p = torch.cuda.get_device_properties(ctx.device)
        print(
            f"device {p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor},"
            f" bf16 {torch.cuda.is_bf16_supported()}"
        )
    else:
        print(f"device cpu ({torch.get_num_threads()} threads)")
    for name in ("dlib", "facenet_pytorch", "snakemake"):
        try:
            __import__(name)
            print(f"{name}: present")
        except ImportError:
            print(f"{name}: absent (not needed here)")


@section("data")
def data(ctx: Context):
    t0 = time.perf_counter()
    write_prepared(ctx.prepared, ctx.rows, ctx.face, ctx.roi)
    size = sum(p.stat().st_size for p in ctx.prepared.iterdir()) / 2**30
    print(
        f"{ctx.rows} rows, face {ctx.face}, roi {ctx.roi}: {size:.2f} GiB in "
        f"{time.perf_counter() - t0:.1f} s"
    )


@section("loader")
def loader(ctx: Context):
    n = 16 if ctx.dry else 40 * ctx.batch
    for arch in ("global", "roi"):
        loader_rate(ctx.prepared, arch, 2, ctx.batch, 4 * ctx.batch, ctx.cuda)  # page cache warm
        for threads in (1, 2, 4, 8, 16) if not ctx.dry else (0, 2):
            rate = loader_rate(ctx.prepared, arch, threads, ctx.batch, n, ctx.cuda)
            goal = f" ({rate / (2 * GOAL):.2f}x the 2x-goal {2 * GOAL})" if arch == "roi" else ""
            print(f"loader {arch:6s} {threads:2d} threads: {rate:9.0f} img/s{goal}", flush=True)


def step_rate(ctx: Context, arch: str, mode: str) -> tuple[float, float]:
    """(img/s, compile-and-warm-up seconds) of train steps on batches already made."""
    from fer.train.loop import Criterion, Step, build_model, compiled, train_one_epoch
    from fer.train.recipe import Recipe

    recipe = Recipe(batch_size=ctx.batch, compile=mode)
    sizes = (ctx.face, ctx.roi)
    model, opt, _ = build_model(arch, recipe, 7, sizes, ctx.device)
    forward, crit = compiled(model, mode), Criterion(recipe).to(ctx.device)
    step, gen = Step.of(recipe, sizes, ctx.device), torch.Generator(ctx.device).manual_seed(0)
    rng = np.random.default_rng(0)
    made = []
    for _ in range(4):
        b = {
            "face": rng.integers(0, 256, (ctx.batch, ctx.face, ctx.face, 3), dtype=np.uint8),
            "label": rng.integers(0, 7, ctx.batch),
        }
        b |= {
            k: rng.integers(0, 256, (ctx.batch, ctx.roi, ctx.roi, 3), dtype=np.uint8)
            for k in ("eye", "nose", "mouth")
        }
        made.append({k: torch.from_numpy(v).pin_memory() if ctx.cuda else v for k, v in b.items()})
    warm, timed = (2, 3) if ctx.dry else (10, 60)
    t0 = time.perf_counter()
    train_one_epoch(forward, crit, opt, [made[i % 4] for i in range(warm)], step, 1, gen)
    if ctx.cuda:
        torch.cuda.synchronize()
    t1 = time.perf_counter()
    stats = train_one_epoch(forward, crit, opt, [made[i % 4] for i in range(timed)], step, 1, gen)
    if ctx.cuda:
        torch.cuda.synchronize()
    return stats["images"] / (time.perf_counter() - t1), t1 - t0


@section("step")
def steps(ctx: Context):
    for arch in ("global", "roi"):
        for mode in ["none", *ctx.compile]:
            rate, warm = step_rate(ctx, arch, mode)
            print(
                f"step {arch:6s} bf16 channels_last compile={mode:7s}: {rate:8.1f} img/s "
                f"(batch {ctx.batch}; warm-up incl. compile {warm:.1f} s)",
                flush=True,
            )


@section("train")
def train(ctx: Context):
    from fer.train import TrainJob
    from fer.train.loop import run_job
    from fer.train.recipe import Recipe

    for arch in ("global", "roi"):
        for mode in ["none", *ctx.compile]:
            recipe = Recipe(
                epochs=2,
                batch_size=ctx.batch,
                lr=0.01,
                milestones=(1,),
                weights="none",
                samples_per_class=4 if ctx.dry else 3000,
                workers=2 if ctx.dry else 8,
                compile=mode,
                eval_batch_size=2 * ctx.batch,
            )
            out = ctx.work / "models" / f"{arch}.{mode}.pt"
            t0 = time.perf_counter()
            run_job(
                TrainJob(ctx.prepared, arch, out, recipe, device=str(ctx.device), progress=False)
            )
            wall = time.perf_counter() - t0
            hist = pd.read_csv(out.parent / f"{out.stem}.history.csv")
            per_epoch = ", ".join(f"{v:.0f}" for v in hist["img_per_s"])
            images = float((hist["img_per_s"] * hist["seconds"]).sum())
            goal = (
                f"; goal {GOAL}: {hist['img_per_s'].iloc[-1] / GOAL:.2f}x" if arch == "roi" else ""
            )
            print(
                f"fer train {arch:6s} compile={mode:7s}: training pass img/s per epoch "
                f"[{per_epoch}], whole run {images / wall:.0f} img/s ({wall:.1f} s wall, "
                f"val_acc {hist['val_acc'].iloc[-1]:.3f}){goal}",
                flush=True,
            )
            ctx.models.setdefault(arch, out)


@section("eval")
def evaluate(ctx: Context):
    from fer.models.inference import Inference, load_checkpoints, model_logits
    from fer.prepared import open_prepared

    d = open_prepared(ctx.prepared)
    rows = np.arange(len(d.index))
    for arch, path in ctx.models.items():
        (ck,) = load_checkpoints([path], arch)
        arrays = {"face": d.faces, **(d.rois if arch == "roi" else {})}
        run = Inference(ctx.device, 8 if ctx.dry else 256, progress=False, announce=False)
        model_logits(ck, arrays, rows[: 2 * run.batch_size], run)  # warm-up
        t0 = time.perf_counter()
        model_logits(ck, arrays, rows, run)
        rate = len(rows) / (time.perf_counter() - t0)
        print(f"eval {arch:6s}: {rate:8.0f} img/s ({len(rows)} rows, batch {run.batch_size})")


@section("parity")
def parity(ctx: Context):
    from fer.models import create_model
    from fer.models.transforms import eval_transform

    rng = np.random.default_rng(1)
    for arch in ("global", "roi"):
        torch.manual_seed(0)
        model = create_model(arch, 7, ctx.face, ctx.roi, weights=None).eval()
        raw = {"face": rng.integers(0, 256, (16, ctx.face, ctx.face, 3), dtype=np.uint8)}
        if arch == "roi":
            raw |= {
                k: rng.integers(0, 256, (16, ctx.roi, ctx.roi, 3), dtype=np.uint8)
                for k in ("eye", "nose", "mouth")
            }

        def logits(device, bf16, raw=raw, model=model):
            model.to(device)
            x = {
                k: eval_transform(
                    torch.from_numpy(v).to(device), ctx.face if k == "face" else ctx.roi
                )
                for k, v in raw.items()
            }
            with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                z = model(**x)
            return (z[0] if isinstance(z, tuple | list) else z).float().cpu()

        cpu = logits(torch.device("cpu"), False)
        for bf16 in (False, True):
            z = logits(ctx.device, bf16)
            diff = (z - cpu).abs().max().item() / max(cpu.abs().max().item(), 1e-9)
            agree = (z.argmax(1) == cpu.argmax(1)).float().mean().item()
            print(
                f"parity {arch:6s} {ctx.device.type} {'bf16' if bf16 else 'fp32'} vs cpu fp32: max "
                f"|diff| {diff:.2e} of the logits' range, argmax agreement {agree:.0%}"
            )


@section("mtcnn")
def mtcnn(ctx: Context):
    from fer.errors import FerError
    from fer.preprocess import mtcnn as M
    from fer.preprocess.mtcnn_nets import weights_folder
    from fer.preprocess.mtcnn_torch import TorchNets

    try:
        weights_folder()
    except FerError as exc:  # facenet-pytorch absent: no weights to run
        print(f"mtcnn: skipped: {exc}")
        return
    try:
        from skimage.data import astronaut

        frame = astronaut()
    except ImportError:
        print("mtcnn: scikit-image absent: a synthetic frame (no face expected)")
        frame = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    n = 4 if ctx.dry else 256
    frames = np.stack([np.roll(frame, 7 * i, axis=1) for i in range(n)])
    cpu = M.FastMTCNN("cpu", 20).detect(frames[:4])
    det = M.FastMTCNN(str(ctx.device), 20)
    if not ctx.cuda:  # --dry on the CPU: the torch nets a GPU runs, not the NumPy ones
        det.nets = TorchNets("cpu")
    for batch in (1, 16) if ctx.dry else (1, 32, 128):
        det.detect(frames[:batch])
        if ctx.cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        found = [f for s in range(0, n, batch) for f in det.detect(frames[s : s + batch])]
        rate = n / (time.perf_counter() - t0)
        print(
            f"mtcnn {ctx.device.type} batch {batch:3d}: {rate:7.1f} frames/s (512x512)", flush=True
        )
    worst = (
        max(
            float(np.abs(a[:, :4] - b[:, :4]).max())
            if len(a) == len(b) and len(a)
            else float("inf")
            for a, b in zip(found[:4], cpu, strict=True)
        )
        if len(cpu[0])
        else 0.0
    )
    print(
        f"mtcnn boxes {ctx.device.type} vs cpu: {[len(f) for f in cpu]} faces, "
        f"max |diff| {worst:.3f} px"
    )


def main(argv=None) -> int:
    ctx = Context(get_args_parser().parse_args(argv))
    print(
        f"fer GPU check: device {ctx.device}, rows {ctx.rows}, face {ctx.face}, roi {ctx.roi}, "
        f"batch {ctx.batch}, compile {ctx.compile or 'skipped'}; work {ctx.work}"
    )
    for run in (env, data, loader, steps, train, evaluate, parity, mtcnn):
        run(ctx)
    print(f"\nGPU check done: {len(ctx.failed)} failed {ctx.failed}")
    return len(ctx.failed)


if __name__ == "__main__":
    raise SystemExit(main())
