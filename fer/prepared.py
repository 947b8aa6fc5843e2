"""Read prepared data (``resources/{dataset}/prepared/``), the seam between preprocessing and
training / evaluation. See docs/design.md for the layout. Arrays are memory-mapped: nothing is
decoded per step and a split selection costs one fancy-index copy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer.contracts import (
    ARRAYS,
    EXCLUDED,
    INDEX_REQUIRED,
    OPTIONAL_ARRAYS,
    ROI_NAMES,
    preprocess_of,
)
from fer.errors import FerError
from fer.labels import CANONICAL
from fer.provenance import sha256_file

if TYPE_CHECKING:
    import pandas as pd

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
    _digests: dict | None = field(default=None, repr=False)

    @property
    def classes(self) -> list[str]:
        """The data set's classes (canonical names, canonical order), from its manifest summary."""
        return list(self.summary["classes"])

    @property
    def adapter(self) -> str:
        """The adapter that read the data set (its summary records it; "" for older folders)."""
        return str(self.summary.get("adapter") or "")

    @property
    def preprocess(self) -> dict:
        """How the folder was prepared (:data:`fer.contracts.PREPROCESS_KEYS` of params.json):
        what a checkpoint trained on it records, so that new pictures are prepared alike."""
        return preprocess_of(self.params)

    @property
    def chip_size(self) -> int:
        """The stored face chip's side (faces.npy, original.npy)."""
        return int(self.preprocess["chip_size"])

    @property
    def crop_size(self) -> int:
        """The stored ROI crops' side (eye.npy, nose.npy, mouth.npy)."""
        return int(self.preprocess["crop_size"])

    @property
    def is_kfold(self) -> bool:
        """Whether the set carries k-fold indices (``fold`` >= 0) instead of a test split."""
        return bool((self.index["fold"].astype(int) >= 0).any())

    def votes(self, rows: np.ndarray) -> np.ndarray | None:
        """FERPlus votes of ``rows``: float64 n×8 in canonical class order, or None where the
        set has no votes (no ``votes`` column, or every cell of ``rows`` empty). A malformed
        cell, or empty cells among filled ones, is a FerError naming the row."""
        if "votes" not in self.index.columns:
            return None
        cells = self.index["votes"].astype(str).to_numpy()[rows]
        filled = np.array([c.strip() not in ("", "nan") for c in cells], dtype=bool)
        if not filled.any():
            return None
        where = self.root / "index.csv"
        if not filled.all():
            raise FerError(
                f"{where}: {int((~filled).sum())} of these {len(cells)} rows have an empty votes "
                "cell; a FERPlus set needs votes on every row"
            )
        out = np.zeros((len(cells), len(CANONICAL)), np.float64)
        for i, cell in enumerate(cells):
            parts = [p for p in cell.split(";") if p.strip()]
            try:
                if len(parts) != len(CANONICAL):
                    raise ValueError(cell)
                out[i] = [float(p) for p in parts]
            except ValueError:
                raise FerError(
                    f"{where}: row {int(rows[i])} votes {cell!r}; expected {len(CANONICAL)} "
                    "numbers n0;...;n7 in canonical order"
                ) from None
        return out

    def rows(self, split: str | None = None, fold: int | None = None, with_roi=None):
        """Row numbers (np.int64) of the usable images (not :data:`EXCLUDED`) matching the filters.

        ``fold`` selects the rows of that fold; ``split="train"`` together with ``fold`` means
        every usable row *not* in the fold. ``with_roi=True`` keeps rows with all three ROIs.
        """
        idx = self.index
        keep = ~idx["status"].isin(EXCLUDED).to_numpy()
        if fold is not None:
            in_fold = (idx["fold"].astype(int) == int(fold)).to_numpy()
            keep &= ~in_fold if split == "train" else in_fold
        elif split is not None:
            keep &= (idx["split"] == split).to_numpy()
        if with_roi is not None:
            keep &= (idx["has_roi"].astype(int) == int(bool(with_roi))).to_numpy()
        return np.flatnonzero(keep)

    def fingerprint(self) -> dict[str, str]:
        """sha256 of index.csv and of every array: what `fer prepare` recorded in summary.json,
        else computed now (folders prepared before fer recorded it). Equal fingerprints, equal
        content."""
        recorded = self.summary.get("digests")
        if isinstance(recorded, dict) and recorded:
            return dict(recorded)
        if self._digests is None:
            self._digests = digests(self.root)
        return self._digests


