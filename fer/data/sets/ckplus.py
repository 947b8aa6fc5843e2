"""CK+ (Extended Cohn-Kanade): the official sequence tree or the common 48×48 folder copy.

Layouts, detected in this order (the group is always the subject, ``S005``):

* official: ``<root>/cohn-kanade-images/S005/001/S005_001_00000001.png`` and
  ``<root>/Emotion/S005/001/S005_001_00000011_emotion.txt`` (one float code: 0 neutral,
  1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise). Only labelled
  sequences are used: their last ``last_frames`` frames (option, default 3) get the label and,
  with ``neutral_first_frame`` (default true), their first frame is labelled neutral.
* CK+48: ``<root>/<class>/S<subj>_<seq>_<frame>.png`` (anger, contempt, disgust, fear, happy,
  sadness, surprise; 981 images in the usual copy, no neutral).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from fer.data import AdapterResult, Row, register_dataset
from fer.data.listing import find_dir, is_image, list_class_folders, scan
from fer.errors import FerError
from fer.labels import CANONICAL, LabelError, from_code

# Emotion/*.txt codes, as CK+ documents them.
CODES = {
    0: "neutral",
    1: "anger",
    2: "contempt",
    3: "disgust",
    4: "fear",
    5: "happy",
    6: "sad",
    7: "surprise",
}
FILE_NAME = re.compile(r"^(S\d+)_(\d+)_(\d+)", re.IGNORECASE)


def subject_of(name: str, folder: Path) -> str:
    """Subject ``S010`` of ``S010_004_00000017.png``; any other name is a :class:`FerError`."""
    match = FILE_NAME.match(name)
    if not match:
        raise FerError(
            f"{folder / name}: expected a CK+ file name S<subject>_<sequence>_<frame>.png"
        )
    return match.group(1).upper()


def read_emotion(path: Path) -> str:
    """Canonical label of an official ``*_emotion.txt`` file (one float code 0-7)."""
    text = path.read_text(errors="replace").strip()
    try:
        value = float(text)
        if value != int(value):
            raise ValueError(text)
        return from_code(CODES, int(value), "ckplus")
    except (ValueError, LabelError):
        raise FerError(
            f"{path}: expected one emotion code 0-7 (e.g. 3.0000000e+00), got {text[:40]!r}"
        ) from None


def sequence_rows(root: Path, images: Path, emotion_file: Path, options: dict) -> list[Row]:
    """Rows of one labelled sequence: its last frames with the label, its first as neutral."""
    subject, sequence = emotion_file.parent.parent.name, emotion_file.parent.name
    folder = images / subject / sequence
    frames = [e.name for e in scan(folder) if is_image(e.name)] if folder.is_dir() else []
    if not frames:
        raise FerError(f"{folder}: no frames for the labelled sequence {emotion_file.name}")
    label = read_emotion(emotion_file)
    last = max(1, int(options["last_frames"]))
    rel = folder.relative_to(root).as_posix()
    chosen = [(name, label) for name in frames[-last:]]
    if options["neutral_first_frame"] and len(frames) > last:
        chosen.insert(0, (frames[0], "neutral"))
    return [Row(f"{rel}/{name}", lab, "train", subject.upper()) for name, lab in chosen]


def official_rows(root: Path, images: Path, options: dict, skipped: Counter) -> list[Row]:
    """Rows of the official tree: every labelled sequence under ``Emotion/``."""
    emotion = find_dir(root, "Emotion")
    if emotion is None and find_dir(root, "Emotion_labels") is not None:
        emotion = find_dir(find_dir(root, "Emotion_labels"), "Emotion")
    if emotion is None:
        raise FerError(
            f"{root}: found cohn-kanade-images/ but no Emotion/ folder of "
            "S###/###/*_emotion.txt label files"
        )
    labels = sorted(emotion.glob("*/*/*_emotion.txt"))
    if not labels:
        raise FerError(f"{emotion}: no S###/###/*_emotion.txt label files")
    n_sequences = sum(1 for p in images.glob("*/*") if p.is_dir())
    skipped["unlabelled_sequence"] += max(0, n_sequences - len(labels))
    rows: list[Row] = []
    for path in labels:
        rows += sequence_rows(root, images, path, options)
    return rows


@register_dataset(
    title="CK+",
    classes=CANONICAL,
    size=1_563,
    options={"last_frames": 3, "neutral_first_frame": True},
    reference_order=CANONICAL,
)
def ckplus(root: Path, options: dict) -> AdapterResult:
    """CK+ from the official sequence tree or the CK+48 class-folder copy; groups are subjects."""
    skipped: Counter = Counter()
    images = find_dir(root, "cohn-kanade-images")
    if images is not None:
        return AdapterResult(official_rows(root, images, options, skipped), skipped)
    if not any(e.is_dir() for e in scan(root)):
        raise FerError(
            f"{root}: wrong layout for ckplus; expected cohn-kanade-images/ + Emotion/ "
            "(official CK+) or <class>/S###_###_########.png (CK+48)"
        )
    rows = list_class_folders(root, root, "train", skipped, group_of=subject_of)
    return AdapterResult(rows, skipped)
