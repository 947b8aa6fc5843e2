"""The ``fer evaluate`` command line: parse the arguments, load the inputs, score one cell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fer.atomic import write_json
from fer.errors import FerError
from fer.evaluate.predict import ARCHS, DEFAULT_WEIGHTS, evaluate_cell, load_checkpoints
from fer.labels import PROTOCOLS
from fer.prepared import open_prepared


def get_args_parser() -> argparse.ArgumentParser:
    """The ``fer evaluate`` command line."""
    p = argparse.ArgumentParser(
        prog="fer evaluate",
        description="Score trained models on a target into one result JSON per (train set, "
        "target, arch) cell: global, roi or fused, within- or cross-dataset.",
    )
    p.add_argument("--dataset", required=True, help="data set the models were trained on")
    p.add_argument("--target", required=True, help="name of the data set scored (the prepared one)")
    p.add_argument("--arch", required=True, choices=ARCHS, help="which arch this result reports")
    p.add_argument("--prepared", required=True, type=Path, help="the target's prepared folder")
    p.add_argument(
        "--global-ckpt",
        nargs="+",
        type=Path,
        default=[],
        help="Global Net checkpoint(s), one per fold for k-fold",
    )
    p.add_argument(
        "--roi-ckpt",
        nargs="+",
        type=Path,
        default=[],
        help="Global-ROI Net checkpoint(s), one per fold for k-fold",
    )
    p.add_argument(
        "--within",
        action="store_true",
        help="within-dataset: score the test split (or each checkpoint's fold) "
        "instead of every usable row",
    )
    p.add_argument(
        "--protocol",
        default="shared",
        choices=list(PROTOCOLS),
        help="class-scoring protocol; reference = JAFFE without neutral (default: %(default)s)",
    )
    p.add_argument(
        "--fusion-weights",
        default=DEFAULT_WEIGHTS,
        help="weights of the fused logits, as roi=W,global=W (default: %(default)s)",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="bootstrap resamples for accuracy's 95%% interval, 0 = none (default: %(default)s)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the bootstrap (default: %(default)s)"
    )
    p.add_argument(
        "--batch-size", type=int, default=64, help="images per forward pass (default: %(default)s)"
    )
    p.add_argument(
        "--device",
        default="auto",
        help="torch device; auto = cuda when present (default: %(default)s)",
    )
    p.add_argument("--config-hash", default="", help="workflow config hash, for provenance")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (default: shown on a terminal only)",
    )
    p.add_argument("--out", required=True, type=Path, help="result JSON to write (atomically)")
    return p


def evaluate(args: argparse.Namespace) -> dict:
    """Run one evaluation cell from the command line's arguments; returns the result dict."""
    needs = {"global": ("global",), "roi": ("roi",), "fused": ("global", "roi")}[args.arch]
    given = {"global": args.global_ckpt, "roi": args.roi_ckpt}
    for kind in needs:
        if not given[kind]:
            raise FerError(f"--arch {args.arch} needs --{kind}-ckpt")
    data = open_prepared(args.prepared)
    g, r = load_checkpoints(given["global"], "global"), load_checkpoints(given["roi"], "roi")
    return evaluate_cell(args, data, g, r)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fer evaluate``; returns the exit status."""
    args = get_args_parser().parse_args(argv)
    if args.batch_size < 1 or args.bootstrap < 0:
        raise FerError("--batch-size must be ≥ 1 and --bootstrap ≥ 0")
    result = evaluate(args)
    write_json(args.out, result, indent=1, default=str)
    acc = result["accuracy"]
    print(
        f"{args.dataset} → {args.target} [{args.arch}]: accuracy {acc:.4f} on "
        f"{result['n_images']} images → {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
