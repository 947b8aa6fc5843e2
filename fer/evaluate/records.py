"""The per-image prediction record: both models run once over a target, every cell scored from it.

``fer infer`` writes one record per (trained set, target[, replicate seed]); ``fer evaluate
--predictions`` scores the ``global``, ``roi`` and ``fused`` cells from it without torch. The file
is an ``.npz`` (numpy's zip of arrays, compressed, loaded without pickle) holding, per scored row:

=================  ===========  ===========================================================
array              shape/dtype  meaning
=================  ===========  ===========================================================
``row``            (n,) int64   row of the prepared ``index.csv`` (and of its arrays)
``path``           (n,) str     the image's path as the index lists it
``y``              (n,) int64   true class, an index into ``label_map.scored``
``has_roi``        (n,) bool    the row has all three ROI crops
``task``           (n,) int64   index into ``meta.tasks`` (the fold whose models scored it)
``group``          (n,) str     subject group ('' where the set has none)
``z_global``       (n, C) f32   Global Net logits on its ``global_input``, scored columns
``z_global_faces`` (n, C) f32   only for ``global_input: original``: the Global Net on the
                                aligned chip, which the fusion uses (reference §5.1)
``z_roi``          (n, C) f32   Global-ROI Net logits (head ``x``); NaN where ``has_roi`` is
                                False
``votes``          (n, C) f64   FERPlus votes over the scored classes, where the target has them
``meta``           () str       JSON: see :data:`META_KEYS`
=================  ===========  ===========================================================

Absent models leave their arrays out (a record of the Global Net alone has no ``z_roi``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer.atomic import atomic_write
from fer.errors import FerError
from fer.fusion import Fusion

RECORD_VERSION = 1
META_KEYS = (
    "record_version",  # RECORD_VERSION
    "dataset",  # the trained set's name
    "target",  # the scored set's name
    "rows",  # all | within | val: which rows were scored
    "protocol",  # class-scoring protocol
    "label_map",  # fer.evaluate.scoring.label_map(): scored classes, drops, model columns
    "seed",  # training seed of the checkpoints (the replicate), or None
    # [{fold, n_unreadable, n_rejected (absent in older records: 0), dropped, resize,
    #   checkpoints: {kind: {path, meta}}}]
    "tasks",
    "target_adapter",  # adapter of the prepared target, or None
    "synthetic",  # the prepared target is synthetic (the demo)
    "prepared",  # the prepared folder scored
    "env",  # git_sha, versions, device of the inference run
    "reason",  # why a validation record holds no rows (None otherwise)
)
LOGITS = ("z_global", "z_global_faces", "z_roi")


@dataclass
class Predictions:
    """One record: ``arrays`` (see the module docstring) and its ``meta`` dict."""

    arrays: dict[str, np.ndarray]
    meta: dict
    path: Path | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.arrays["row"])

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def has(self, key: str) -> bool:
        return key in self.arrays

    @property
    def where(self) -> str:
        return str(self.path) if self.path else f"predictions of {self.meta.get('target')}"

    @property
    def scored(self) -> list[str]:
        return list(self.meta["label_map"]["scored"])

    def logits(self, arch: str, fusion: Fusion) -> np.ndarray | None:
        """The logits ``arch`` is scored on (None where its model is absent): ``global`` the
        Global Net's, ``roi`` the Global-ROI Net's (NaN rows without ROIs), ``fused`` the two
        fused by ``fusion`` (:meth:`fer.fusion.Fusion.apply`)."""
        if arch == "global":
            return self.arrays.get("z_global")
        if arch == "roi":
            return self.arrays.get("z_roi")
        z_g = self.arrays.get("z_global_faces", self.arrays.get("z_global"))
        if z_g is None or "z_roi" not in self.arrays:
            return None
        return fusion.apply(self.arrays["z_roi"], z_g, self.arrays["has_roi"])

    def predicted(self, arch: str, fusion: Fusion) -> np.ndarray | None:
        """Predicted class per row (``roi``: -1 on rows without ROIs), or None."""
        z = self.logits(arch, fusion)
        if z is None:
            return None
        if arch == "roi":
            return np.where(self.arrays["has_roi"], np.nan_to_num(z, nan=0.0).argmax(1), -1)
        return z.argmax(1)

    def save(self, path: str | Path) -> None:
        """Write the record atomically as a compressed ``.npz``."""
        missing = [k for k in META_KEYS if k not in self.meta]
        if missing:
            raise ValueError(f"prediction record meta lacks {missing}")
        blob = json.dumps(self.meta, sort_keys=True, default=str, allow_nan=False)
        with atomic_write(path, "wb") as handle:
            np.savez_compressed(handle, meta=np.array(blob), **self.arrays)

    @classmethod
    def load(cls, path: str | Path) -> Predictions:
        """Read a record written by :meth:`save`; anything else is a FerError naming the file."""
        path = Path(path)
        if not path.is_file():
            raise FerError(f"{path}: prediction record not found (written by `fer infer`)")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            meta = json.loads(str(arrays.pop("meta")))
        except (OSError, ValueError, KeyError) as exc:
            raise FerError(
                f"{path}: not a prediction record of `fer infer` (an .npz with meta): {exc}"
            ) from exc
        version = meta.get("record_version")
        if version != RECORD_VERSION:
            raise FerError(
                f"{path}: prediction record version {version!r}, this fer reads "
                f"{RECORD_VERSION}; rerun `fer infer`"
            )
        need = {"row", "path", "y", "has_roi", "task", "group"}
        if not need <= set(arrays) or not set(LOGITS) & set(arrays):
            found = sorted(arrays)
            raise FerError(f"{path}: expected arrays {sorted(need)} and logits, found {found}")
        n = len(arrays["row"])
        bad = [k for k, a in arrays.items() if len(a) != n]
        if bad:
            raise FerError(f"{path}: arrays {bad} do not have the {n} rows of `row`")
        arrays["has_roi"] = arrays["has_roi"].astype(bool)
        return cls(arrays, meta, path)


def check_same_rows(records: list[Predictions]) -> None:
    """Replicates of one cell must score the same images with the same labels and classes."""
    first = records[0]
    for rec in records[1:]:
        for key in ("row", "y", "has_roi"):
            if not np.array_equal(rec[key], first[key]):
                raise FerError(
                    f"{rec.where}: its `{key}` differs from {first.where}'s; replicate records "
                    "of one cell must score the same prepared rows"
                )
        if rec.scored != first.scored:
            raise FerError(f"{rec.where}: scored classes {rec.scored} differ from {first.scored}")
