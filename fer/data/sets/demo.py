"""The synthetic demo set that ``fer demo`` generates, laid out like a real data set.

``<root>/SYNTHETIC.txt`` marks it; images are ``<root>/{train,test}/<class>/<subject>_<k>.png``
(class folders angry … surprise); the group is the subject (``s07``). This module is the example
of adding a data set: one adapter function, registered, reusing the class-folder helper.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fer.data import AdapterResult, register_dataset
from fer.data.listing import SplitFolder, list_split_folders
from fer.errors import FerError
from fer.labels import SEVEN


def subject(name: str, _folder: Path) -> str:
    """The subject of ``s07_3.png``: ``s07``."""
    return name.rsplit("_", 1)[0] if "_" in name else ""


@register_dataset(title="Demo (synthetic)", classes=SEVEN, size=300)
def demo(root: Path, options: dict) -> AdapterResult:
    """Synthetic demo faces (``fer demo``): train/test class folders, grouped by subject."""
    if not (root / "SYNTHETIC.txt").is_file():
        raise FerError(
            f"{root / 'SYNTHETIC.txt'}: not found; expected the marker file of a "
            "synthetic set written by `fer demo`"
        )
    skipped: Counter = Counter()
    splits = [SplitFolder("train", ("train",)), SplitFolder("test", ("test",))]
    rows = list_split_folders(root, splits, skipped, group_of=subject)
    return AdapterResult(rows, skipped, synthetic=True)
