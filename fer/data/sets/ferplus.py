"""FERPlus: FER2013 pictures with 10 crowd votes each, as the csv pair or the publisher's folders.

Layouts, detected in this order:

* csv pair: ``<root>/fer2013new.csv`` (``Usage,Image name,neutral,happiness,surprise,sadness,
  anger,disgust,fear,contempt,unknown,NF``) next to the Kaggle ``fer2013.csv`` (same row order,
  which is checked); a row's path is ``csv:fer2013.csv#<row>``. Usage Training → train,
  PublicTest → val, PrivateTest → test. Rows with an empty ``Image name`` (dropped by the
  publisher) are counted as ``no_image_name``.
* folders: ``FER2013Train/``, ``FER2013Valid/`` (→ val), ``FER2013Test/``, each with
  ``ferXXXXXXX.png`` files and a ``label.csv`` of rows ``<png>,"(0, 0, 48, 48)",<10 votes>``.

``votes`` is written in canonical order (``n_neutral;n_happy;…;n_contempt``). The label is the
majority vote: the most-voted of the 10 columns. Ties go to the first column in the publisher's
order (``np.argmax`` in the FERPlus scripts) unless option ``ties`` is ``drop`` (then counted as
``tied_majority``). Rows whose majority is ``unknown`` or ``NF`` are dropped and counted
(``majority_unknown``, ``majority_not_face``), as are rows without any vote (``no_votes``).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from fer.data import AdapterResult, Row, register_dataset
from fer.data.listing import find_dir, find_file, read_csv, scan
from fer.errors import FerError
from fer.labels import CANONICAL, canonical_name

# The vote columns, in the publisher's csv order (the last two are not classes).
VOTE_COLUMNS = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
EMOTIONS = VOTE_COLUMNS[:8]
TO_CANONICAL = [
    EMOTIONS.index(next(e for e in EMOTIONS if canonical_name(e) == c)) for c in CANONICAL
]  # canonical position -> publisher column
USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
FOLDERS = {"train": ("FER2013Train",), "val": ("FER2013Valid",), "test": ("FER2013Test",)}
DROP_REASON = {"unknown": "majority_unknown", "NF": "majority_not_face"}


def parse_votes(where: str, fields: list[str]) -> list[int]:
    """The 10 vote counts of a row (publisher order); anything else is a :class:`FerError`."""
    try:
        votes = [int(float(v)) for v in fields]
    except ValueError:
        votes = []
    if len(votes) != len(VOTE_COLUMNS) or min(votes) < 0:
        raise FerError(
            f"{where}: expected {len(VOTE_COLUMNS)} vote counts "
            f"({','.join(VOTE_COLUMNS)}), got {fields!r}"
        )
    return votes


def majority(votes: list[int], ties: str) -> tuple[str, str]:
    """(canonical label, "") of the majority vote, or ("", skip reason) when it is dropped."""
    top = max(votes)
    if top == 0:
        return "", "no_votes"
    if ties == "drop" and votes.count(top) > 1:
        return "", "tied_majority"
    column = VOTE_COLUMNS[votes.index(top)]
    if column in DROP_REASON:
        return "", DROP_REASON[column]
    return canonical_name(column), ""


def make_row(path: str, split: str, votes: list[int], ties: str, skipped: Counter) -> Row | None:
    """A manifest row with the majority label and canonical-order votes, or None (counted)."""
    label, reason = majority(votes, ties)
    if reason:
        skipped[reason] += 1
        return None
    canonical_votes = ";".join(str(votes[i]) for i in TO_CANONICAL)
    return Row(path, label, split, votes=canonical_votes)


def count_data_rows(path: Path) -> int:
    """Number of data lines (after the header) of a csv without embedded newlines."""
    n, last = 0, b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 24):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n") - 1


def csv_pair_rows(root: Path, votes_csv: Path, options: dict, skipped: Counter) -> list[Row]:
    """Rows of the ``fer2013new.csv`` + ``fer2013.csv`` pair."""
    pixels = root / options["pixels_csv"]
    next(read_csv(pixels, ("emotion", "pixels", "Usage")), None)  # header check
    columns = ("Usage", "Image name", *VOTE_COLUMNS)
    rel = pixels.relative_to(root).as_posix()
    rows, n = [], 0
    for n, (usage, name, *fields) in enumerate(read_csv(votes_csv, columns), 1):
        where = f"{votes_csv}, data row {n - 1}"
        if usage not in USAGE:
            raise FerError(f"{where}: Usage {usage!r}; expected one of {list(USAGE)}")
        if not name.strip():
            skipped["no_image_name"] += 1
            continue
        row = make_row(
            f"csv:{rel}#{n - 1}", USAGE[usage], parse_votes(where, fields), options["ties"], skipped
        )
        rows += [row] if row else []
    if count_data_rows(pixels) != n:
        raise FerError(f"{pixels}: expected {n} data rows, one per row of {votes_csv.name}")
    return rows


def folder_rows(root: Path, folder: Path, split: str, options: dict, skipped: Counter) -> list[Row]:
    """Rows of one ``FER2013<Split>/`` folder from its ``label.csv``."""
    label_csv = find_file(folder, "label.csv")
    if label_csv is None:
        raise FerError(
            f"{folder / 'label.csv'}: not found; expected rows "
            '<png>,"(0, 0, 48, 48)",<10 vote counts>'
        )
    present = {e.name for e in scan(folder)}
    rel = folder.relative_to(root).as_posix()
    rows = []
    with open(label_csv, newline="", encoding="utf-8-sig") as handle:
        for number, fields in enumerate(csv.reader(handle), 1):
            if not fields or (number == 1 and not fields[0].lower().endswith(".png")):
                continue  # blank line or a header row
            where = f"{label_csv}, line {number}"
            votes = parse_votes(where, fields[2:])
            if fields[0] not in present:
                skipped["missing_image"] += 1
                continue
            row = make_row(f"{rel}/{fields[0]}", split, votes, options["ties"], skipped)
            rows += [row] if row else []
    return rows


@register_dataset(
    title="FERPlus",
    classes=CANONICAL,
    size=35_711,
    options={"ties": "first", "pixels_csv": "fer2013.csv"},
)
def ferplus(root: Path, options: dict) -> AdapterResult:
    """FERPlus majority-vote labels and vote vectors from the csv pair or the label.csv folders."""
    if options["ties"] not in ("first", "drop"):
        raise FerError(f"ferplus: option ties must be 'first' or 'drop', got {options['ties']!r}")
    skipped: Counter = Counter()
    votes_csv = find_file(root, "fer2013new.csv")
    if votes_csv is not None:
        return AdapterResult(csv_pair_rows(root, votes_csv, options, skipped), skipped)
    rows: list[Row] = []
    for split, names in FOLDERS.items():
        folder = find_dir(root, *names)
        if folder is None:
            raise FerError(
                f"{root}: wrong layout for ferplus; expected fer2013new.csv + "
                "fer2013.csv or FER2013Train/, FER2013Valid/, FER2013Test/ folders "
                f"(missing {names[0]}/)"
            )
        rows += folder_rows(root, folder, split, options, skipped)
    return AdapterResult(rows, skipped)
