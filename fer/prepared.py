"""Read prepared data (``resources/{dataset}/prepared/``), the seam between preprocessing and
training / evaluation. See docs/design.md for the layout. Arrays are memory-mapped: nothing is
decoded per step and a split selection costs one fancy-index copy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fer.contracts import INDEX_REQUIRED, ROI_NAMES
from fer.errors import FerError

__all__ = ["ROI_NAMES", "PreparedData", "open_prepared"]


@dataclass
class PreparedData:
    """A prepared data set: ``index`` (DataFrame) and memory-mapped uint8 arrays, row-aligned."""

    root: Path
    index: pd.DataFrame
    faces: np.ndarray
    rois: dict[str, np.ndarray]
    landmarks: np.ndarray
    params: dict
    summary: dict
    original: np.ndarray | None = None

    @property
    def classes(self) -> list[str]:
        """The data set's classes (canonical names, canonical order), from its manifest summary."""
        return list(self.summary["classes"])

    @property
    def adapter(self) -> str:
        """The adapter that read the data set (its summary records it; "" for older folders)."""
        return str(self.summary.get("adapter") or "")

    @property
    def face_size(self) -> int:
        return int(self.params["face_size"])

    @property
    def roi_size(self) -> int:
        return int(self.params["roi_size"])

    def rows(self, split: str | None = None, fold: int | None = None, with_roi=None):
        """Row numbers (np.int64) of the usable (readable) images matching the filters.

        ``fold`` selects the rows of that fold; ``split="train"`` together with ``fold`` means
        every usable row *not* in the fold. ``with_roi=True`` keeps rows with all three ROIs.
        """
        idx = self.index
        keep = np.array(idx["status"] != "unreadable", dtype=bool)
        if fold is not None:
            in_fold = (idx["fold"].astype(int) == int(fold)).to_numpy()
            keep &= ~in_fold if split == "train" else in_fold
        elif split is not None:
            keep &= (idx["split"] == split).to_numpy()
        if with_roi is not None:
            keep &= (idx["has_roi"].astype(int) == int(bool(with_roi))).to_numpy()
        return np.flatnonzero(keep)


def _load(path: Path, mmap: bool = True) -> np.ndarray:
    if not path.is_file():
        raise FerError(f"{path}: missing prepared array (run `fer prepare` for this data set)")
    return np.load(path, mmap_mode="r" if mmap else None)


def open_prepared(root: str | Path, mmap: bool = True) -> PreparedData:
    """Open a prepared folder; a missing or inconsistent file is a :class:`FerError` naming it."""
    root = Path(root)
    index_path = root / "index.csv"
    if not index_path.is_file():
        raise FerError(f"{index_path}: missing prepared index (run `fer prepare` first)")
    index = pd.read_csv(index_path, dtype={"group": str, "path": str}, keep_default_na=False)
    missing = [c for c in INDEX_REQUIRED if c not in index.columns]
    if missing:
        raise FerError(f"{index_path}: missing columns {missing}; expected {list(INDEX_REQUIRED)}")
    params = json.loads((root / "params.json").read_text())
    summary = json.loads((root / "summary.json").read_text())
    faces = _load(root / "faces.npy", mmap)
    rois = {name: _load(root / f"{name}.npy", mmap) for name in ROI_NAMES}
    landmarks = _load(root / "landmarks.npy", mmap)
    original = _load(root / "original.npy", mmap) if (root / "original.npy").is_file() else None
    for name, arr in {"faces": faces, "landmarks": landmarks, **rois}.items():
        if len(arr) != len(index):
            raise FerError(
                f"{root / (name + '.npy')}: {len(arr)} rows but index.csv has {len(index)}"
            )
    return PreparedData(root, index, faces, rois, landmarks, params, summary, original)
