"""Your own data set in class folders, with no code: the ``folders`` adapter.

Layouts, found in this order:

* split folders: ``<root>/train/<class>/<image>`` and ``<root>/test/<class>/<image>``, with an
  optional ``<root>/val/<class>/`` (also spelled training / testing / valid / validation); without
  ``val`` the workflow carves one from train, grouped by subject;
* one folder of class folders, ``<root>/<class>/<image>``, and a ``split_file`` naming each
  image's split (lines ``<path relative to root>,<train|val|test>``, or the two separated by
  spaces; images it does not list are counted as ``not_in_split_file``); without a split file
  every image is ``train``: give the data set ``kfold: K`` in the config, or no test exists.

Class folders are named by any canonical spelling (``angry``, ``Happiness``, ``sad``, ``SU``:
``fer.labels.SYNONYMS``, case ignored); ``classes`` maps any other name, or skips a folder with
null (its images counted): ``{"joy": "happy", "other": null}``. ``group_pattern`` is a regular
expression searched in each file name whose group ``subject`` (or its first group) is the
subject, e.g. ``"^(S\\d+)_"``: validation and folds then keep a subject on one side.
"""

from __future__ import annotations

import csv
import difflib
import re
from collections import Counter
from pathlib import Path

from fer.data import AdapterResult, Row, register_dataset
from fer.data.listing import (
    SplitFolder,
    find_dir,
    folder_label,
    list_class_folders,
    list_split_folders,
)
from fer.errors import FerError
from fer.labels import CANONICAL, SYNONYMS

SPLITS = [
    SplitFolder("train", ("train", "training")),
    SplitFolder("val", ("val", "valid", "validation"), required=False),
    SplitFolder("test", ("test", "testing"), required=False),
]
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


def labeller(classes: dict, root: Path):
    """``label_of(folder name)``: the ``classes`` option first, then the canonical spellings; an
    unknown name is an error that says how to map it."""
    if not isinstance(classes, dict):
        raise FerError(f"folders: option classes must map folder names to classes, got {classes!r}")
    mapping = {}
    for name, target in classes.items():
        if target is not None and target not in CANONICAL:
            raise FerError(
                f"folders: option classes maps {name!r} to {target!r}; expected one of "
                f"{list(CANONICAL)} or null (skip the folder)"
            )
        mapping[str(name).lower()] = target

    def label_of(folder: str):
        if folder.lower() in mapping:
            return mapping[folder.lower()]
        if name := folder_label(folder):
            return name
        near = difflib.get_close_matches(folder.lower(), list(SYNONYMS), n=1)
        hint = f" (did you mean {SYNONYMS[near[0]]!r}?)" if near else ""
        raise FerError(
            f"{root}: class folder {folder!r} is no class fer knows{hint}; map it with the "
            f'option classes, e.g. {{"{folder}": "happy"}}, or skip it with {{"{folder}": null}}'
        )

    return label_of


def grouper(pattern: str | None):
    """``group_of(file name, folder)`` from the ``group_pattern`` option (None: no subjects)."""
    if not pattern:
        return None
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise FerError(
            f"folders: option group_pattern {pattern!r} is no regular expression ({exc})"
        ) from None
    if regex.groups == 0:
        raise FerError(f"folders: option group_pattern {pattern!r} needs a (group) for the subject")

    def group_of(name: str, folder: Path) -> str:
        match = regex.search(name)
        if not match:
            raise FerError(f"{folder / name}: file name does not match group_pattern {pattern!r}")
        return match.group("subject") if "subject" in regex.groupindex else match.group(1)

    return group_of


def read_split_file(path: Path) -> dict[str, str]:
    """``{relative path: split}`` from a split file (csv or whitespace-separated lines)."""
    if not path.is_file():
        raise FerError(f"{path}: split file not found (option split_file, relative to the root)")
    splits = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = next(csv.reader([text])) if "," in text else text.split()
            if len(fields) != 2 or fields[1].strip().lower() not in SPLIT_NAMES:
                raise FerError(
                    f"{path}, line {number}: expected '<image path>,<train|val|test>', "
                    f"got {text[:80]!r}"
                )
            splits[Path(fields[0].strip()).as_posix()] = SPLIT_NAMES[fields[1].strip().lower()]
    return splits


def apply_split_file(rows: list[Row], splits: dict[str, str], path: Path, skipped: Counter):
    """Give each row its listed split: unlisted rows are counted, listed absent ones an error."""
    absent = sorted(set(splits) - {r.path for r in rows})
    if absent:
        raise FerError(
            f"{path}: lists {len(absent)} image(s) not in the class folders, e.g. {absent[0]!r}"
        )
    kept = []
    for row in rows:
        if row.path in splits:
            row.split = splits[row.path]
            kept.append(row)
        else:
            skipped["not_in_split_file"] += 1
    return kept


@register_dataset(
    title="Class folders",
    classes=CANONICAL,
    size=10_000,
    options={"classes": {}, "split_file": None, "group_pattern": None},
)
def folders(root: Path, options: dict) -> AdapterResult:
    """Your own class folders: train/test split folders, or one folder and a split file."""
    skipped: Counter = Counter()
    label_of, group_of = labeller(options["classes"], root), grouper(options["group_pattern"])
    if find_dir(root, *SPLITS[0].names) is not None:
        if options["split_file"]:
            raise FerError(f"{root}: has split folders; the option split_file is for one folder")
        rows = list_split_folders(root, SPLITS, skipped, label_of, group_of)
        return AdapterResult(rows, skipped)
    rows = list_class_folders(root, root, "train", skipped, label_of, group_of)
    if options["split_file"]:
        path = root / options["split_file"]
        rows = apply_split_file(rows, read_split_file(path), path, skipped)
        if path.parent == root:
            skipped["stray_file"] -= 1  # the split file itself, beside the class folders
    return AdapterResult(rows, skipped)
