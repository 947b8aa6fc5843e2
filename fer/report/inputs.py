"""Read the report's inputs from disk: result cells, training histories, preprocessing summaries,
Snakemake benchmark files and the workflow config. Each reader checks what it needs and raises a
:class:`~fer.errors.FerError` naming the file and what was expected; a declared result cell whose
file does not exist yet is kept, as *missing*, so the report never invents a number.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from fer.contracts import HISTORY_COLUMNS
from fer.errors import FerError

# Fields a result JSON must hold for the report to show it (docs/design.md "Result JSON").
RESULT_REQUIRED = ("accuracy", "classes", "confusion_matrix", "n_images")
# Optional fields, filled with these defaults so templates can test them plainly.
RESULT_OPTIONAL = {
    "protocol": None,
    "n_with_roi": None,
    "excluded": {},
    "accuracy_ci95": None,
    "mean_class_accuracy": None,
    "macro_f1": None,
    "per_class": {},
    "roi_subset": {},
    "n_scored": None,
    "warnings": [],
    "full_set_accuracy": None,
    "ferplus": None,
    "folds": None,
    "fold_mean": None,
    "fold_std": None,
    "provenance": {},
    "synthetic": False,
    "label_map": None,
    "replicates": None,
    "paired": [],
    "validated_fusion": None,
}
# the history columns the report plots (needed) and reads as numbers
HISTORY_NEEDED = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")
HISTORY_NUMERIC = tuple(c for c in HISTORY_COLUMNS if c != "validated_on")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_IMAGE_BYTES = 8 * 1024 * 1024


@dataclass
class Cell:
    """One declared (dataset, target, arch) cell and its result, ``None`` while missing."""

    dataset: str
    target: str
    arch: str
    path: Path
    within: bool
    result: dict | None = None

    @property
    def missing(self) -> bool:
        return self.result is None

    @property
    def adapters(self) -> dict[str, str]:
        """The adapter behind each name (the result's record, else the names themselves)."""
        recorded = (self.result or {}).get("adapters") or {}
        return {
            "dataset": recorded.get("dataset") or self.dataset,
            "target": recorded.get("target") or self.target,
        }


@dataclass
class History:
    """One model's training history (``models/{dataset}/{arch}.history.csv``) and its run record."""

    dataset: str
    arch: str
    path: Path
    rows: list[dict]  # numeric columns as floats (NaN where empty), others as text
    run: dict | None = None
    run_path: Path | None = None


@dataclass
class Prepared:
    """One data set's preprocessing summary and its contact sheet (base64 PNG, or ``None``)."""

    dataset: str
    path: Path
    summary: dict
    contact_sheet_b64: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Benchmark:
    """One Snakemake ``benchmark:`` file: rule, wildcards and its measured rows."""

    rule: str
    wildcards: str
    path: Path
    rows: list[dict[str, str]]


def read_json(path: Path, what: str) -> object:
    """Parse a JSON file, raising a FerError that names it and ``what`` it should hold."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise FerError(f"{path}: cannot read {what} ({exc})") from exc
    except json.JSONDecodeError as exc:
        msg = f"{path}: not valid JSON, expected {what} ({exc.msg} at line {exc.lineno})"
        raise FerError(msg) from exc


def parse_cells(spec: str) -> list[dict]:
    """Cell declarations from ``spec``: a JSON list, or the path of a file holding one."""
    text = spec.strip()
    if text.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FerError(f"--cells: not a valid JSON list ({exc.msg})") from exc
        source = "--cells"
    else:
        data, source = read_json(Path(spec), "a JSON list of cells"), spec
    if not isinstance(data, list):
        raise FerError(f"{source}: expected a JSON list of {{dataset, target, arch, path}} objects")
    for i, item in enumerate(data):
        keys = ("dataset", "target", "arch", "path")
        if not isinstance(item, dict) or any(not isinstance(item.get(k), str) for k in keys):
            raise FerError(f"{source}: cell {i} must be an object with string fields {keys}")
    return data


IDENTITY = ("dataset", "target", "arch")


def cells_from_paths(paths: list[str]) -> list[dict]:
    """Cell declarations of result files: the dataset, target and arch each file records, else
    (a file not written yet, or one :func:`check_result` will refuse) those its path names in the
    layout ``results/DATASET/TARGET_ARCH.json``."""
    cells = []
    for p in paths:
        path = Path(p)
        recorded = read_json(path, "a result JSON") if path.is_file() else None
        if isinstance(recorded, dict) and all(isinstance(recorded.get(k), str) for k in IDENTITY):
            cells.append({k: recorded[k] for k in IDENTITY} | {"path": p})
            continue
        target, sep, arch = path.stem.rpartition("_")
        if not sep or not target or not arch or path.suffix != ".json" or not path.parent.name:
            raise FerError(f"{p}: expected a result path like results/DATASET/TARGET_ARCH.json")
        cells.append({"dataset": path.parent.name, "target": target, "arch": arch, "path": p})
    return cells


def load_cell(decl: dict) -> Cell:
    """Load one declared cell; a file that does not exist yet leaves it missing."""
    path = Path(decl["path"])
    within = decl.get("within")
    cell = Cell(
        dataset=decl["dataset"],
        target=decl["target"],
        arch=decl["arch"],
        path=path,
        within=bool(decl["dataset"] == decl["target"] if within is None else within),
    )
    if path.is_file():
        cell.result = check_result(read_json(path, "a result JSON"), path)
        recorded = {k: cell.result.get(k, decl[k]) for k in IDENTITY}
        if recorded != {k: decl[k] for k in IDENTITY}:
            shown = "/".join(str(recorded[k]) for k in IDENTITY)
            wanted = "/".join(decl[k] for k in IDENTITY)
            raise FerError(f"{path}: holds the cell {shown}, but is declared as {wanted}")
        if within is None and isinstance(cell.result.get("within"), bool):
            cell.within = cell.result["within"]
    return cell


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_result(result: object, path: Path) -> dict:
    """Check the fields the report reads from a result JSON (docs/design.md)."""
    if not isinstance(result, dict):
        raise FerError(f"{path}: expected a result JSON object")
    absent = [k for k in RESULT_REQUIRED if k not in result]
    if absent:
        raise FerError(f"{path}: result JSON lacks field(s) {', '.join(absent)}")
    if not _number(result["accuracy"]) or not 0 <= result["accuracy"] <= 1:
        raise FerError(f"{path}: 'accuracy' must be a fraction in [0, 1]")
    classes, cm = result["classes"], result["confusion_matrix"]
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise FerError(f"{path}: 'classes' must be a list of class names, got {classes!r}")
    n = len(classes)
    square = (
        isinstance(cm, list)
        and len(cm) == n
        and all(isinstance(r, list) and len(r) == n and all(_number(v) for v in r) for r in cm)
    )
    if not square:
        raise FerError(f"{path}: 'confusion_matrix' must be {n}x{n} numbers, one row per class")
    ci = result.get("accuracy_ci95")
    if ci is not None and not (isinstance(ci, list) and len(ci) == 2 and all(map(_number, ci))):
        raise FerError(f"{path}: 'accuracy_ci95' must be [low, high]")
    filled = {k: v for k, v in RESULT_OPTIONAL.items()}
    filled.update({k: v for k, v in result.items() if v is not None or k not in RESULT_OPTIONAL})
    for key in ("excluded", "per_class", "roi_subset", "provenance"):
        if not isinstance(filled[key], dict):
            raise FerError(f"{path}: '{key}' must be a JSON object")
    return filled


def _float(value: str, path: Path, column: str) -> float:
    try:
        return float(value) if value not in ("", "NA", "nan", "-") else math.nan
    except ValueError as exc:
        raise FerError(f"{path}: column {column!r} holds {value!r}, expected a number") from exc


def load_history(path: str | Path) -> History:
    """Read a training history (``models/{dataset}/{arch}.history.csv``) and the run record
    beside it (``{arch}.run.json``), which says whose model it is."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            raw = list(reader)
    except OSError as exc:
        raise FerError(f"{path}: cannot read training history ({exc})") from exc
    absent = [c for c in HISTORY_NEEDED if c not in header]
    if absent:
        raise FerError(f"{path}: training history lacks column(s) {', '.join(absent)}")
    rows = [
        {k: _float(v, path, k) if k in HISTORY_NUMERIC else v for k, v in r.items() if k}
        for r in raw
    ]
    stem = path.name.removesuffix(".history.csv")
    run_path = path.with_name(f"{stem}.run.json")
    run = read_json(run_path, "a training run record") if run_path.is_file() else None
    if run is None:  # nothing records whose model this is: the layout models/DATASET/ARCH says
        return History(path.parent.name, stem, path, rows)
    if not isinstance(run, dict):
        raise FerError(f"{run_path}: expected a JSON object (the training run record)")
    dataset = run.get("dataset") or (run.get("recipe") or {}).get("dataset") or path.parent.name
    arch, fold = run.get("arch"), run.get("fold")
    if not (isinstance(dataset, str) and isinstance(arch, str) and arch):
        raise FerError(f"{run_path}: expected the run record's dataset and arch")
    name = arch if fold is None else f"{arch}.fold{fold}"
    if re.fullmatch(r"seed\d+", path.parent.name):  # a replicate: models/SET/seedS/ARCH...
        name = f"{path.parent.name}/{name}"
    return History(dataset, name, path, rows, run, run_path)


def _png_b64(path: Path) -> tuple[str | None, str | None]:
    if not path.is_file():
        return None, f"no contact sheet at {path}"
    data = path.read_bytes()
    if not data.startswith(PNG_MAGIC):
        return None, f"{path} is not a PNG file; not embedded"
    if len(data) > MAX_IMAGE_BYTES:
        return None, f"{path} is {len(data) // 1024} KiB, over the embedding limit; not embedded"
    return base64.b64encode(data).decode("ascii"), None


def load_prepared(path: str | Path) -> Prepared:
    """Read ``resources/{dataset}/prepared/summary.json`` and embed its ``contact_sheet.png``."""
    path = Path(path)
    summary = read_json(path, "a preprocessing summary")
    if not isinstance(summary, dict):
        raise FerError(f"{path}: expected a JSON object (the preprocessing summary)")
    default = path.parent.parent.name if path.parent.name == "prepared" else path.parent.name
    dataset = str(summary.get("dataset") or default)
    b64, note = _png_b64(path.with_name("contact_sheet.png"))
    return Prepared(dataset, path, summary, b64, [note] if note else [])


def load_benchmark(path: str | Path) -> Benchmark:
    """Read a Snakemake benchmark TSV (``benchmarks/{rule}/{wildcards}.tsv``)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter="\t")
            rows = [dict(r) for r in reader]
            header = reader.fieldnames or []
    except OSError as exc:
        raise FerError(f"{path}: cannot read benchmark file ({exc})") from exc
    if "s" not in header:
        raise FerError(f"{path}: expected a Snakemake benchmark TSV with an 's' column")
    parts = path.with_suffix("").parts
    at = max((i for i, p in enumerate(parts) if p == "benchmarks"), default=-1)
    rest = parts[at + 1 :] if at >= 0 else parts[-2:]
    rule, wildcards = (rest[0], "/".join(rest[1:])) if len(rest) > 1 else (rest[0], "")
    return Benchmark(rule, wildcards, path, rows)


def load_config(spec: str | Path) -> tuple[dict, str]:
    """The resolved workflow config: a YAML/JSON file, or inline JSON text starting with ``{``
    (as a Snakemake rule can pass ``json.dumps(config)``); returns (mapping, text as YAML)."""
    import yaml

    text, source = str(spec), "--config"
    if not text.lstrip().startswith("{"):
        source = text
        try:
            text = Path(spec).read_text(encoding="utf-8")
        except OSError as exc:
            raise FerError(f"{spec}: cannot read workflow config ({exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FerError(f"{source}: not valid YAML/JSON, expected the workflow config") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FerError(f"{source}: expected a mapping at the top of the workflow config")
    return data, yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
