"""Data-set adapters: one small module per data set, registered by name (timm's registry shape).

An adapter reads one data set **in its publisher's layout** and lists its images; it never decodes
pixels. It is a function ``adapter(root: Path, options: dict) -> AdapterResult`` registered with
:func:`register_dataset`, together with the facts every stage asks about the data set: its
display title, the canonical classes it can label and its approximate size.
:mod:`fer.data.manifest` calls it, carves the splits and writes the manifest (docs/design.md
"Manifest"); the workflow sizes jobs by it, the report titles tables by it. Adding a data set is
one new module in ``fer/data/sets/`` (found and imported by this package) plus a config entry; see
:mod:`fer.data.sets.demo`.

>>> from fer.data import get_adapter, list_datasets
>>> "rafdb" in list_datasets()
True
"""

from __future__ import annotations

import importlib
import pkgutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer.errors import FerError
from fer.labels import CANONICAL


@dataclass
class Row:
    """One image of a data set: the manifest's columns an adapter knows (docs/design.md)."""

    path: str
    label_name: str
    split: str = "train"
    group: str = ""
    box: str = ""
    landmarks: str = ""
    votes: str = ""


@dataclass
class AdapterResult:
    """What an adapter returns: rows, skipped counts by reason, and the classes it labels.

    ``classes`` defaults to the canonical names present in ``rows``, in canonical order.
    """

    rows: list[Row]
    skipped: Counter = field(default_factory=Counter)
    classes: list[str] | None = None
    synthetic: bool = False

    def __post_init__(self) -> None:
        if self.classes is None:
            present = {r.label_name for r in self.rows}
            self.classes = [c for c in CANONICAL if c in present]


AdapterFn = Callable[[Path, dict], AdapterResult]


@dataclass(frozen=True)
class Adapter:
    """A registered adapter: its function, options and the data set's facts.

    ``title``: display name (report, logs). ``classes``: the canonical classes the reader can
    label, in canonical order (one copy may hold fewer: its manifest summary lists those it has).
    ``size``: approximate number of images, which sizes the workflow's jobs.
    ``reference_order``: the class order of the reference's models trained on this data set
    (their heads' rows), where the reference code gives it; None elsewhere.
    """

    name: str
    fn: AdapterFn
    defaults: dict[str, Any]
    doc: str
    title: str
    classes: tuple[str, ...]
    size: int
    reference_order: tuple[str, ...] | None = None

    def resolve_options(self, options: dict | None) -> dict[str, Any]:
        """Defaults overlaid with ``options``; an unknown key is a :class:`FerError`."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise FerError(f"adapter '{self.name}': unknown option(s) {unknown}; known: {known}")
        return {**self.defaults, **options}

    def __call__(self, root: Path, options: dict | None = None) -> AdapterResult:
        """List the data set at ``root`` (options resolved against the defaults)."""
        check_root(self.name, Path(root))
        return self.fn(Path(root), self.resolve_options(options))


def check_root(dataset: str, root: Path) -> None:
    """A :class:`FerError` unless ``root`` is an existing folder."""
    if not root.exists():
        raise FerError(f"data set '{dataset}': root {root} does not exist")
    if not root.is_dir():
        raise FerError(f"data set '{dataset}': root {root} is not a folder")


_ADAPTERS: dict[str, Adapter] = {}


def register_dataset(
    name: str | None = None,
    *,
    title: str,
    classes: tuple[str, ...],
    size: int,
    options: dict[str, Any] | None = None,
    reference_order: tuple[str, ...] | None = None,
):
    """Decorator registering an adapter under ``name`` (default: the function's name).

    ``title``, ``classes``, ``size`` and ``reference_order`` are the data set's facts (see
    :class:`Adapter`);
    ``options`` the adapter's options with their defaults (``--options`` JSON may set only these).
    """
    unknown = [c for c in classes if c not in CANONICAL]
    if unknown or list(classes) != [c for c in CANONICAL if c in classes]:
        raise ValueError(f"classes {classes!r}: expected canonical names in canonical order")
    if not (isinstance(size, int) and size > 0):
        raise ValueError(f"size {size!r}: expected a positive number of images")

    def wrap(fn: AdapterFn) -> AdapterFn:
        key = name or fn.__name__
        if key in _ADAPTERS:
            raise ValueError(f"data set adapter {key!r} already registered")
        doc = (fn.__doc__ or "").strip().splitlines()
        order = tuple(reference_order) if reference_order else None
        _ADAPTERS[key] = Adapter(
            key, fn, dict(options or {}), doc[0] if doc else "", title, tuple(classes), size, order
        )
        return fn

    return wrap


def get_adapter(name: str) -> Adapter:
    """The registered adapter ``name``; an unknown name is a :class:`FerError` listing the known."""
    if name not in _ADAPTERS:
        raise FerError(f"unknown data set adapter {name!r}; known: {', '.join(list_datasets())}")
    return _ADAPTERS[name]


def list_datasets() -> list[str]:
    """Names of every registered adapter, sorted."""
    return sorted(_ADAPTERS)


def _import_sets() -> None:
    """Import every module of ``fer/data/sets/``: each registers its adapters (stdlib only)."""
    from fer.data import sets

    for module in pkgutil.iter_modules(sets.__path__):
        importlib.import_module(f"{sets.__name__}.{module.name}")


_import_sets()
