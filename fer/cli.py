"""The ``fer`` command: one verb per pipeline stage, each a module with ``main(argv)``."""

from __future__ import annotations

import argparse
import importlib
import sys

from fer import __version__
from fer.errors import FerError

# verb -> (module, one-line help). Modules are imported only when their verb runs, so that
# ``fer --help`` stays fast (no torch import).
VERBS: dict[str, tuple[str, str]] = {
    "demo": ("fer.demo", "generate the synthetic demo data set (deterministic from a seed)"),
    "manifest": ("fer.data.manifest", "list a data set in its publisher layout into a manifest"),
    "prepare": ("fer.preprocess.prepare", "detect, align and crop ROIs into prepared arrays"),
    "train": ("fer.train.cli", "train a Global Net or Global-ROI Net from prepared data"),
    "evaluate": ("fer.evaluate.cli", "score trained models on a target into a result JSON"),
    "report": ("fer.report", "render the HTML report of every accuracy table"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fer",
        description="Facial expression recognition by global and ROI features fused CNN "
        "(reproducible pipeline). Run `fer <verb> --help` for a verb's options.",
    )
    parser.add_argument("--version", action="version", version=f"fer {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="<verb>")
    for verb, (_, text) in VERBS.items():
        sub.add_parser(verb, help=text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in VERBS:
        parser.parse_args(argv or ["--help"])
        return 2
    verb, rest = argv[0], argv[1:]
    module = importlib.import_module(VERBS[verb][0])
    try:
        return int(module.main(rest) or 0)
    except FerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
