"""FER2013: the Kaggle ``fer2013.csv`` or the common image-folder copy (as published).

Layouts, detected in this order:

* csv: ``<root>/fer2013.csv`` (or ``<root>/fer2013/fer2013.csv``) with columns
  ``emotion,pixels,Usage``; emotion 0 Angry … 6 Neutral. A row's path is
  ``csv:<csv path>#<0-based data row>``; Usage Training → train, PublicTest → ``public_test``
  (option, default ``val``: the standard protocol validates on PublicTest and tests on
  PrivateTest), PrivateTest → test.
* folders: ``<root>/train/<class>/*.jpg`` and ``<root>/test/<class>/*.jpg`` (class names angry,
  disgust, fear, happy, neutral, sad, surprise; ``test`` is PublicTest in the Kaggle copy), with
  an optional ``val/`` folder (then no val is carved).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fer.data import AdapterResult, Row, register_dataset
from fer.data.listing import SplitFolder, find_dir, list_split_folders, read_csv
from fer.errors import FerError
from fer.labels import SEVEN, LabelError, from_code

SPLIT_FOLDERS = [
    SplitFolder("train", ("train", "training")),
    SplitFolder("val", ("val", "valid", "validation"), required=False),
    SplitFolder("test", ("test", "publictest")),
]
CSV_COLUMNS = ("emotion", "pixels", "Usage")
# the csv's `emotion` codes, as published
CODES = {0: "anger", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral"}


def csv_rows(root: Path, path: Path, usage_split: dict[str, str], publisher: str) -> list[Row]:
    """Rows of a Kaggle-style ``emotion,pixels,Usage`` csv (labels by ``publisher``'s codes)."""
    rel = path.relative_to(root).as_posix()
    rows = []
    for i, (emotion, _pixels, usage) in enumerate(read_csv(path, CSV_COLUMNS)):
        if usage not in usage_split:
            raise FerError(f"{path}, data row {i}: Usage {usage!r}; expected {list(usage_split)}")
        try:
            label = from_code(CODES, int(emotion), publisher)
        except (LabelError, ValueError) as exc:
            raise FerError(f"{path}, data row {i}: {exc}") from None
        rows.append(Row(f"csv:{rel}#{i}", label, usage_split[usage]))
    return rows


def find_csv(root: Path, name: str, option: str | None) -> Path | None:
    """The csv named by an option (relative to root), else ``root/name`` or ``root/<stem>/name``."""
    if option:
        path = root / option
        if not path.is_file():
            raise FerError(f"{path}: file not found (named by option csv)")
        return path
    for path in (root / name, root / Path(name).stem / name):
        if path.is_file():
            return path
    return None


@register_dataset(
    title="FER2013", classes=SEVEN, size=35_887, options={"csv": None, "public_test": "val"}
)
def fer2013(root: Path, options: dict) -> AdapterResult:
    """FER2013 from the Kaggle csv or the train/test class-folder copy."""
    skipped: Counter = Counter()
    path = find_csv(root, "fer2013.csv", options["csv"])
    if path is not None:
        if options["public_test"] not in ("val", "test"):
            raise FerError(
                f"fer2013: option public_test must be 'val' or 'test', "
                f"got {options['public_test']!r}"
            )
        usage = {"Training": "train", "PublicTest": options["public_test"], "PrivateTest": "test"}
        return AdapterResult(csv_rows(root, path, usage, "fer2013"), skipped)
    if find_dir(root, *SPLIT_FOLDERS[0].names) is None:
        raise FerError(
            f"{root}: wrong layout for fer2013; expected fer2013.csv "
            "(emotion,pixels,Usage) or train/<class>/ and test/<class>/ folders"
        )
    return AdapterResult(list_split_folders(root, SPLIT_FOLDERS, skipped), skipped)
