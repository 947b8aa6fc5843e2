"""Helpers shared by the adapters: class-folder listing, case-tolerant folder lookup, csv headers.

Listing uses :func:`os.scandir` only (no stat per file, no decoding), so 32k files take well
under a second.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from fer.data import Row
from fer.errors import FerError
from fer.labels import LabelError, canonical_name

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"})

LabelFn = Callable[[str], str | None]
GroupFn = Callable[[str, Path], str]


def is_image(name: str) -> bool:
    """Whether a file name has an image extension (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTS


def find_dir(parent: Path, *names: str) -> Path | None:
    """The first sub-folder of ``parent`` whose name matches one of ``names``, ignoring case."""
    return _find(parent, names, Path.is_dir)


def find_file(parent: Path, *names: str) -> Path | None:
    """The first file of ``parent`` whose name matches one of ``names``, ignoring case."""
    return _find(parent, names, Path.is_file)


def _find(parent: Path, names: tuple[str, ...], kind: Callable[[Path], bool]) -> Path | None:
    if not parent.is_dir():
        return None
    present = {e.name.lower(): Path(e.path) for e in scan(parent) if kind(Path(e.path))}
    return next((present[n.lower()] for n in names if n.lower() in present), None)


def folder_label(name: str) -> str:
    """Canonical name of a class folder spelled like ``Angry``, ``sadness`` or ``SU``."""
    try:
        return canonical_name(name)
    except LabelError:
        return ""


def scan(folder: str | os.PathLike, skipped: Counter | None = None) -> list[os.DirEntry]:
    """The entries of ``folder``, sorted by name; an unreadable folder is a :class:`FerError`.

    A symlink that loops or points nowhere is left out (counted in ``skipped`` as
    ``broken_link`` when a counter is given): it is neither a file nor a folder to list."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise FerError(f"{folder}: cannot read the folder ({exc.strerror or exc})") from None
    kept = [e for e in entries if _resolvable(e)]
    if skipped is not None and len(kept) < len(entries):
        skipped["broken_link"] += len(entries) - len(kept)
    return kept


def _resolvable(entry: os.DirEntry) -> bool:
    """Whether ``entry`` is a file or folder (after its symlink, if any)."""
    try:
        return not entry.is_symlink() or os.path.exists(entry.path)
    except OSError:
        return False


def list_class_folders(
    root: Path,
    folder: Path,
    split: str,
    skipped: Counter,
    label_of: LabelFn = folder_label,
    group_of: GroupFn | None = None,
) -> list[Row]:
    """List ``folder/<class>/<image>`` as rows of ``split``, paths relative to ``root``.

    ``label_of(folder name)`` gives the canonical name, ``""`` for an unknown folder (an error),
    or ``None`` for a class the caller skips on purpose (its images are counted in ``skipped``
    as ``"class <folder>"``). ``group_of(file name, class folder)`` gives the subject.

    Errors (:class:`FerError`): an unreadable folder, an empty or unknown class folder, no class
    folder at all, two folders spelling one class (``happy`` and ``happiness``). Counted in
    ``skipped``, never silent: files beside the class folders (``stray_file``), files that are not
    images (``not_an_image``), everything inside a folder within a class folder
    (``in_nested_folder``) and symlinks that loop or point nowhere (``broken_link``).
    """
    entries = scan(folder, skipped)
    class_dirs = [e for e in entries if e.is_dir()]
    if not class_dirs:
        raise FerError(f"{folder}: expected one sub-folder per class, found none")
    skipped["stray_file"] += sum(1 for e in entries if not e.is_dir())
    labels = {e.name: label_of(e.name) for e in class_dirs}
    for entry in class_dirs:
        if labels[entry.name] == "":
            raise FerError(f"{entry.path}: unknown class folder {entry.name!r}")
        twins = sorted(n for n, lab in labels.items() if lab and lab == labels[entry.name])
        if len(twins) > 1:
            meaning = labels[entry.name]
            raise FerError(f"{folder}: class folders {twins} all mean {meaning!r}; merge or rename")
    rows: list[Row] = []
    for entry in class_dirs:
        rows += _class_rows(root, entry, labels[entry.name], split, skipped, group_of)
    return rows


def _class_rows(root, entry, label, split, skipped, group_of) -> list[Row]:
    inside = scan(entry.path, skipped)
    for nested in (e for e in inside if e.is_dir()):
        skipped["in_nested_folder"] += sum(len(files) for _, _, files in os.walk(nested.path))
    names = [e.name for e in inside if not e.is_dir()]
    images = [n for n in names if is_image(n)]
    skipped["not_an_image"] += len(names) - len(images)
    if label is None:  # skipped on purpose, empty or not
        if images:
            skipped[f"class {entry.name}"] += len(images)
        return []
    if not images:
        raise FerError(f"{entry.path}: empty class folder (expected image files)")
    rel = Path(entry.path).relative_to(root).as_posix()
    return [
        Row(f"{rel}/{name}", label, split, group_of(name, Path(entry.path)) if group_of else "")
        for name in images
    ]


class SplitFolder(NamedTuple):
    """A split folder: the manifest ``split`` its images get, its spellings, whether required."""

    split: str
    names: tuple[str, ...]
    required: bool = True


def list_split_folders(
    root: Path,
    splits: list[SplitFolder],
    skipped: Counter,
    label_of: LabelFn = folder_label,
    group_of: GroupFn | None = None,
) -> list[Row]:
    """List ``<root>/<split folder>/<class>/<image>`` for each split, e.g. ``train/angry/x.jpg``.

    A folder is found by any of its spellings, ignoring case; a missing required one is a
    :class:`FerError`.
    """
    rows: list[Row] = []
    for split, names, required in splits:
        folder = find_dir(root, *names)
        if folder is None:
            if required:
                raise FerError(f"{root}: expected a {'/'.join(names)} folder of class folders")
            continue
        rows += list_class_folders(root, folder, split, skipped, label_of, group_of)
    return rows


def read_csv(path: Path, expected: tuple[str, ...], header: bool = True) -> Iterator[list[str]]:
    """Yield the data rows of a csv, after checking its header holds the ``expected`` columns.

    With ``header=True`` the first line must hold every expected column (any order; rows are
    then re-ordered to ``expected``). A row with too few fields is a :class:`FerError`.
    """
    if not path.is_file():
        raise FerError(f"{path}: file not found (expected a csv with columns {','.join(expected)})")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        order = list(range(len(expected)))
        if header:
            first = [c.strip() for c in next(reader, [])]
            missing = [c for c in expected if c not in first]
            if missing:
                raise FerError(
                    f"{path}: wrong csv header {','.join(first)!r}; expected columns "
                    f"{','.join(expected)} (missing {','.join(missing)})"
                )
            order = [first.index(c) for c in expected]
        width = max(order) + 1
        for row in reader:
            if not row:
                continue
            if len(row) < width:
                raise FerError(
                    f"{path}, line {reader.line_num}: expected {width} fields, got {len(row)}"
                )
            yield [row[i] for i in order]
