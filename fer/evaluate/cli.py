"""The ``fer evaluate`` command line: parse the arguments, load the inputs, score one cell
(from prediction records of ``fer infer``, or from checkpoints run in memory)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fer import cliargs
from fer.atomic import write_json
from fer.contracts import ARCHS
from fer.errors import FerError
from fer.evaluate import EvalCell, evaluate
from fer.labels import PROTOCOLS
from fer.progress import say

DEFAULT_WEIGHTS = "roi=0.55,global=0.45"


def get_args_parser() -> argparse.ArgumentParser:
    """The ``fer evaluate`` command line."""
    p = cliargs.parser(
        "fer evaluate",
        "Score one (train set, target, arch) table cell into a result JSON: global, roi or fused, "
        "within- or cross-dataset, from the prediction records `fer infer` wrote (one per "
        "replicate seed: mean ± std, paired tests) or from checkpoints run here.",
    )
    p.add_argument("--dataset", required=True, help="data set the models were trained on")
    p.add_argument("--target", required=True, help="name of the data set scored (the prepared one)")
    p.add_argument("--arch", required=True, choices=ARCHS, help="which arch this result reports")
    records = "prediction records of `fer infer`, one per replicate seed (no torch is loaded)"
    p.add_argument("--predictions", nargs="+", type=Path, default=[], help=records)
    val = (
        "records of `fer infer --rows val` (the trained set's validation rows), one per seed: "
        "the fused cell also reports the fusion weight chosen on them"
    )
    p.add_argument("--validation", nargs="+", type=Path, default=[], help=val)
    add_model_args(p, "without --predictions: ")
    fusion = "weights of the fused logits, as roi=W,global=W"
    p.add_argument("--fusion-weights", default=DEFAULT_WEIGHTS, help=fusion)
    boot = "bootstrap resamples of accuracy's 95%% interval (0: none)"
    p.add_argument("--bootstrap", type=cliargs.integer(0), default=1000, help=boot)
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--config-hash", default="", help="workflow config hash, for provenance")
    p.add_argument("--out", required=True, type=Path, help="result JSON to write (atomically)")
    return p


def add_model_args(p: argparse.ArgumentParser, prefix: str = "", required: bool = False) -> None:
    """The options that say which models run on which rows (``fer infer``, ``fer evaluate``)."""
    what = prefix + "the target's prepared folder"
    p.add_argument("--prepared", type=Path, required=required, help=what)
    for kind, name in (("global", "Global Net"), ("roi", "Global-ROI Net")):
        what = f"{prefix}{name} checkpoint(s), one per fold for a k-fold target"
        p.add_argument(f"--{kind}-ckpt", nargs="+", type=Path, default=[], help=what)
    within = "within-dataset: score the test split (or each checkpoint's fold), not every row"
    p.add_argument("--within", action="store_true", help=prefix + within)
    protocol = "class-scoring protocol; reference = JAFFE without neutral"
    p.add_argument("--protocol", default="shared", choices=list(PROTOCOLS), help=protocol)
    batch = "images per forward pass"
    p.add_argument("--batch-size", type=cliargs.integer(1), default=64, help=prefix + batch)
    cliargs.add_device(p)
    cliargs.add_no_progress(p)


def parse_weights(text: str) -> dict[str, float]:
    """``"roi=0.55,global=0.45"`` → ``{"roi": 0.55, "global": 0.45}``; both keys required."""
    out: dict[str, float] = {}
    for part in str(text).split(","):
        key, sep, val = part.partition("=")
        try:
            out[key.strip()] = float(val)
        except ValueError:
            sep = ""
        if not sep:
            raise FerError(f"--fusion-weights {text!r}: expected roi=W,global=W with numbers")
    if set(out) != {"roi", "global"}:
        raise FerError(f"--fusion-weights {text!r}: expected exactly the keys roi and global")
    return out


def cell_from_args(args: argparse.Namespace) -> EvalCell:
    """The :class:`EvalCell` a parsed command line asks for."""
    weights = parse_weights(args.fusion_weights)
    if not args.predictions and args.prepared is None:
        raise FerError("give --predictions (records of `fer infer`) or --prepared with checkpoints")
    if args.predictions and (args.prepared or args.global_ckpt or args.roi_ckpt):
        raise FerError("--predictions already hold the models' logits: drop --prepared / --*-ckpt")
    return EvalCell(
        dataset=args.dataset,
        target=args.target,
        arch=args.arch,
        prepared=args.prepared,
        predictions=tuple(args.predictions),
        validation_files=tuple(args.validation),
        global_ckpts=tuple(args.global_ckpt),
        roi_ckpts=tuple(args.roi_ckpt),
        within=args.within,
        protocol=args.protocol,
        fusion=(weights["roi"], weights["global"]),
        bootstrap=args.bootstrap,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
        config_hash=args.config_hash,
        progress=False if args.no_progress else None,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fer evaluate``; returns the exit status."""
    args = get_args_parser().parse_args(argv)
    result = evaluate(cell_from_args(args))
    write_json(args.out, result, indent=1, default=str)
    acc = result["accuracy"]
    say(
        f"{args.dataset} → {args.target} [{args.arch}]: accuracy {acc:.4f} on "
        f"{result['n_images']} images → {args.out}",
        sys.stdout,
    )
    return 0
