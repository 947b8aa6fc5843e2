"""AffectNet (``affectnet8``; ``affectnet7`` is the same data without Contempt).

Layouts, detected in this order:

* publisher: ``Manually_Annotated_file_lists/{training,validation}.csv`` with header
  ``subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,
  valence,arousal`` and images under ``Manually_Annotated_Images/<subDirectory>/<file>``. The
  face box (``x,y,w,h``) and the 68 landmarks (``x;y;…``) go into the manifest.
* class folders (AffectNet+ / Kaggle re-uploads): ``train/<0..7>/`` and ``val/<0..7>/`` (folder
  names may also be class names).

The official validation set is the test split (500 per class). Expression 8 None, 9 Uncertain
and 10 No-Face are skipped and counted; ``affectnet7`` also skips Contempt (counted). A listed
image missing on disk is skipped as ``missing_image``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fer.data import AdapterResult, Row, register_dataset
from fer.data.listing import (
    SplitFolder,
    find_dir,
    find_file,
    folder_label,
    list_split_folders,
    read_csv,
    scan,
)
from fer.errors import FerError
from fer.labels import CANONICAL, SEVEN

COLUMNS = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
)
NOT_CLASSES = {8: "expression_none", 9: "expression_uncertain", 10: "expression_no_face"}
LISTS = {"train": "training.csv", "test": "validation.csv"}
FOLDERS = [
    SplitFolder("train", ("train", "training")),
    SplitFolder("test", ("val", "valid", "validation", "test")),
]


class Listing:
    """Cached per-sub-directory file listings, so existence checks cost one scandir per folder."""

    def __init__(self, images: Path) -> None:
        self.images = images
        self.cache: dict[str, set[str]] = {}

    def exists(self, rel: str) -> bool:
        """Whether ``images/rel`` is a file, listing its folder once."""
        folder, _, name = rel.replace("\\", "/").rpartition("/")
        if folder not in self.cache:
            path = self.images / folder
            self.cache[folder] = {e.name for e in scan(path)} if path.is_dir() else set()
        return name in self.cache[folder]


def code_label(code: int, n_classes: int) -> tuple[str, str]:
    """(canonical label, "") for an expression code, or ("", skip reason)."""
    if code in NOT_CLASSES:
        return "", NOT_CLASSES[code]
    if not 0 <= code < len(CANONICAL):
        raise ValueError(code)
    if code >= n_classes:
        return "", f"{CANONICAL[code]} (affectnet{n_classes})"
    return CANONICAL[code], ""


def parse_box(where: str, values: tuple[str, ...]) -> str:
    """``x,y,w,h`` of the publisher's face box columns (empty where the box is absent)."""
    if not any(v.strip() for v in values):
        return ""
    try:
        return ",".join(str(int(float(v))) for v in values)
    except ValueError:
        raise FerError(
            f"{where}: expected integer face_x,face_y,face_width,face_height, "
            f"got {','.join(values)!r}"
        ) from None


def list_rows(
    root: Path, path: Path, split: str, listing: Listing, n_classes: int, skipped: Counter
) -> list[Row]:
    """Rows of one publisher list (``training.csv`` or ``validation.csv``)."""
    rel_images = listing.images.relative_to(root).as_posix()
    rows = []
    for i, (file, x, y, w, h, marks, expression) in enumerate(read_csv(path, COLUMNS)):
        try:
            label, reason = code_label(int(expression), n_classes)
        except ValueError:
            raise FerError(
                f"{path}, data row {i}: unknown expression {expression!r}; expected 0-10"
            ) from None
        if reason:
            skipped[reason] += 1
        elif not listing.exists(file):
            skipped["missing_image"] += 1
        else:
            box = parse_box(f"{path}, data row {i}", (x, y, w, h))
            rel = f"{rel_images}/{file.replace(chr(92), '/')}"
            rows.append(Row(rel, label, split, box=box, landmarks=marks))
    return rows


def publisher_rows(root: Path, lists: Path, n_classes: int, skipped: Counter) -> list[Row]:
    """Rows of the publisher layout (both csv lists)."""
    images = find_dir(root, "Manually_Annotated_Images", "Manually_Annotated", "Images")
    if images is None:
        raise FerError(
            f"{root}: expected a Manually_Annotated_Images/ folder next to {lists.name}/"
        )
    listing = Listing(images)
    rows: list[Row] = []
    for split, name in LISTS.items():
        path = find_file(lists, name)
        if path is None:
            raise FerError(f"{lists / name}: not found; expected the AffectNet {split} list")
        rows += list_rows(root, path, split, listing, n_classes, skipped)
    return rows


def read_affectnet(root: Path, n_classes: int) -> AdapterResult:
    """AffectNet with the first ``n_classes`` canonical classes (7 or 8)."""
    skipped: Counter = Counter()
    lists = find_dir(root, "Manually_Annotated_file_lists")
    if lists is not None:
        return AdapterResult(publisher_rows(root, lists, n_classes, skipped), skipped)
    if find_dir(root, *FOLDERS[0].names) is None:
        raise FerError(
            f"{root}: wrong layout for affectnet; expected Manually_Annotated_file_lists/"
            " + Manually_Annotated_Images/ or train/<0..7>/ + val/<0..7>/ folders"
        )

    def label_of(folder: str) -> str | None:
        try:
            label, _ = code_label(int(folder), n_classes)
            return label or None
        except ValueError:
            label = folder_label(folder)
            return None if label and CANONICAL.index(label) >= n_classes else label

    rows = list_split_folders(root, FOLDERS, skipped, label_of=label_of)
    return AdapterResult(rows, skipped)


@register_dataset(
    "affectnet8", title="AffectNet-8", classes=CANONICAL, size=291_650, reference_order=CANONICAL
)
def affectnet8(root: Path, options: dict) -> AdapterResult:
    """AffectNet with 8 classes (Neutral … Contempt); official validation set = test."""
    return read_affectnet(root, 8)


@register_dataset(
    "affectnet7", title="AffectNet-7", classes=SEVEN, size=283_901, reference_order=SEVEN
)
def affectnet7(root: Path, options: dict) -> AdapterResult:
    """AffectNet with 7 classes (Contempt skipped and counted); official validation set = test."""
    return read_affectnet(root, 7)
