"""The `fer train` command line: parse the arguments, run the trainer (:mod:`fer.train.loop`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fer.train import TrainJob, train
from fer.train.recipe import Recipe, help_text


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """The `fer train` command line."""
    p = argparse.ArgumentParser(
        prog="fer train",
        add_help=add_help,
        description="Train a Global Net or Global-ROI Net from prepared data; writes OUT, its "
        ".history.csv and .run.json.",
        epilog=help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--prepared",
        required=True,
        type=Path,
        help="prepared data folder (resources/{dataset}/prepared)",
    )
    p.add_argument(
        "--arch",
        required=True,
        choices=["global", "roi"],
        help="global: Global Net on all images; roi: Global-ROI Net on images with ROIs",
    )
    p.add_argument(
        "--recipe",
        default="{}",
        help="JSON object of recipe keys (listed below); default: {} (every default)",
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="checkpoint to write, e.g. models/{dataset}/{arch}.pt",
    )
    p.add_argument(
        "--fold",
        type=int,
        default=None,
        help="k-fold data sets: hold out this fold (validation is carved from the "
        "other folds' groups)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="resume state folder (default: <out dir>/.state/<out stem>/)",
    )
    p.add_argument(
        "--device", default="auto", help="auto (cuda when available), cpu, cuda or cuda:N"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--keep-state",
        action="store_true",
        help="keep the resume state after a successful run (default: delete it, it holds "
        "about three copies of the model)",
    )
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
    train(job_from_args(get_args_parser().parse_args(argv)))
    return 0
