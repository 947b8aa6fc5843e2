"""The `fer train` command line: parse the arguments, run the trainer (:mod:`fer.train.loop`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from fer.provenance import resolve_device
from fer.train.data import build_splits
from fer.train.loop import Criterion, build_model, fit
from fer.train.recipe import Recipe, help_text
from fer.train.state import RunState, load_state, remove_state, write_outputs


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


def main(argv: list[str] | None = None) -> int:
    """Entry point of `fer train`; returns 0, or raises FerError on user-fixable problems."""
    from fer.prepared import open_prepared

    args = get_args_parser().parse_args(argv)
    recipe = Recipe.from_json(args.recipe)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = open_prepared(args.prepared)
    train, val = build_splits(data, args.arch, recipe, args.fold)
    sizes = (recipe.face_size or data.face_size, recipe.roi_size or data.roi_size)
    model, optimizer, scheduler = build_model(args.arch, recipe, len(data.classes), sizes, device)
    state_dir = args.state_dir or args.out.parent / ".state" / args.out.stem
    run = RunState(args=args, recipe=recipe, data=data, model=model, optimizer=optimizer,
                   scheduler=scheduler, criterion=Criterion(recipe).to(device),
                   state_dir=state_dir, sizes=sizes, device=device,
                   n_train=len(train), n_val=len(val))  # fmt: skip
    run.ctx = {"device": device, "sizes": sizes, "channels_last": recipe.channels_last,
               "amp": recipe.amp == "bf16", "state_where": "none"}  # fmt: skip
    resumed = load_state(run)
    if resumed:
        print(f"resuming {args.out} after epoch {run.epochs_done} from {run.state_path}",
              file=sys.stderr)  # fmt: skip
    fit(run, data, train, val, progress=not args.no_progress)
    run.model.load_state_dict(run.best_state)
    write_outputs(run, train, val)
    if not args.keep_state:
        remove_state(run)
    print(f"wrote {args.out} (best epoch {run.best_epoch}, {val.name}_acc "
          f"{run.best_acc:.4f})", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    from fer.cli import main as cli_main

    sys.exit(cli_main(["train", *sys.argv[1:]]))
