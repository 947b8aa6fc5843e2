"""The `fer train` command line: parse the arguments, run the trainer (:mod:`fer.train.loop`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fer import cliargs
from fer.contracts import MODELS
from fer.paths import writable_out
from fer.train import train
from fer.train.job import TrainJob
from fer.train.recipe import Recipe, help_text


def get_args_parser() -> argparse.ArgumentParser:
    """The `fer train` command line."""
    p = cliargs.parser(
        "fer train",
        "Train a Global Net or Global-ROI Net from prepared data; writes OUT, its .history.csv "
        "and .run.json. A killed run started again with the same arguments resumes after its "
        "last complete epoch.",
        epilog=help_text(),
    )
    p.add_argument("--prepared", required=True, type=Path, help="resources/DATASET/prepared")
    p.add_argument("--arch", required=True, choices=MODELS, help="Global Net or Global-ROI Net")
    p.add_argument("--recipe", default="{}", help="JSON object of recipe keys (listed below)")
    p.add_argument("--out", required=True, type=Path, help="checkpoint, models/DATASET/ARCH.pt")
    fold = "k-fold data sets: the fold held out (val is carved from the other folds' subjects)"
    p.add_argument("--fold", type=cliargs.integer(0), help=fold)
    state = "resume state folder (default: OUT's folder/.state/OUT's stem/)"
    p.add_argument("--state-dir", type=Path, help=state)
    cliargs.add_device(p)
    cliargs.add_threads(p)
    cliargs.add_no_progress(p)
    keep = "keep the resume state after a successful run (about three copies of the model)"
    p.add_argument("--keep-state", action="store_true", help=keep)
    return p


def job_from_args(args: argparse.Namespace) -> TrainJob:
    """The :class:`TrainJob` a parsed command line asks for."""
    return TrainJob(
        prepared=args.prepared,
        arch=args.arch,
        out=args.out,
        recipe=Recipe.from_json(args.recipe),
        fold=args.fold,
        state_dir=args.state_dir,
        device=args.device,
        threads=args.threads,
        progress=not args.no_progress,
        keep_state=args.keep_state,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of `fer train`; returns 0, or raises FerError on user-fixable problems."""
    job = job_from_args(get_args_parser().parse_args(argv))
    weights = job.recipe.weights
    read = [weights] if weights not in ("none", "imagenet") else []
    for out, what in ((job.out, "--out"), (job.state_folder, "--state-dir")):
        writable_out(out, inputs=read, raw_roots=[job.prepared], what=what)
    train(job)
    return 0
