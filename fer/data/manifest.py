"""``fer manifest``: list a data set in its publisher layout into ``manifest.csv`` + summary.

The adapter (:mod:`fer.data`) lists rows with their official splits; this module carves the
validation split from train (unless the set has an official val, or ``--kfold`` is given),
assigns subject-grouped folds for k-fold sets, and writes ``manifest.csv`` and
``manifest.summary.json`` beside it (docs/design.md "Manifest"). :func:`read_manifest` reads them
back, checked, for ``fer prepare``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

from fer import cliargs
from fer.atomic import atomic_write, write_json
from fer.contracts import (
    MANIFEST_COLUMNS,
    MANIFEST_REQUIRED,
    MANIFEST_SUMMARY,
    SPLITS,
    VAL_FRACTION_MAX,
)
from fer.data import AdapterResult, Row, check_root, get_adapter, list_datasets
from fer.data.splits import carve_val, kfold
from fer.errors import FerError, parse_json_object
from fer.labels import CANONICAL
from fer.paths import file_problem, read_small, writable_out

FOLD = re.compile(r"-1|\d{1,3}")  # a manifest's fold: -1 (none) or a fold number


def assign_splits(rows: list[Row], val_fraction: float, k: int | None, seed: int) -> list[int]:
    """Carve val from train or, with ``k``, put every row in train with a fold; returns folds."""
    if k:
        for row in rows:
            row.split = "train"
        return kfold([r.label_name for r in rows], [r.group for r in rows], k, seed)
    if not any(r.split == "val" for r in rows):
        train = [r for r in rows if r.split == "train"]
        mask = carve_val(
            [r.label_name for r in train], [r.group for r in train], val_fraction, seed
        )
        for row, to_val in zip(train, mask, strict=True):
            if to_val:
                row.split = "val"
    return [-1] * len(rows)


def count(keys: list, labels: list[str], classes: list[str]) -> dict[str, dict[str, int]]:
    """``{key: {class: n}}`` over parallel ``keys`` and ``labels``, zeros included."""
    tally = Counter(zip(map(str, keys), labels, strict=True))
    order = sorted({str(k) for k in keys}, key=lambda s: (SPLITS.index(s) if s in SPLITS else 3, s))
    return {k: {c: tally[(k, c)] for c in classes} for k in order}


def build_manifest(
    dataset: str,
    root: Path,
    adapter: str | None = None,
    options: dict | None = None,
    val_fraction: float = 0.1,
    k: int | None = None,
    seed: int = 0,
) -> tuple[list[dict], dict]:
    """Manifest rows (dicts of ``MANIFEST_COLUMNS``) and the summary for one data set."""
    entry = get_adapter(adapter or dataset)
    root = Path(root)
    check_root(dataset, root)
    resolved = entry.resolve_options(options)
    result: AdapterResult = entry.fn(root, resolved)
    rows = result.rows
    beyond = [c for c in result.classes if c not in entry.classes]
    if beyond:
        raise FerError(f"adapter {entry.name}: lists classes {beyond} it did not register")
    unknown = {r.label_name for r in rows} - set(result.classes)
    if unknown or not rows:
        raise FerError(
            f"data set '{dataset}': adapter {entry.name} listed "
            f"{'labels ' + str(sorted(unknown)) if unknown else 'no images'} "
            f"for classes {result.classes}"
        )
    folds = assign_splits(rows, val_fraction, k, seed)
    table = [
        {
            "path": r.path,
            "label": CANONICAL.index(r.label_name),
            "label_name": r.label_name,
            "split": r.split,
            "group": r.group,
            "fold": f,
            "box": r.box,
            "landmarks": r.landmarks,
            "votes": r.votes,
        }
        for r, f in zip(rows, folds, strict=True)
    ]
    summary = {"dataset": dataset, "adapter": entry.name, "root": os.path.abspath(root)}
    summary.update(summarise(rows, folds, result, k))
    summary.update({"seed": seed, "val_fraction": val_fraction, "options": resolved})
    return table, summary


def summarise(rows: list[Row], folds: list[int], result: AdapterResult, k: int | None) -> dict:
    """The summary's classes, counts per split (and per fold), skips, sizes and synthetic flag."""
    labels = [r.label_name for r in rows]
    summary = {
        "classes": list(result.classes),
        "counts": count([r.split for r in rows], labels, result.classes),
        "skipped": {reason: n for reason, n in sorted(result.skipped.items()) if n},
        "kfold": k or None,
        "synthetic": result.synthetic,
        "n_images": len(rows),
        "n_groups": len({r.group for r in rows if r.group}),
    }
    if k:
        summary["fold_counts"] = count(folds, labels, result.classes)
    return summary


