"""End-to-end training throughput of `fer train` on real faces (FER2013), data loading included.

Lists ``--data`` (the FER2013 image folders), prepares it once (cached under ``--work``), then runs
``fer train`` for ``--epochs`` and prints, per epoch, the img/s of the training pass (wall time of
the pass: reading the prepared arrays, host-to-device copies, augmentation, forward, backward and
step, so loader stalls count) and, overall, trained images per second of wall time of the whole
``fer train`` process (start-up, validation passes and checkpoint writes included).

Issue 6's GPU check, on one H200: the Global-ROI Net at the reference sizes (face 224, ROI 90),
batch 64, goal >= 4,000 img/s:

    python benchmarks/bench_train_e2e.py --device cuda --arch roi --epochs 3

A CPU smoke run of the same path (tiny sizes, a few steps):

    python benchmarks/bench_train_e2e.py --face-size 48 --roi-size 24 --max-steps 5 --epochs 1
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FER = Path(sys.executable).parent / "fer"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "data" / "fer2013",
        help="FER2013 folder ({train,test}/<class>/*.jpg)",
    )
    p.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/fer-bench-e2e"),
        help="scratch folder (the prepared arrays are cached here)",
    )
    p.add_argument("--arch", default="roi", choices=["global", "roi"], help="model to train")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--epochs", type=int, default=3, help="training epochs")
    p.add_argument("--batch-size", type=int, default=64, help="images per step (reference 64)")
    p.add_argument("--face-size", type=int, default=224, help="face side (prepared and trained)")
    p.add_argument("--roi-size", type=int, default=90, help="ROI side (prepared and trained)")
    p.add_argument(
        "--samples-per-class",
        type=int,
        default=None,
        help="samples per epoch = this x 7 (default: one pass over train)",
    )
    p.add_argument("--max-steps", type=int, default=None, help="cap on steps per epoch")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="prepare processes")
    p.add_argument("--loader-workers", type=int, default=4, help="trainer read-ahead threads")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads of fer train")
    return p


def run(cmd: list, log: Path) -> float:
    """Run ``cmd`` with output to ``log``; returns its wall seconds; exits on failure."""
    t0 = time.perf_counter()
    with log.open("w") as fh:
        rc = subprocess.call([str(c) for c in cmd], stdout=fh, stderr=subprocess.STDOUT)
    if rc != 0:
        sys.exit(
            f"{cmd[1]} failed (exit {rc}); last lines of {log}:\n"
            + "\n".join(log.read_text().splitlines()[-5:])
        )
    return time.perf_counter() - t0


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    manifest = args.work / "manifest.csv"
    if not manifest.is_file():
        s = run(
            [FER, "manifest", "--dataset", "fer2013", "--root", args.data, "--out", manifest],
            args.work / "manifest.log",
        )
        print(f"manifest: {s:.1f} s")
    prepared = args.work / f"prepared_{args.face_size}_{args.roi_size}"
    s = run(
        [
            FER,
            "prepare",
            "--manifest",
            manifest,
            "--root",
            args.data,
            "--out",
            prepared,
            "--detector",
            "none",
            "--chip-size",
            args.face_size,
            "--crop-size",
            args.roi_size,
            "--workers",
            args.workers,
        ],
        args.work / "prepare.log",
    )
    summary = json.loads((prepared / "summary.json").read_text())
    print(
        f"prepare: {s:.1f} s (cached when unchanged), {summary['n_images']} images, "
        f"{summary['n_with_roi']} with ROIs, {summary['faces_per_s']:.0f} faces/s "
        f"when built"
    )
    recipe = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": 0.1,
        "milestones": [max(1, args.epochs - 1)],
        "samples_per_class": args.samples_per_class,
        "max_steps_per_epoch": args.max_steps,
        "amp": "bf16",
        "channels_last": True,
        "workers": args.loader_workers,
        "weights": "none",
        "seed": 0,
    }
    out = args.work / "models" / f"{args.arch}.pt"
    cmd = [
        FER,
        "train",
        "--prepared",
        prepared,
        "--arch",
        args.arch,
        "--out",
        out,
        "--device",
        args.device,
        "--no-progress",
        "--recipe",
        json.dumps(recipe),
    ]
    if args.threads:
        cmd += ["--threads", args.threads]
    wall = run(cmd, args.work / "train.log")
    with open(out.parent / f"{out.stem}.history.csv") as fh:
        rows = list(csv.DictReader(fh))
    hw = json.loads((out.parent / f"{out.stem}.run.json").read_text())["hardware"]
    where = hw.get("gpu") or f"{hw['device']}, {hw['torch_threads']} threads"
    images = 0
    for row in rows:
        n = float(row["img_per_s"]) * float(row["seconds"])
        images += n
        print(
            f"epoch {row['epoch']}: {float(row['img_per_s']):8.1f} img/s training pass "
            f"({n:.0f} images in {float(row['seconds']):.1f} s), "
            f"val_acc {row['val_acc']}"
        )
    print(
        f"{args.arch} face {args.face_size} roi {args.roi_size} batch {args.batch_size} on "
        f"{where}: {images / wall:.1f} img/s over the whole fer train run "
        f"({images:.0f} images, {wall:.1f} s wall incl. start-up and validation)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
