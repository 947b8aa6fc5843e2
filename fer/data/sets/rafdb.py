"""RAF-DB basic: ``basic/EmoLabel/list_patition_label.txt`` (sic) + ``basic/Image/<kind>/``.

Each label line is ``<name>.jpg <label>`` with 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness,
5 Sadness, 6 Anger, 7 Neutral; the split is the name prefix (``train_`` / ``test_``; 12,271 /
3,068). Option ``images``: ``original`` (in-the-wild, what the paper detects and aligns),
``aligned`` (the publisher's 100×100 ``<stem>_aligned.jpg``) or ``auto`` (default: original where
that folder exists, else aligned). ``<root>`` holds ``basic/`` or is ``basic/`` itself. A listed
image missing on disk is skipped and counted as ``missing_image``.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from fer.data import AdapterResult, Row, register_dataset
from fer.data.listing import find_dir, find_file, scan
from fer.errors import FerError
from fer.labels import SEVEN, LabelError, from_code

LABEL_FILES = ("list_patition_label.txt", "list_partition_label.txt")
PREFIX_SPLIT = {"train": "train", "test": "test"}


def image_folder(base: Path, choice: str) -> tuple[Path, str]:
    """The image folder for option ``images`` and the file-name suffix of its images."""
    if choice not in ("auto", "original", "aligned"):
        raise FerError(f"rafdb: option images must be auto, original or aligned, got {choice!r}")
    image = find_dir(base, "Image")
    original = find_dir(image, "original") if image else None
    aligned = find_dir(image, "aligned") if image else None
    if choice in ("auto", "original") and original is not None:
        return original, ""
    if choice in ("auto", "aligned") and aligned is not None:
        return aligned, "_aligned"
    wanted = "original or aligned" if choice == "auto" else choice
    raise FerError(f"{base / 'Image'}: expected an {wanted}/ folder of RAF-DB images")


def parse_line(path: Path, number: int, line: str) -> tuple[str, str, str]:
    """(file name, canonical label, split) of one ``train_00001.jpg 5`` label line."""
    parts = line.split()
    if len(parts) != 2:
        raise FerError(f"{path}, line {number}: expected '<name>.jpg <label 1-7>', got {line!r}")
    name, code = parts
    prefix = name.split("_", 1)[0].lower()
    if prefix not in PREFIX_SPLIT:
        raise FerError(
            f"{path}, line {number}: image name {name!r} should start with train_ or test_"
        )
    try:
        return name, from_code(CODES, int(code), "rafdb"), PREFIX_SPLIT[prefix]
    except (ValueError, LabelError):
        raise FerError(f"{path}, line {number}: unknown label {code!r}; expected 1-7") from None


# list_patition_label.txt codes, as RAF-DB documents them: 1 Surprise ... 7 Neutral.
CODES = {1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad", 6: "anger", 7: "neutral"}


@register_dataset(
    title="RAF-DB",
    classes=SEVEN,
    size=15_339,
    options={"images": "auto"},
    reference_order=SEVEN,  # the reference remaps RAF-DB 1-7 into the AffectNet order
)
def rafdb(root: Path, options: dict) -> AdapterResult:
    """RAF-DB basic emotions: labels from the partition file, split from the name prefix."""
    base = find_dir(root, "basic") or root
    emo = find_dir(base, "EmoLabel")
    label_file = find_file(emo, *LABEL_FILES) if emo else None
    if label_file is None:
        raise FerError(
            f"{base / 'EmoLabel' / LABEL_FILES[0]}: not found; expected the RAF-DB "
            "basic label file ('<name>.jpg <label>' per line)"
        )
    folder, suffix = image_folder(base, options["images"])
    present = {e.name for e in scan(folder)}
    rel = folder.relative_to(root).as_posix()
    skipped: Counter = Counter()
    rows = []
    lines = label_file.read_text(errors="replace").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        name, label, split = parse_line(label_file, number, line)
        stem, ext = os.path.splitext(name)
        file = f"{stem}{suffix}{ext}"
        if file not in present:
            skipped["missing_image"] += 1
            continue
        rows.append(Row(f"{rel}/{file}", label, split))
    if not rows:
        raise FerError(f"{folder}: none of the {len(lines)} images listed in {label_file} exist")
    return AdapterResult(rows, skipped)