def digests(root: Path) -> dict[str, str]:
    """sha256 of index.csv and each array of a prepared folder (the ones present)."""
    names = ["index.csv", *(f"{a}.npy" for a in (*ARRAYS, *OPTIONAL_ARRAYS))]
    out = {}
    for name in names:
        path = Path(root) / name
        if path.is_file():
            out[name] = sha256_file(path)
    return out


RERUN = "re-run `fer prepare` for this data set"


def _load(path: Path, mmap: bool, rows: int, kind: str) -> np.ndarray:
    """One prepared array, checked: a .npy (never a pickle) of ``rows`` rows holding uint8 images
    N×S×S×3 (``kind="image"``) or float32 landmarks N×68×2."""
    if not path.is_file():
        raise FerError(f"{path}: missing prepared array ({RERUN})")
    want = "uint8 N×S×S×3 images" if kind == "image" else "float32 N×68×2 landmarks"
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # truncated, not .npy, object dtype
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FerError(f"{path}: not a readable .npy array of {want} ({reason}); {RERUN}") from None
    if kind == "image":
        ok = arr.dtype == np.uint8 and arr.ndim == 4 and arr.shape[1] == arr.shape[2]
        ok = ok and arr.shape[3] == 3
    else:
        ok = arr.dtype == np.float32 and arr.ndim == 3 and arr.shape[1:] == (68, 2)
    if not ok:
        raise FerError(f"{path}: {arr.dtype} array of shape {arr.shape}; expected {want}")
    if len(arr) != rows:
        raise FerError(f"{path}: {len(arr)} rows but index.csv has {rows}; {RERUN}")
    return arr


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FerError(f"{path}: missing ({RERUN})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FerError(f"{path}: not a readable JSON object ({exc}); {RERUN}") from None
    if not isinstance(value, dict):
        raise FerError(f"{path}: expected a JSON object; {RERUN}")
    return value


def _index(path: Path) -> pd.DataFrame:
    import pandas as pd  # here: `fer prepare` imports this module for digests() alone

    if not path.is_file():
        raise FerError(f"{path}: missing prepared index ({RERUN})")
    try:
        index = pd.read_csv(path, dtype={"group": str, "path": str}, keep_default_na=False)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise FerError(f"{path}: not a readable csv ({exc}); {RERUN}") from None
    missing = [c for c in INDEX_REQUIRED if c not in index.columns]
    if missing:
        raise FerError(f"{path}: missing columns {missing}; expected {list(INDEX_REQUIRED)}")
    for column in ("label", "fold", "has_roi"):
        if not pd.api.types.is_integer_dtype(index[column]):
            raise FerError(f"{path}: column {column!r} must hold integers; {RERUN}")
    return index


def open_prepared(root: str | Path, mmap: bool = True) -> PreparedData:
    """Open a prepared folder; a missing, unreadable or inconsistent file is a
    :class:`FerError` naming it (arrays are read with ``allow_pickle=False``)."""
    root = Path(root)
    index = _index(root / "index.csv")
    params, summary = _json(root / "params.json"), _json(root / "summary.json")
    if not isinstance(summary.get("classes"), list):
        raise FerError(f"{root / 'summary.json'}: expected a 'classes' list; {RERUN}")
    n = len(index)
    faces = _load(root / "faces.npy", mmap, n, "image")
    rois = {name: _load(root / f"{name}.npy", mmap, n, "image") for name in ROI_NAMES}
    landmarks = _load(root / "landmarks.npy", mmap, n, "landmarks")
    has_original = (root / "original.npy").is_file()
    original = _load(root / "original.npy", mmap, n, "image") if has_original else None
    return PreparedData(root, index, faces, rois, landmarks, params, summary, original)
