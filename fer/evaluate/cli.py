"""The ``fer evaluate`` command line: score one table cell from the prediction records of
``fer infer``; and the options both evaluation verbs share (:func:`add_cell_args`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fer import cliargs
from fer.atomic import write_json
from fer.contracts import ARCHS
from fer.evaluate.jobs import EvaluateJob
from fer.fusion import REFERENCE
from fer.labels import PROTOCOLS
from fer.paths import writable_out
from fer.progress import say


def add_cell_args(p: argparse.ArgumentParser, out: str) -> None:
    """What ``fer infer`` and ``fer evaluate`` share: the trained set, the target, the
    class-scoring protocol and the file written (``out``: its help)."""
    p.add_argument("--dataset", required=True, help="data set the models were trained on")
    p.add_argument("--target", required=True, help="name of the data set scored (the prepared one)")
    protocol = "class-scoring protocol; reference = JAFFE without neutral"
    p.add_argument("--protocol", default="shared", choices=list(PROTOCOLS), help=protocol)
    p.add_argument("--out", required=True, type=Path, help=out)


def get_args_parser() -> argparse.ArgumentParser:
    """The ``fer evaluate`` command line."""
    p = cliargs.parser(
        "fer evaluate",
        "Score one (train set, target, arch) table cell into a result JSON: global, roi or fused, "
        "within- or cross-dataset, from the prediction records `fer infer` wrote (one per "
        "replicate seed: mean ± std, paired tests). No torch is loaded.",
    )
    add_cell_args(p, "result JSON to write (atomically)")
    p.add_argument("--arch", required=True, choices=ARCHS, help="which arch this result reports")
    records = "prediction records of `fer infer`, one per replicate seed"
    p.add_argument("--predictions", nargs="+", type=Path, required=True, help=records)
    val = (
        "records of `fer infer --validation` (the trained set's validation rows), one per seed: "
        "the fused cell also reports the fusion weight chosen on them"
    )
    p.add_argument("--validation", nargs="+", type=Path, default=[], help=val)
    cliargs.add_fusion_weights(p, REFERENCE, "weights of the fused logits, as roi=W,global=W")
    boot = "bootstrap resamples of accuracy's 95%% interval (0: none)"
    p.add_argument("--bootstrap", type=cliargs.integer(0), default=1000, help=boot)
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--config-hash", default="", help="workflow config hash, for provenance")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fer evaluate``; returns the exit status."""
    from fer.evaluate import evaluate

    args = get_args_parser().parse_args(argv)
    job = EvaluateJob(
        dataset=args.dataset,
        target=args.target,
        arch=args.arch,
        predictions=tuple(args.predictions),
        validation_files=tuple(args.validation),
        protocol=args.protocol,
        fusion=args.fusion_weights,
        bootstrap=args.bootstrap,
        seed=args.seed,
        config_hash=args.config_hash,
    )
    writable_out(args.out, inputs=[*args.predictions, *args.validation])
    result = evaluate(job)
    write_json(args.out, result, indent=1, default=str)
    acc = result["accuracy"]
    say(
        f"{args.dataset} → {args.target} [{args.arch}]: accuracy {acc:.4f} on "
        f"{result['n_images']} images → {args.out}",
        sys.stdout,
    )
    return 0
