"""Assemble the report's context from loaded inputs and render the one-file HTML page."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
from importlib import metadata

import jinja2

from fer import __version__
from fer.fusion import Fusion
from fer.report import evidence, figures, tables
from fer.report.histories import history_view
from fer.report.inputs import Benchmark, Cell, History

HARDWARE_KEYS = ("hardware", "device", "gpu", "cpu", "host", "hostname")


def environment(adapters: dict[str, str] | None = None) -> jinja2.Environment:
    """The Jinja2 environment over the package's templates, autoescaping every expression;
    ``adapters`` maps data set names to the adapters whose titles the pages show."""
    adapters = adapters or {}
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("fer.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        pct=tables.pct,
        num=fmt_number,
        dataset=lambda name: tables.dataset_title(name, adapters.get(name)),
        arch=tables.arch_title,
    )
    return env


def fmt_number(value) -> str:
    """Compact display of a scalar: thousands separators, 4 significant digits for floats."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "–"}[value]
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return (
            "–"
            if not math.isfinite(value)
            else f"{value:,.4g}"
            if abs(value) >= 1
            else f"{value:.4g}"
        )
    return str(value)


def _scalar(v) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _coverage(key: str, value):
    """Fractions named ``*coverage*`` shown as percentages."""
    if "coverage" in key and isinstance(value, float) and 0 <= value <= 1:
        return f"{100 * value:.2f} %"
    return value


def _scalar_list(v) -> bool:
    return isinstance(v, list) and all(_scalar(x) for x in v)


def _hardware_rows(where: str, record: dict) -> list[tuple[str, str, object]]:
    rows = []
    for key in HARDWARE_KEYS:
        value = record.get(key)
        if isinstance(value, dict):
            rows += [(where, f"{key}.{k}", v) for k, v in value.items()]
        elif value is not None:
            rows.append((where, key, value))
    return rows


def _group_hardware(rows: list[tuple[str, str, object]]) -> list[dict]:
    """One row per (field, value), listing where it was recorded."""
    groups: dict[tuple[str, str], list[str]] = {}
    for where, key, value in rows:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        groups.setdefault((key, text), []).append(where)
    return [{"field": k, "value": v, "where": w} for (k, v), w in groups.items()]


def summary_blocks(summary: dict) -> list[dict]:
    """Lay out a preprocessing summary generically: key/value lists, count bars and matrices."""
    top = [(k, _coverage(k, v)) for k, v in summary.items() if _scalar(v) and k != "dataset"]
    top += [(k, ", ".join(map(str, v))) for k, v in summary.items() if _scalar_list(v)]
    blocks = [{"kind": "kv", "title": "summary", "rows": top}] if top else []
    for key, value in summary.items():
        if _scalar(value) or _scalar_list(value) or key == "dataset" or value == {}:
            continue
        if isinstance(value, dict) and all(_scalar(v) for v in value.values()):
            counts = all(isinstance(v, int) and not isinstance(v, bool) for v in value.values())
            total = sum(value.values()) if counts else 0
            rows = [(k, v, (v / total if total else None)) for k, v in value.items()]
            blocks.append(
                {"kind": "bars" if counts else "kv3", "title": key, "rows": rows, "total": total}
            )
        elif (
            isinstance(value, dict)
            and value
            and all(
                isinstance(v, dict) and all(_scalar(x) for x in v.values()) for v in value.values()
            )
        ):
            cols = list(dict.fromkeys(c for v in value.values() for c in v))
            rows = [(k, [v.get(c) for c in cols]) for k, v in value.items()]
            blocks.append({"kind": "matrix", "title": key, "cols": cols, "rows": rows})
        else:
            blocks.append({"kind": "json", "title": key, "text": json.dumps(value, indent=2)})
    return blocks


def cell_detail(view: tables.CellView) -> dict:
    """Everything shown for one computed cell below the tables."""
    r = view.result
    n = r.get("n_scored") or r.get("n_images")
    return {
        "view": view,
        "r": r,
        "confusion": figures.confusion_figure(list(r["classes"]), r["confusion_matrix"]),
        "per_class": r.get("per_class") or {},
        "roi_subset": r.get("roi_subset") or {},
        "excluded": r.get("excluded") or {},
        "folds": r.get("folds") or [],
        "ferplus": r.get("ferplus"),
        "prov": r.get("provenance") or {},
        "roi_share": (r.get("n_with_roi") / n)
        if isinstance(r.get("n_with_roi"), int) and n
        else None,
        "replicates": r.get("replicates"),
        "gallery": evidence.gallery(view.cell),
    }


