"""``fer report``: one self-contained HTML page of every accuracy table, with its evidence.

The page holds the reference's three tables generalised to any (dataset, target) grid, the
reference's published numbers beside ours, per-cell metrics and confusion matrices (inline SVG),
training curves, preprocessing accounting with contact sheets (base64 PNG), the cross-dataset
label maps and the provenance of every number. It makes no network request and needs no
JavaScript. Python API: :func:`build_report` (returns the HTML) and :func:`main` (the verb).
"""

from __future__ import annotations

import argparse
import re
import sys
from html import unescape
from pathlib import Path

from fer import cliargs
from fer.errors import FerError

DEFAULT_TITLE = "FER: global and ROI features fused CNN — results"


def get_args_parser() -> argparse.ArgumentParser:
    """Command-line options of ``fer report``."""
    p = cliargs.parser(
        "fer report",
        "Render every accuracy table, with confusion matrices, training curves, preprocessing "
        "accounting and provenance, into one self-contained HTML file. A declared result cell "
        "whose file does not exist yet is shown as missing, never as a number.",
    )
    p.add_argument(
        "--cells",
        metavar="JSON|FILE",
        help="result cells: a JSON list (or a file holding one) of objects "
        "{dataset, target, arch, path[, within]}; 'within' defaults to "
        "dataset == target",
    )
    p.add_argument(
        "--results",
        nargs="*",
        default=[],
        metavar="FILE",
        help="result JSONs laid out as results/DATASET/TARGET_ARCH.json, added as "
        "cells (a path that does not exist is a missing cell)",
    )
    p.add_argument(
        "--histories",
        nargs="*",
        default=[],
        metavar="FILE",
        help="training histories models/DATASET/ARCH.history.csv; the ARCH.run.json "
        "beside each is read too",
    )
    p.add_argument(
        "--prepared-summaries",
        nargs="*",
        default=[],
        metavar="FILE",
        help="preprocessing summaries resources/DATASET/prepared/summary.json; the "
        "contact_sheet.png beside each is embedded",
    )
    p.add_argument(
        "--benchmarks",
        nargs="*",
        default=[],
        metavar="FILE",
        help="Snakemake benchmark TSVs benchmarks/RULE/WILDCARDS.tsv (wall time per rule)",
    )
    p.add_argument(
        "--config",
        metavar="FILE|JSON",
        help="the resolved workflow config: a YAML/JSON file, or inline JSON text starting "
        "with '{'; shown in the provenance section",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="where to write the HTML report (written atomically), e.g. reports/all.html",
    )
    p.add_argument("--title", default=DEFAULT_TITLE, help="the page title")
    p.add_argument(
        "--command",
        default="",
        help="the command that built the inputs (the workflow passes its snakemake command "
        "line), shown at the top of the report",
    )
    return p


TITLE_META = re.compile(r'<meta name="fer-title" content="([^"]*)">')


def made_under(path: str | Path) -> str | None:
    """The title a report already at ``path`` was made under (None: no fer report there)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    found = TITLE_META.search(head)
    return unescape(found.group(1)) if found else None


def _existing(paths: list[str], what: str) -> list[Path]:
    for p in paths:
        if not Path(p).is_file():
            raise FerError(f"{p}: {what} not found")
    return [Path(p) for p in paths]


def build_report(
    cells=None,
    results=(),
    histories=(),
    prepared_summaries=(),
    benchmarks=(),
    config=None,
    title: str = DEFAULT_TITLE,
    command: str = "",
) -> str:
    """Load the inputs (see :func:`get_args_parser` for their layout) and return the HTML page.

    ``cells`` is a list of cell declarations or a JSON text / file path holding one.
    """
    from fer.report import inputs, render

    decls = inputs.parse_cells(cells) if isinstance(cells, str) else list(cells or [])
    decls += inputs.cells_from_paths([str(p) for p in results])
    if not decls:
        raise FerError("fer report: no result cells given (use --cells or --results)")
    loaded = [inputs.load_cell(d) for d in decls]
    hist = [inputs.load_history(p) for p in _existing(list(histories), "training history")]
    prep = [inputs.load_prepared(p) for p in _existing(list(prepared_summaries), "summary")]
    bench = [inputs.load_benchmark(p) for p in _existing(list(benchmarks), "benchmark file")]
    conf = inputs.load_config(config) if config else None
    context = render.build_context(loaded, hist, prep, bench, conf, title, command)
    return render.render(context)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fer report``; returns the exit status."""
    from fer.atomic import write_text
    from fer.paths import writable_out

    args = get_args_parser().parse_args(argv)
    read = [*args.results, *args.histories, *args.prepared_summaries, *args.benchmarks]
    for text in (args.cells, args.config):  # a file, or inline JSON
        if text and not text.lstrip().startswith(("{", "[")):
            read.append(text)
    writable_out(args.out, inputs=read)
    html = build_report(
        cells=args.cells,
        results=args.results,
        histories=args.histories,
        prepared_summaries=args.prepared_summaries,
        benchmarks=args.benchmarks,
        config=args.config,
        title=args.title,
        command=args.command,
    )
    replaced = made_under(args.out)
    if replaced is not None and replaced != args.title:
        print(
            f"warning: {args.out} held the report of {replaced!r}; it now holds {args.title!r} "
            "(give each config its own `report:` path to keep both)",
            file=sys.stderr,
        )
    write_text(args.out, html)
    print(f"wrote {args.out} ({len(html.encode('utf-8')) // 1024} KiB)")
    return 0
