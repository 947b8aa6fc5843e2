"""JAFFE: ``jaffedbase/<SUBJ>.<EXP><k>.<id>.tiff`` (213 images, 10 subjects), an eval-only set.

``<root>`` is the folder holding ``jaffedbase/`` or ``jaffedbase/`` itself. EXP is AN, DI, FE,
HA, NE, SA or SU; the group is the subject (KA, KL, …). Every row is ``split=test`` (the reference
scores all 213 images); ``fer manifest --kfold K`` turns them into subject-grouped folds instead.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from fer.data import AdapterResult, Row, register_dataset
from fer.data.listing import find_dir, is_image, scan
from fer.errors import FerError
from fer.labels import SEVEN, LabelError, canonical_name

FILE_NAME = re.compile(r"^([A-Z]{2})\.([A-Z]{2})(\d+)\.(\d+)\.tiff?$", re.IGNORECASE)
CODES = ("AN", "DI", "FE", "HA", "NE", "SA", "SU")


def parse_name(path: Path) -> tuple[str, str]:
    """(subject, canonical label) of ``KA.AN1.39.tiff``; any other name is a :class:`FerError`."""
    match = FILE_NAME.match(path.name)
    if not match or match.group(2).upper() not in CODES:
        raise FerError(
            f"{path}: expected a JAFFE file name <SUBJ>.<EXP><k>.<id>.tiff "
            f"with EXP one of {', '.join(CODES)} (e.g. KA.AN1.39.tiff)"
        )
    try:
        return match.group(1).upper(), canonical_name(match.group(2))
    except LabelError as exc:  # pragma: no cover - CODES are all known spellings
        raise FerError(f"{path}: {exc}") from None


@register_dataset(title="JAFFE", classes=SEVEN, size=213)
def jaffe(root: Path, options: dict) -> AdapterResult:
    """JAFFE images parsed from their file names; all rows are test, grouped by subject."""
    folder = find_dir(root, "jaffedbase", "jaffe") or root
    skipped: Counter = Counter()
    rows: list[Row] = []
    rel = folder.relative_to(root).as_posix()
    prefix = "" if rel == "." else f"{rel}/"
    for name in (e.name for e in scan(folder, skipped) if e.is_file()):
        if not is_image(name):
            skipped["not_an_image"] += 1
            continue
        subject, label = parse_name(folder / name)
        rows.append(Row(f"{prefix}{name}", label, "test", subject))
    if not rows:
        raise FerError(f"{folder}: no JAFFE images; expected jaffedbase/<SUBJ>.<EXP><k>.<id>.tiff")
    return AdapterResult(rows, skipped)
