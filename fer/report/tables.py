"""Arrange result cells into the reference's tables and attach its published numbers.

Tables generalise the reference README: one *within-dataset* table (rows: data sets trained and
tested on themselves) and one *trained on X* table per training set with cross-dataset targets;
columns are architectures in the reference's order (Global-ROI Net, Global Net, fused).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from fer.data import get_adapter, list_datasets
from fer.labels import CANONICAL, PROTOCOLS
from fer.report.inputs import Cell

ARCH_ORDER = ("roi", "global", "fused")
ARCH_TITLES = {"roi": "Global-ROI Net", "global": "Global Net", "fused": "Fused"}


@lru_cache(maxsize=1)
def reference() -> dict:
    """The reference's published numbers (``fer/report/reference.json``)."""
    text = resources.files("fer.report").joinpath("reference.json").read_text(encoding="utf-8")
    return json.loads(text)


def reference_entry(dataset: str, target: str, arch: str) -> dict | None:
    """The published entry for one cell (README % and logged fraction), or ``None``."""
    for entry in reference()["entries"]:
        if (entry["dataset"], entry["target"], entry["arch"]) == (dataset, target, arch):
            return entry
    return None


def reference_rows() -> list[tuple[str, str, dict[str, dict]]]:
    """The published numbers in the reference's layout: (dataset, target, {arch: entry})."""
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for entry in reference()["entries"]:
        rows.setdefault((entry["dataset"], entry["target"]), {})[entry["arch"]] = entry
    return [(d, t, archs) for (d, t), archs in rows.items()]


def dataset_title(name: str, adapter: str | None = None) -> str:
    """Display name of a data set: its adapter's registered title (the name when unregistered)."""
    key = adapter or name
    return get_adapter(key).title if key in list_datasets() else name


def adapter_classes(adapter: str) -> list[str]:
    """The classes a registered adapter can label (none for an unregistered name)."""
    return list(get_adapter(adapter).classes) if adapter in list_datasets() else []


def arch_title(name: str) -> str:
    """Display name of an architecture key."""
    return ARCH_TITLES.get(name, name)


def pct(value, digits: int = 2) -> str:
    """A fraction as a percentage string; an en dash when absent."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "–"
    return f"{100 * value:.{digits}f}"


def slug(*parts: str) -> str:
    """A safe HTML id from free-form parts (user-derived names never reach an id verbatim)."""
    words = (re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-") for p in parts)
    return "-".join(w for w in words if w) or "x"


@dataclass
class CellView:
    """What a table cell shows: our number, its interval, the reference and the difference."""

    cell: Cell
    anchor: str
    ref: dict | None = None
    diff_pp: float | None = None
    diff_basis: str | None = None  # what our side of the difference is, when not the headline
    flags: list[str] = field(default_factory=list)

    @property
    def result(self) -> dict | None:
        return self.cell.result


@dataclass
class Table:
    """One accuracy table: rows of data sets, columns of architectures."""

    title: str
    kind: str  # "within" or "cross"
    dataset: str | None
    archs: list[str]
    rows: list[tuple[str, list[CellView | None]]]


def _flags(cell: Cell) -> list[str]:
    r = cell.result or {}
    flags = []
    if is_selected_on_test(r):
        flags.append("selected on test")
    if r.get("synthetic"):
        flags.append("synthetic")
    if is_authors_weights(r):
        flags.append("authors' weights")
    return flags


def is_authors_weights(result: dict) -> bool:
    """Whether a result scores the authors' released checkpoints (imported, not trained)."""
    checkpoints = (result.get("provenance") or {}).get("checkpoints") or {}
    return any(isinstance(m, dict) and m.get("origin") == "reference" for m in checkpoints.values())


def _protocol_differs(cell: Cell) -> bool:
    protocol = (cell.result or {}).get("protocol") or "shared"
    target = cell.adapters["target"]
    ours = PROTOCOLS.get(protocol, {}).get(target, ())
    return tuple(ours) != tuple(PROTOCOLS["reference"].get(target, ()))


def comparable_accuracy(result: dict) -> tuple[float, str | None]:
    """Our number measured the way the reference measured its own, and how it differs from the
    headline: the mean of the folds (CK+), the lenient any-vote accuracy (FERPlus)."""
    if isinstance(result.get("fold_mean"), (int, float)):
        return result["fold_mean"], "fold mean"
    ferplus = result.get("ferplus") or {}
    if isinstance(ferplus.get("any_vote_accuracy"), (int, float)):
        return ferplus["any_vote_accuracy"], "any-vote rule"
    return result["accuracy"], None


