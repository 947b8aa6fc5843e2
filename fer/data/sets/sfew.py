"""SFEW 2.0: ``Train/<Class>/*.png`` and ``Val/<Class>/*.png`` (movie frames), an eval-only set.

Class folders Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise. Test labels were never
released, so by default every row is ``split=test`` (the reference scores Train 958 + Val 436 =
1,394 images); option ``official_splits`` keeps Train → train and Val → val instead. Option
``aligned`` reads the publisher's ``Train_Aligned_Faces/`` and ``Val_Aligned_Faces/`` folders
(same class folders) where a release has them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fer.data import AdapterResult, register_dataset
from fer.data.listing import SplitFolder, list_split_folders
from fer.labels import SEVEN


@register_dataset(
    title="SFEW 2.0",
    classes=SEVEN,
    size=1_394,
    options={"aligned": False, "official_splits": False},
)
def sfew(root: Path, options: dict) -> AdapterResult:
    """SFEW 2.0 Train and Val class folders (original frames or the aligned faces)."""
    suffix = "_Aligned_Faces" if options["aligned"] else ""
    train, val = ("train", "val") if options["official_splits"] else ("test", "test")
    folders = [
        SplitFolder(train, (f"Train{suffix}",)),
        SplitFolder(val, (f"Val{suffix}", f"Validation{suffix}")),
    ]
    skipped: Counter = Counter()
    rows = list_split_folders(root, folders, skipped)
    return AdapterResult(rows, skipped)