def write_manifest(table: list[dict], summary: dict, out: Path) -> Path:
    """Write ``out`` (manifest.csv) and ``manifest.summary.json`` beside it, atomically."""
    out = Path(out)
    summary_path = out.with_name(MANIFEST_SUMMARY)
    with atomic_write(out, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
    write_json(summary_path, summary)
    return summary_path


def read_manifest(path: Path) -> tuple[list[dict[str, str]], dict, str]:
    """The manifest's rows (every column, as strings; the optional columns fer knows added with
    their defaults), its ``manifest.summary.json`` and the csv's sha256. Read with the csv
    module, not pandas: importing pandas took 0.3 s of every ``fer prepare``'s start."""
    path = Path(path)
    problem = file_problem(path)
    if problem:
        hint = " (run `fer manifest` first)" if problem == "file not found" else ""
        raise FerError(f"{path}: manifest {problem}{hint}")
    summary_path = path.with_name(MANIFEST_SUMMARY)
    if not os.path.lexists(summary_path):
        raise FerError(f"{summary_path}: missing manifest summary (expected beside {path.name})")
    try:
        columns, rows, lines = _read_rows(path)
        summary = json.loads(read_small(summary_path, what="manifest summary"))
    except (OSError, ValueError, csv.Error) as exc:  # UnicodeDecodeError is a ValueError
        raise FerError(f"{path}: unreadable manifest ({exc})") from None
    if not rows:
        raise FerError(f"{path}: the manifest lists no images")
    missing = [c for c in MANIFEST_REQUIRED if c not in columns]
    if missing:
        raise FerError(f"{path}: missing columns {missing}; expected {list(MANIFEST_COLUMNS)}")
    if not isinstance(summary, dict) or not isinstance(summary.get("classes"), list):
        raise FerError(f"{summary_path}: expected a 'classes' list")
    defaults = {c: "-1" if c == "fold" else "" for c in MANIFEST_COLUMNS if c not in columns}
    rows = [row | defaults for row in rows]
    check_manifest_values(rows, lines, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return rows, summary, digest


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]], list[int]]:
    """Header, rows (dicts in header order) and each row's line number of a csv; blank lines
    are skipped, a row of another width than the header is refused (ValueError)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        columns = next(reader, [])
        if len(set(columns)) != len(columns):
            raise ValueError(f"a column named twice in its header {','.join(columns)!r}")
        rows, lines = [], []
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(columns):
                raise ValueError(
                    f"line {reader.line_num}: {len(fields)} fields, expected {len(columns)}"
                )
            rows.append(dict(zip(columns, fields, strict=True)))
            lines.append(reader.line_num)
    return columns, rows, lines


def check_manifest_values(rows: list[dict[str, str]], lines: list[int], path: Path) -> None:
    """Each row's split, label (its canonical number and name agreeing) and fold are values fer
    knows; the first wrong one is a FerError naming the csv's line."""
    names = {str(i): name for i, name in enumerate(CANONICAL)}
    checks = (
        ("split", lambda r: r["split"] in SPLITS, f"one of {', '.join(SPLITS)}"),
        (
            "label",
            lambda r: names.get(r["label"], "") == r["label_name"],
            "the canonical number of its label_name (fer.labels.CANONICAL)",
        ),
        ("fold", lambda r: FOLD.fullmatch(r["fold"]), "-1 or a fold number"),
    )
    for column, right, expected in checks:
        for row, line in zip(rows, lines, strict=True):
            if not right(row):
                raise FerError(
                    f"{path}, line {line}: {column} {row[column]!r}; expected {expected}"
                )


