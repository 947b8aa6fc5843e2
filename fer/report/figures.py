"""Geometry for the report's inline SVG figures: confusion matrices and training curves.

Functions here compute numbers only (positions, colours, tick labels); the SVG markup is written
by the autoescaped Jinja macros in ``templates/_figures.html``, so no user-derived text is ever
pasted into markup by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

LOW, HIGH = (255, 255, 255), (33, 84, 135)
SERIES_STYLE = {
    "train": {"color": "#d9822b", "dash": ""},
    "val": {"color": "#215487", "dash": ""},
}


def _blend(v: float) -> str:
    r, g, b = (round(lo + (hi - lo) * v) for lo, hi in zip(LOW, HIGH, strict=True))
    return f"rgb({r},{g},{b})"


def confusion_figure(classes: list[str], counts: list[list[float]], cell: int = 46) -> dict:
    """Layout of a row-normalised confusion matrix; each cell carries its share and count."""
    n = len(classes)
    left, top, bottom = 88, 26, 62
    grid = n * cell
    cells = []
    for i, row in enumerate(counts):
        total = sum(row)
        for j, count in enumerate(row):
            share = count / total if total else None
            v = share or 0.0
            cells.append(
                {
                    "x": left + j * cell,
                    "y": top + i * cell,
                    "fill": _blend(v),
                    "ink": "#ffffff" if v > 0.55 else "#1b1b1b",
                    "pct": "–" if share is None else f"{100 * share:.0f}%",
                    "count": f"{int(count)}" if float(count).is_integer() else f"{count:g}",
                    "diag": i == j,
                }
            )
    return {
        "width": left + grid + 12,
        "height": top + grid + bottom,
        "cell": cell,
        "left": left,
        "top": top,
        "grid": grid,
        "cells": cells,
        "rows": [{"name": c, "y": top + (i + 0.5) * cell} for i, c in enumerate(classes)],
        "cols": [{"name": c, "x": left + (j + 0.5) * cell} for j, c in enumerate(classes)],
        "supports": [sum(r) for r in counts],
    }


NEG, POS = (178, 34, 34), (26, 120, 60)


def _diverging(v: float) -> str:
    hi = POS if v >= 0 else NEG
    v = min(abs(v), 1.0)
    r, g, b = (round(255 + (h - 255) * v) for h in hi)
    return f"rgb({r},{g},{b})"


def difference_figure(classes: list[str], diff: list[list[float]], cell: int = 46) -> dict:
    """Layout of a difference of two confusion matrices (counts), coloured by what it means
    for the first: green where it does better (more right on the diagonal, fewer confusions off
    it), red where it does worse; the numbers are the signed count differences."""
    fig = confusion_figure(classes, [[abs(v) for v in row] for row in diff], cell)
    peak = max((abs(v) for row in diff for v in row), default=0.0) or 1.0
    n = len(classes)
    flat = [v for row in diff for v in row]
    for k, (c, v) in enumerate(zip(fig["cells"], flat, strict=True)):
        better = v if k // n == k % n else -v  # a confusion more is worse
        c["fill"] = _diverging(better / peak)
        c["better"] = better
        c["ink"] = "#ffffff" if abs(v) / peak > 0.6 else "#1b1b1b"
        c["pct"] = "0" if v == 0 else f"{v:+g}".replace("-", "−")
        c["count"] = ""
    return fig


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1 if math.isfinite(lo) else 1.0
        lo = lo if math.isfinite(lo) else 0.0
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 10))
    return ticks


def _fmt(v: float) -> str:
    return f"{v:g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


@dataclass
class LinePlot:
    """A small line chart: axes, ticks and one polyline per finite run of points per series."""

    title: str
    width: int = 420
    height: int = 230
    margin: tuple[int, int, int, int] = (26, 14, 38, 52)  # top, right, bottom, left
    x_ticks: list[dict] = field(default_factory=list)
    y_ticks: list[dict] = field(default_factory=list)
    series: list[dict] = field(default_factory=list)
    marks: list[dict] = field(default_factory=list)  # vertical lines: {pos, label, kind}

    @property
    def plot_box(self) -> dict:
        t, r, b, lft = self.margin
        return {"x": lft, "y": t, "w": self.width - lft - r, "h": self.height - t - b}


def line_plot(
    title: str,
    xs: list[float],
    series: dict[str, list[float]],
    scale: float = 1.0,
    y_floor: float | None = None,
    marks: list[tuple[float, str, str]] = (),
) -> LinePlot:
    """Lay out a line chart of ``series`` (name -> values per x) with values times ``scale``;
    ``marks``: (x, label, kind) vertical lines (the chosen epoch, LR steps)."""
    plot = LinePlot(title)
    box = plot.plot_box
    values = [v * scale for vs in series.values() for v in vs if math.isfinite(v)]
    lo = min(values, default=0.0) if y_floor is None else y_floor
    yt = nice_ticks(min(lo, min(values, default=lo)), max(values, default=lo + 1))
    xt = nice_ticks(min(xs, default=0), max(xs, default=1), count=6)
    xt = [t for t in xt if float(t).is_integer()] or xt
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def px(x):
        return box["x"] + (x - x0) / ((x1 - x0) or 1) * box["w"]

    def py(y):
        return box["y"] + box["h"] - (y - y0) / ((y1 - y0) or 1) * box["h"]

    plot.x_ticks = [{"pos": px(t), "label": _fmt(t)} for t in xt]
    plot.marks = [
        {"pos": px(x), "label": label, "kind": kind}
        for x, label, kind in marks
        if math.isfinite(x) and x0 <= x <= x1
    ]
    plot.y_ticks = [{"pos": py(t), "label": _fmt(t)} for t in yt]
    for name, vs in series.items():
        runs, cur = [], []
        for x, v in zip(xs, vs, strict=True):
            if math.isfinite(v) and math.isfinite(x):
                cur.append((px(x), py(v * scale)))
            elif cur:
                runs.append(cur)
                cur = []
        if cur:
            runs.append(cur)
        style = SERIES_STYLE.get(name, {"color": "#555555", "dash": "4 3"})
        plot.series.append(
            {
                "name": name,
                **style,
                "lines": [" ".join(f"{x:.1f},{y:.1f}" for x, y in r) for r in runs if len(r) > 1],
                "dots": [p for r in runs if len(r) == 1 for p in r],
            }
        )
    return plot


def lr_steps(rows: list[dict[str, float]]) -> list[float]:
    """Epochs whose learning rate differs from the epoch before (the LR milestones)."""
    lrs = [(r["epoch"], r.get("lr", math.nan)) for r in rows]
    return [
        e
        for (_, prev), (e, lr) in zip(lrs, lrs[1:], strict=False)
        if math.isfinite(prev) and math.isfinite(lr) and not math.isclose(lr, prev)
    ]


def history_plots(
    rows: list[dict[str, float]], best_epoch: float | None = None, stepwise: bool = True
) -> list[LinePlot]:
    """Loss and accuracy (%) per epoch, train and validation, from a history's rows; the chosen
    epoch and, for a ``stepwise`` schedule (multistep), the LR steps are marked (a cosine or
    one-cycle schedule changes the rate every epoch: no marks)."""
    xs = [r["epoch"] for r in rows]
    marks = [(float(e), "LR step", "lr") for e in lr_steps(rows)] if stepwise else []
    if isinstance(best_epoch, int | float) and best_epoch > 0:
        marks.append((float(best_epoch), "chosen", "best"))
    loss = line_plot(
        "loss",
        xs,
        {"train": [r["train_loss"] for r in rows], "val": [r["val_loss"] for r in rows]},
        y_floor=0.0,
        marks=marks,
    )
    accs = [v for r in rows for v in (r["train_acc"], r["val_acc"]) if math.isfinite(v)]
    scale = 100.0 if accs and max(accs) <= 1.0 else 1.0
    acc = line_plot(
        "accuracy (%)",
        xs,
        {"train": [r["train_acc"] for r in rows], "val": [r["val_acc"] for r in rows]},
        scale=scale,
        marks=marks,
    )
    return [loss, acc]
