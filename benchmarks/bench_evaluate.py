"""Evaluation wall time of one table row (global, roi and fused cells of one trained set x target),
before and after prediction records.

Before: each cell runs both networks over the target itself (what every ``evaluate_cell`` job did
before records: ``fer infer`` and the scoring in one job per cell): three inference passes per
model per row. After: ``fer infer`` runs each model once into a record (plus once over the trained
set's validation rows, for the fused weight's choice), and the three cells are scored from it
without torch. Both paths give the same accuracies; the script checks it. Both run in this one
process after a warm-up pass, so the figures leave out what the workflow's separate jobs also
paid before (importing torch and loading the checkpoints three times per row).

Run it in a finished workflow folder (``make report`` leaves the demo's)::

    python benchmarks/bench_evaluate.py --workdir . --dataset demo
    python benchmarks/bench_evaluate.py --workdir WORK --dataset ckplus --subdir seed0 --folds 3

``--folds K`` takes the first K folds of a k-fold set that both models have checkpoints of (each
scores its own fold).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from fer import cliargs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("."), help="a finished workflow folder")
    p.add_argument("--dataset", default="demo", help="the trained set (scored within itself)")
    p.add_argument("--subdir", default="", help="replicate folder under models/SET (seedS)")
    p.add_argument("--folds", type=cliargs.integer(1), help="k-fold: the first K folds only")
    p.add_argument("--bootstrap", type=cliargs.integer(0), default=1000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=cliargs.integer(1), default=os.cpu_count())
    p.add_argument("--repeats", type=cliargs.integer(1), default=3, help="medians of N runs")
    args = p.parse_args(argv)

    import torch

    from fer.contracts import MODELS
    from fer.evaluate import EvaluateJob, InferJob, evaluate
    from fer.evaluate.infer import infer

    torch.set_num_threads(args.threads)
    os.chdir(args.workdir)
    models = Path("models", args.dataset, args.subdir)
    prepared = Path("resources", args.dataset, "prepared")
    found = {
        k: {int(c.stem.split("fold")[1]): c for c in models.glob(f"{k}.fold*.pt")} for k in MODELS
    }
    folds = sorted(set(found["global"]) & set(found["roi"]))[: args.folds]
    if folds:  # k-fold: the first K folds both models have (each scores its own fold)
        ckpts = {k: tuple(found[k][f] for f in folds) for k in MODELS}
    else:
        ckpts = {k: (models / f"{k}.pt",) for k in MODELS}
    for path in (*ckpts["global"], *ckpts["roi"]):
        if not path.is_file():
            sys.exit(f"{path}: not found; run the workflow in {args.workdir} first")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}; "
        f"{args.dataset}: {len(ckpts['global'])} checkpoint(s) per model"
        + (f" (folds {folds})" if folds else "")
    )

    def job(rows: str) -> InferJob:
        run = {"device": args.device, "progress": False}
        return InferJob(args.dataset, args.dataset, prepared, *ckpts.values(), rows, **run)

    def cell(arch: str, record) -> dict:
        boot = args.bootstrap
        return evaluate(EvaluateJob(args.dataset, args.dataset, arch, (record,), bootstrap=boot))

    infer(job("within"))  # torch's first-call set-up is paid here, by neither side

    def old_way():
        return {arch: cell(arch, infer(job("within"))) for arch in ("global", "roi", "fused")}

    def new_way():
        times = [time.perf_counter()]
        record = infer(job("within"))
        times.append(time.perf_counter())
        val = infer(job("val"))
        times.append(time.perf_counter())
        out = {arch: cell(arch, record) for arch in ("global", "roi", "fused")}
        times.append(time.perf_counter())
        return out, record, val, np.diff(times)

    runs_before, runs_after = [], []
    for _ in range(args.repeats):  # alternated, so that load on the machine hits both alike
        start = time.perf_counter()
        before = old_way()
        runs_before.append(time.perf_counter() - start)
        after, record, val, parts = new_way()
        runs_after.append(parts)
    t_before = float(np.median(runs_before))
    t_infer, t_val, t_score = np.median(np.stack(runs_after), axis=0).tolist()
    t_after = t_infer + t_val + t_score

    for arch in after:
        same = after[arch]["confusion_matrix"] == before[arch]["confusion_matrix"]
        if not same or after[arch]["accuracy"] != before[arch]["accuracy"]:
            sys.exit(f"{arch}: the record's cell differs from the in-memory one")
    n = len(record)
    print(
        f"one table row of {args.dataset} ({n} images scored, {len(val)} validation rows), "
        f"median of {args.repeats}:"
    )
    print(f"  before: 3 cells x both models          {t_before:8.2f} s  (6 model passes)")
    print(
        f"  after:  1 record {t_infer:6.2f} s + validation {t_val:5.2f} s + "
        f"3 cells {t_score:5.2f} s = {t_after:6.2f} s  (2 + 2 model passes)"
    )
    print(
        f"  speed-up {t_before / t_after:.2f}x (without the validation pass: "
        f"{t_before / (t_infer + t_score):.2f}x); accuracies identical: "
        + ", ".join(f"{a} {after[a]['accuracy']:.4f}" for a in after)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