def format_table(summary: dict) -> str:
    """A plain-text table of images per class (rows) and split or fold (columns)."""
    counts = summary.get("fold_counts") or summary["counts"]
    heads = [("fold " if "fold_counts" in summary else "") + k for k in counts]
    width = max(len(c) for c in [*summary["classes"], "total"]) + 2
    lines = [f"{'class':<{width}}" + "".join(f"{h:>10}" for h in [*heads, "total"])]
    for c in [*summary["classes"], "total"]:
        cells = [sum(v.values()) if c == "total" else v[c] for v in counts.values()]
        lines.append(f"{c:<{width}}" + "".join(f"{n:>10}" for n in [*cells, sum(cells)]))
    skipped = ", ".join(f"{r} {n}" for r, n in summary["skipped"].items()) or "none"
    lines.append(f"skipped: {skipped}")
    return "\n".join(lines)


def adapters_help() -> str:
    """One line per adapter: its name, description and options with their defaults."""
    lines = ["adapters (--adapter) and their --options:"]
    for name in list_datasets():
        entry = get_adapter(name)
        options = ", ".join(f"{k}={json.dumps(v)}" for k, v in entry.defaults.items()) or "none"
        doc = entry.doc.replace("``", "`")  # the docstring's reST, as plain text
        lines.append(f"  {name:<11} {doc} [options: {options}]")
    return "\n".join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    """The ``fer manifest`` argument parser."""
    p = cliargs.parser(
        "fer manifest",
        "List a data set in its publisher layout into manifest.csv (one row per image: label, "
        "split, subject group, fold) and manifest.summary.json beside it.",
        epilog=adapters_help(),
    )
    p.add_argument("--dataset", required=True, help="data set name (names the manifest)")
    p.add_argument("--adapter", help="the registered adapter that reads it (default: --dataset)")
    root = "the data set's folder, in its publisher layout (only read)"
    p.add_argument("--root", required=True, type=Path, help=root)
    options = 'adapter options as a JSON object, e.g. \'{"images": "aligned"}\''
    p.add_argument("--options", default="{}", help=options)
    val = (
        "fraction of each class of train carved into val, grouped by subject (ignored where "
        "the set has an official val split, and with --kfold)"
    )
    share = cliargs.number(0, VAL_FRACTION_MAX)
    p.add_argument("--val-fraction", type=share, default=0.1, help=val)
    kfold = "subject-grouped k-fold: every row becomes split=train with a fold 0..K-1"
    p.add_argument("--kfold", type=cliargs.integer(2), metavar="K", help=kfold)
    p.add_argument("--seed", type=int, default=0, help="seed of the val carving and the folds")
    out = "manifest.csv to write (the summary goes beside it)"
    p.add_argument("--out", required=True, type=Path, help=out)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``fer manifest``: write the manifest and summary, print the count table."""
    args = get_args_parser().parse_args(argv)
    writable_out(args.out, raw_roots=[args.root])
    writable_out(args.out.with_name(MANIFEST_SUMMARY), raw_roots=[args.root])
    table, summary = build_manifest(
        args.dataset,
        args.root,
        args.adapter,
        parse_json_object(args.options, "--options"),
        args.val_fraction,
        args.kfold,
        args.seed,
    )
    summary_path = write_manifest(table, summary, args.out)
    print(f"{args.dataset}: {len(table)} images -> {args.out} (+ {summary_path.name})")
    print(format_table(summary))
    return 0


if __name__ == "__main__":  # python -m fer.data.manifest: the same as `fer manifest`
    from fer.cli import main as cli_main

    raise SystemExit(cli_main(["manifest", *sys.argv[1:]]))