def _public(version: str) -> str:
    """A version without its local label: ``2.14.1+cu130`` and ``2.14.1`` are one release."""
    return str(version).split("+", 1)[0]


def _merge_versions(sources: list[dict], mine: dict) -> list[tuple[str, list[str], str | None]]:
    """Per package the distinct releases recorded (local labels such as ``+cu130`` do not make
    a release differ; the fullest spelling is shown) and the report's own."""
    seen: dict[str, list[str]] = {}
    for versions in sources:
        for pkg, ver in (versions or {}).items():
            bucket = seen.setdefault(str(pkg), [])
            same = [i for i, b in enumerate(bucket) if _public(b) == _public(str(ver))]
            if not same:
                bucket.append(str(ver))
            elif len(str(ver)) > len(bucket[same[0]]):
                bucket[same[0]] = str(ver)
    names = sorted(set(seen) | set(mine))
    return [(n, seen.get(n, []), mine.get(n)) for n in names]


def _report_versions() -> dict:
    out = {"python": platform.python_version(), "fer": __version__}
    for pkg in ("jinja2", "torch", "snakemake"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def provenance(cells: list[Cell], histories: list[History]) -> dict:
    """Git SHAs, config hashes, seeds, selections, versions and hardware behind every number."""
    rows, hardware, versions = [], [], []
    for c in cells:
        if c.result is None:
            continue
        p = c.result.get("provenance") or {}
        name = f"{c.dataset} → {c.target} · {tables.arch_title(c.arch)}"
        rows.append(
            {
                "what": name,
                "kind": "result",
                "git_sha": p.get("git_sha"),
                "config_hash": p.get("config_hash"),
                "seed": p.get("seed"),
                "selection": p.get("selection"),
                "on_test": tables.is_selected_on_test(c.result),
            }
        )
        versions.append(p.get("versions") or {})
        hardware += _hardware_rows(name, p)
    for h in histories:
        run = h.run or {}
        name = f"model {h.dataset}/{h.arch}"
        rows.append(
            {
                "what": name,
                "kind": "training",
                "git_sha": run.get("git_sha"),
                "config_hash": run.get("config_hash"),
                "seed": run.get("seed"),
                "selection": run.get("selection"),
                "on_test": run.get("selected_on_test") is True or run.get("selection") == "test",
            }
        )
        versions.append(run.get("versions") or {})
        hardware += _hardware_rows(name, run)
    hardware.append(
        ("this report", "host", f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs)")
    )
    return {
        "rows": rows,
        "hardware": _group_hardware(hardware),
        "versions": _merge_versions(versions, _report_versions()),
    }


def benchmark_view(benchmarks: list[Benchmark]) -> dict:
    """Wall time per rule and per job from Snakemake's benchmark files."""
    jobs, per_rule = [], {}
    for b in benchmarks:
        secs = [float(r["s"]) for r in b.rows if r.get("s") not in (None, "", "NA", "-")]
        mean = sum(secs) / len(secs) if secs else None
        first = b.rows[0] if b.rows else {}
        jobs.append(
            {
                "rule": b.rule,
                "wildcards": b.wildcards,
                "s": mean,
                "hms": first.get("h:m:s", ""),
                "max_rss": first.get("max_rss", ""),
                "mean_load": first.get("mean_load", ""),
                "cpu_time": first.get("cpu_time", ""),
                "repeats": len(b.rows),
            }
        )
        agg = per_rule.setdefault(b.rule, {"rule": b.rule, "jobs": 0, "s": 0.0})
        agg["jobs"] += 1
        agg["s"] += mean or 0.0
    total = sum(a["s"] for a in per_rule.values())
    return {
        "jobs": jobs,
        "rules": sorted(per_rule.values(), key=lambda a: -a["s"]),
        "total": total,
        "span": _span(benchmarks),
    }


def _span(benchmarks: list[Benchmark]) -> float | None:
    """Seconds from the first job's start to the last one's end: a benchmark file is written as
    its job ends, ``s`` after it started (a resumed build's span includes its pauses)."""
    ends, starts = [], []
    for b in benchmarks:
        secs = [float(r["s"]) for r in b.rows if r.get("s") not in (None, "", "NA", "-")]
        end = b.path.stat().st_mtime if b.path.is_file() else None
        if end is not None:
            ends.append(end)
            starts.append(end - (max(secs) if secs else 0.0))
    return max(ends) - min(starts) if ends else None


def label_maps(views: list[tables.CellView]) -> list[dict]:
    """One label map per (training set, cross-dataset target), from its computed cells."""
    out, seen = [], set()
    for v in views:
        c = v.cell
        if c.within or c.result is None or (c.dataset, c.target) in seen:
            continue
        seen.add((c.dataset, c.target))
        out.append({"dataset": c.dataset, "target": c.target, **tables.label_map(c)})
    return out


def _table_order(grid: list[tables.Table]) -> list[tables.CellView]:
    return [v for t in grid for _, row in t.rows for v in row if v is not None]


def adapter_names(cells: list[Cell], histories: list[History], prepared: list) -> dict[str, str]:
    """Data set name -> adapter, from what the inputs record (results, runs, summaries)."""
    names: dict[str, str] = {}
    for c in cells:
        names.setdefault(c.dataset, c.adapters["dataset"])
        names.setdefault(c.target, c.adapters["target"])
    for h in histories:
        adapter = ((h.run or {}).get("checkpoint_meta") or {}).get("adapter")
        if adapter:
            names.setdefault(h.dataset, adapter)
    for p in prepared:
        if p.summary.get("adapter"):
            names.setdefault(p.dataset, str(p.summary["adapter"]))
    return names


def build_context(cells, histories, prepared, benchmarks, config, title, command="") -> dict:
    """The template context: tables, details, figures, provenance and warnings."""
    views = [tables.cell_view(c, i) for i, c in enumerate(cells)]
    hist = [history_view(h) for h in histories]
    grid = tables.build_tables(views)
    synthetic = sorted(
        {c.target for c in cells if (c.result or {}).get("synthetic")}
        | {p.dataset for p in prepared if p.summary.get("synthetic")}
        | {h.dataset for h in histories if (h.run or {}).get("synthetic")}
    )
    on_test = [v for v in views if "selected on test" in v.flags]
    config_data, config_text = config if config else ({}, None)
    evaluate = config_data.get("evaluate")
    return {
        "title": title,
        "command": command,
        "adapters": adapter_names(cells, histories, prepared),
        "fer_version": __version__,
        "generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "tables": grid,
        "evidence": [_table_evidence(t) for t in grid],
        "details": [cell_detail(v) for v in _table_order(grid) if v.result is not None],
        "missing": [v for v in views if v.result is None],
        "on_test": on_test,
        "models_on_test": [h for h in hist if h["selected_on_test"]],
        "synthetic": synthetic,
        "histories": hist,
        "prepared": [{"p": p, "blocks": summary_blocks(p.summary)} for p in prepared],
        "benchmarks": benchmark_view(benchmarks),
        "label_maps": label_maps(views),
        "provenance": provenance(cells, histories),
        "config_text": config_text,
        "fusion": Fusion.from_config(evaluate if isinstance(evaluate, dict) else {}),
        "config_seed": (
            (config_data.get("train") or {}).get("seed")
            if isinstance(config_data.get("train"), dict)
            else None
        ),
        "paper": any(v.ref is not None for v in views),  # a cell the reference published
        "reference": tables.reference(),
        "reference_rows": tables.reference_rows(),
    }


def _table_evidence(table: tables.Table) -> dict:
    """Per row of a table: its paired comparisons and validated fusion, and the fused − global
    confusion difference."""
    rows = []
    for key, row in table.rows:
        paired = evidence.paired_row(row)
        by_arch = {v.cell.arch: v.result for v in row if v is not None and v.result is not None}
        diff = None
        if "fused" in by_arch and "global" in by_arch:
            diff = evidence.confusion_difference(by_arch["fused"], by_arch["global"])
        if paired or diff:
            rows.append({"key": key, "paired": paired, "diff": diff})
    return {"rows": rows}


def render(context: dict) -> str:
    """Render the report page from a context built by :func:`build_context`."""
    env = environment(context.get("adapters"))
    return env.get_template("report.html").render(**context)
