"""The ``fer infer`` command line: run both models once over a prepared target and write the
prediction record (:mod:`fer.evaluate.records`) every table cell of it is scored from."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fer import cliargs
from fer.errors import FerError
from fer.evaluate.cli import add_cell_args
from fer.evaluate.jobs import InferJob
from fer.paths import writable_out
from fer.progress import say


def get_args_parser() -> argparse.ArgumentParser:
    """The ``fer infer`` command line."""
    p = cliargs.parser(
        "fer infer",
        "Run a trained Global Net and Global-ROI Net once over a prepared target and write the "
        "per-image record (path, label, ROI status, both models' logits) that `fer evaluate "
        "--predictions` scores the global, roi and fused cells from.",
    )
    add_cell_args(p, "record to write (.npz, atomically)")
    p.add_argument("--prepared", type=Path, required=True, help="the target's prepared folder")
    for kind, name in (("global", "Global Net"), ("roi", "Global-ROI Net")):
        what = f"{name} checkpoint(s), one per fold for a k-fold target"
        p.add_argument(f"--{kind}-ckpt", nargs="+", type=Path, default=[], help=what)
    within = "within-dataset: score the test split (or each checkpoint's fold), not every row"
    p.add_argument("--within", action="store_true", help=within)
    val = (
        "score the rows each checkpoint pair was selected on (the trained set's validation "
        "carve, from the checkpoints' recipes) instead: what the fusion weight is chosen on"
    )
    p.add_argument("--validation", action="store_true", help=val)
    p.add_argument("--batch-size", type=cliargs.integer(1), default=64, help="images per pass")
    cliargs.add_device(p)
    cliargs.add_no_progress(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fer infer``; returns the exit status."""
    from fer.evaluate.infer import infer

    args = get_args_parser().parse_args(argv)
    if args.within and args.validation:
        raise FerError("--within and --validation choose different rows: give one")
    rows = "val" if args.validation else "within" if args.within else "all"
    job = InferJob(
        args.dataset,
        args.target,
        args.prepared,
        tuple(args.global_ckpt),
        tuple(args.roi_ckpt),
        rows,
        args.protocol,
        args.batch_size,
        args.device,
        False if args.no_progress else None,
    )
    writable_out(args.out, inputs=[*args.global_ckpt, *args.roi_ckpt], raw_roots=[args.prepared])
    record = infer(job)
    record.save(args.out)
    note = f" ({record.meta['reason']})" if record.meta["reason"] else ""
    what = f"{args.dataset} → {args.target} [{rows}]: {len(record)} images"
    say(f"{what} → {args.out}{note}", sys.stdout)
    return 0