def cell_view(cell: Cell, index: int) -> CellView:
    """Build a cell's view: reference number, difference in percentage points, flags."""
    view = CellView(cell, f"cell-{index}-{slug(cell.dataset, cell.target, cell.arch)}")
    names = cell.adapters  # the published numbers are the adapters' data sets'
    view.ref = reference_entry(names["dataset"], names["target"], cell.arch)
    if cell.result is not None:
        view.flags = _flags(cell)
        if view.ref is not None:
            ours, view.diff_basis = comparable_accuracy(cell.result)
            view.diff_pp = 100 * ours - view.ref["readme_pct"]
            if _protocol_differs(cell):
                view.flags.append("protocol differs from the reference's")
    return view


def is_selected_on_test(result: dict) -> bool:
    """Whether a result (or any checkpoint behind it) was selected on its test split."""
    prov = result.get("provenance") or {}
    if prov.get("selected_on_test") is True or prov.get("selection") in ("test", "mixed"):
        return True
    checkpoints = prov.get("checkpoints") or {}
    return any(isinstance(m, dict) and m.get("selection") == "test" for m in checkpoints.values())


def build_tables(views: list[CellView]) -> list[Table]:
    """Group cell views into the within-dataset table and one table per training set; rows and
    tables keep the order the cells were declared in (the config's)."""
    tables = []
    within = [v for v in views if v.cell.within]
    if within:
        tables.append(_table("Within-dataset accuracy (%)", "within", None, within, "dataset"))
    cross = [v for v in views if not v.cell.within]
    for ds in dict.fromkeys(v.cell.dataset for v in cross):
        mine = [v for v in cross if v.cell.dataset == ds]
        name = dataset_title(ds, mine[0].cell.adapters["dataset"])
        title = f"Cross-dataset accuracy (%), trained on {name}"
        tables.append(_table(title, "cross", ds, mine, "target"))
    return tables


def _arch_rank(arch: str) -> tuple[int, str]:
    return (ARCH_ORDER.index(arch) if arch in ARCH_ORDER else len(ARCH_ORDER), arch)


def _table(title: str, kind: str, dataset, views: list[CellView], row_key: str) -> Table:
    archs = sorted({v.cell.arch for v in views}, key=_arch_rank)
    rows = []
    for key in dict.fromkeys(getattr(v.cell, row_key) for v in views):
        by_arch = {v.cell.arch: v for v in views if getattr(v.cell, row_key) == key}
        rows.append((key, [by_arch.get(a) for a in archs]))
    return Table(title, kind, dataset, archs, rows)


def model_classes(cell: Cell) -> list[str]:
    """The classes of the model behind a cell (checkpoint metadata, else the data set's)."""
    prov = (cell.result or {}).get("provenance") or {}
    for meta in (prov.get("checkpoints") or {}).values():
        if isinstance(meta, dict) and isinstance(meta.get("classes"), list):
            return [str(c) for c in meta["classes"]]
    return adapter_classes(cell.adapters["dataset"])


def label_map(cell: Cell) -> dict:
    """How a cross-dataset cell's classes were matched: one row per canonical class."""
    result = cell.result or {}
    declared = result.get("label_map") if isinstance(result.get("label_map"), dict) else {}
    model = set(declared.get("model_classes") or model_classes(cell))
    registered = adapter_classes(cell.adapters["target"])
    target = set(declared.get("target_classes") or registered or result["classes"])
    scored = set(result.get("classes", []))
    names = [c for c in CANONICAL if c in model | target | scored]
    names += sorted((model | target | scored) - set(names))
    rows = []
    for name in names:
        if name in scored:
            fate = "scored"
        elif name in model and name not in target:
            fate = "logit excluded (target lacks it)"
        elif name in model:
            fate = "dropped by protocol: logit and images excluded"
        else:
            fate = "images excluded (model lacks it)"
        rows.append(
            {
                "name": name,
                "model": name in model,
                "target": name in target,
                "scored": name in scored,
                "fate": fate,
            }
        )
    return {
        "rows": rows,
        "protocol": result.get("protocol") or "shared",
        "declared": result.get("label_map"),
        "excluded": result.get("excluded") or {},
    }
