"""A trained pair of models as one thing to point at: ``models/<dataset>/``.

The folder holds ``global.pt`` and / or ``roi.pt`` (``fer train`` or ``fer import-reference``;
``global.fold<k>.pt`` for a k-fold data set) and ``fusion.json``, the weights of the fused logits
(``fer pair``, which the workflow runs). Each checkpoint's meta says how its inputs were prepared
(``meta["preprocess"]``: detector, padding, stored face / ROI sizes, pixel limit) and normalised,
and which classes its head outputs, so a new picture is prepared exactly as the training data was.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fer.atomic import write_json
from fer.contracts import MODELS, preprocess_of
from fer.errors import FerError
from fer.fusion import REFERENCE, Fusion
from fer.paths import read_small
from fer.provenance import file_digest, sha256_file

if TYPE_CHECKING:  # fer.models imports torch: loaded only where a checkpoint is read
    from fer.models.inference import Checkpoint

FUSION_FILE = "fusion.json"
NO_FUSION_FILE = "the reference's weights (no fusion.json)"
_FOLD = re.compile(r"^(global|roi)\.fold(\d+)\.pt$")


@dataclass
class ModelSet:
    """The checkpoints one prediction runs (``{"global": Checkpoint, "roi": Checkpoint}``,
    either may be None), the ``fusion`` of their logits and where it came from, the classes and
    the preprocessing every checkpoint agrees on."""

    checkpoints: dict[str, Checkpoint | None]
    fusion: Fusion = REFERENCE
    fusion_source: str = NO_FUSION_FILE
    folder: Path | None = None

    def __post_init__(self):
        given = {k: ck for k, ck in self.checkpoints.items() if ck is not None}
        if not given:
            raise FerError("no checkpoint given: a Global Net, a Global-ROI Net or both")
        self.checkpoints = given
        for kind, ck in given.items():
            if ck.meta.get("model") != kind:
                raise FerError(
                    f"{ck.path}: a {ck.meta.get('model')!r} model where {kind!r} expected"
                )
            if not isinstance(ck.meta.get("preprocess"), dict):
                raise FerError(
                    f"{ck.path}: the checkpoint records no preprocessing (meta 'preprocess': "
                    f"detector, padding, stored sizes), so a new picture cannot be prepared as its "
                    f"training data was; it was written by fer {ck.meta.get('fer_version', '?')}: "
                    "retrain it (or re-import the authors' file) with this version"
                )
            pre = preprocess_of(ck.meta["preprocess"])
            missing = [k for k in ("detector", "padding", "chip_size", "crop_size") if k not in pre]
            if missing:
                raise FerError(f"{ck.path}: meta 'preprocess' lacks {', '.join(missing)}")
        first, *rest = given.values()
        for ck in rest:
            for what in ("classes", "preprocess"):
                mine, theirs = _agreeing(ck.meta, what), _agreeing(first.meta, what)
                if mine != theirs:
                    raise FerError(
                        f"{ck.path}: {what} {mine} differ from {first.path}: {theirs}; the two "
                        "models of a pair must be trained on the same prepared data"
                    )

    @property
    def classes(self) -> list[str]:
        return list(next(iter(self.checkpoints.values())).meta["classes"])

    @property
    def preprocess(self) -> dict:
        """The preprocessing (PREPROCESS_KEYS) the checkpoints record; the pixel limit is the
        largest of theirs."""
        metas = [preprocess_of(ck.meta["preprocess"]) for ck in self.checkpoints.values()]
        out = dict(metas[0])
        limits = [int(m["max_pixels"]) for m in metas if "max_pixels" in m]
        if limits:
            out["max_pixels"] = max(limits)
        return out

    @property
    def global_ck(self):
        return self.checkpoints.get("global")

    @property
    def roi_ck(self):
        return self.checkpoints.get("roi")

    @property
    def synthetic(self) -> list[Path]:
        """The checkpoints trained on synthetic pictures (the demo's), not on faces."""
        from fer.models.meta import synthetic

        return [ck.path for ck in self.checkpoints.values() if synthetic(ck.meta)]

    @property
    def model_data(self) -> str:
        """What the models learnt from, as ``fer predict``'s ``model_data`` column says it:
        ``synthetic`` when any checkpoint was trained on synthetic pictures, else ``real``."""
        return "synthetic" if self.synthetic else "real"

    def data_warning(self) -> str | None:
        """One line for models trained on synthetic pictures (None for real ones)."""
        paths = self.synthetic
        if not paths:
            return None
        return (
            f"{', '.join(map(str, paths))}: trained on synthetic pictures (the demo), not on "
            "faces: labels of real faces are at chance level; README 'Models for real faces' "
            "gives two ways to models that work"
        )

    def describe(self) -> str:
        """One line: which models, classes, preprocessing and fusion weights."""
        kinds = " + ".join(f"{k} ({ck.path})" for k, ck in self.checkpoints.items())
        pre = self.preprocess
        fused = ""
        if len(self.checkpoints) == 2:
            fused = f"; fused {self.fusion} ({self.fusion_source})"
        return (
            f"{kinds}: {len(self.classes)} classes; detector {pre['detector']}, chips "
            f"{pre['chip_size']} px, ROIs {pre['crop_size']} px{fused}"
        )


def _agreeing(meta: dict, what: str):
    """What two paired checkpoints must agree on: the classes, the preprocessing (not the pixel
    limit)."""
    if what == "classes":
        return list(meta["classes"])
    return {k: v for k, v in preprocess_of(meta["preprocess"]).items() if k != "max_pixels"}


def checkpoint_files(folder: Path, fold: int | None) -> dict[str, Path]:
    """``{"global": path, "roi": path}`` of the checkpoints in ``folder`` (fold ``fold``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FerError(
            f"{folder}: models folder not found (expected models/<dataset>/ with "
            "global.pt and / or roi.pt)"
        )
    suffix = "" if fold is None else f".fold{fold}"
    found = {
        k: folder / f"{k}{suffix}.pt" for k in MODELS if (folder / f"{k}{suffix}.pt").is_file()
    }
    if found:
        return found
    folds = sorted({int(m.group(2)) for p in folder.iterdir() if (m := _FOLD.match(p.name))})
    if fold is None and folds:
        raise FerError(
            f"{folder}: k-fold models (folds {', '.join(map(str, folds))}); choose one with --fold"
        )
    what = "global.pt or roi.pt" if fold is None else f"global{suffix}.pt or roi{suffix}.pt"
    raise FerError(f"{folder}: no {what} in it")


def read_fusion(folder: Path, files: dict[str, Path]) -> tuple[Fusion, str] | None:
    """The fusion and its source from ``folder/fusion.json``; None where there is none. A
    fusion.json written for other checkpoints than ``files`` is an error naming them."""
    path = Path(folder) / FUSION_FILE
    if not os.path.lexists(path):
        return None
    try:
        spec = json.loads(read_small(path, what="fusion file"))
        fusion = Fusion.from_dict(spec["weights"], str(path))
        recorded = {str(k): v["sha256"] for k, v in dict(spec.get("checkpoints") or {}).items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FerError(
            f"{path}: expected {{'weights': {{'roi': W, 'global': W}}, 'checkpoints': "
            f"{{file: {{'sha256': ...}}}}}} ({exc})"
        ) from None
    for here in files.values():
        if here.name not in recorded or recorded[here.name] != file_digest(here):
            raise FerError(
                f"{path}: written for another {here.name} than the one in the folder; rerun "
                f"`fer pair --models {folder}` (or the workflow) after retraining"
            )
    suffix = _suffix(next(iter(files.values())).name)
    missing = [
        name
        for name in recorded
        if _suffix(name) == suffix and name not in {p.name for p in files.values()}
    ]
    if missing and len(files) < len(MODELS):
        raise FerError(
            f"{path}: names {', '.join(missing)}, missing from {folder}: the pair it fuses is "
            "incomplete (restore the file, or remove fusion.json to predict with one model)"
        )
    return fusion, str(spec.get("source") or path)


def _suffix(name: str) -> str:
    """``.fold3`` of ``roi.fold3.pt``, ``""`` of ``global.pt``."""
    return "".join(Path(name).suffixes[:-1])


def write_fusion(folder: Path, fusion: Fusion, source: str) -> dict:
    """Write ``folder/fusion.json``: the weights, their source and the sha256 of every
    checkpoint in the folder (``global.pt``, ``roi.pt`` or their ``.fold<k>`` files), so that a
    retrained model is never fused with stale weights."""
    folder = Path(folder)
    names = [
        p
        for p in sorted(folder.glob("*.pt"))
        if re.match(r"^(global|roi)(\.fold\d+)?\.pt$", p.name)
    ]
    kinds = {p.name.split(".")[0] for p in names}
    if kinds != set(MODELS):
        raise FerError(
            f"{folder}: a fused pair needs both a global and a roi checkpoint; found "
            f"{', '.join(p.name for p in names) or 'none'}"
        )
    from fer.models.inference import load_checkpoints

    for suffix in sorted({_suffix(p.name) for p in names}):  # each fold's pair, as predict reads it
        pair = {k: folder / f"{k}{suffix}.pt" for k in MODELS}
        absent = [p.name for p in pair.values() if not p.is_file()]
        if absent:
            raise FerError(f"{folder}: {', '.join(absent)} missing: each fold needs its pair")
        ModelSet({k: load_checkpoints([p], k)[0] for k, p in pair.items()})  # checks the pair
    spec = {
        "weights": fusion.to_dict(),
        "source": source,
        "checkpoints": {p.name: {"sha256": sha256_file(p)} for p in names},
    }
    write_json(folder / FUSION_FILE, spec, indent=1)
    return spec


def load_models(
    folder: Path | None = None,
    *,
    global_ckpt: Path | None = None,
    roi_ckpt: Path | None = None,
    fold: int | None = None,
    fusion: Fusion | None = None,
    device=None,
    lazy: bool = True,
) -> ModelSet:
    """The :class:`ModelSet` of a models folder, or of explicit checkpoint files; ``fusion``
    overrides fusion.json. ``lazy``: where the ONNX graphs of all the checkpoints are cached,
    their metadata comes from the cache and their weights (torch) are read only if something
    asks for them (:func:`fer.models.inference.load_checkpoints`)."""
    from fer.models.inference import load_checkpoints

    files = checkpoint_files(folder, fold) if folder is not None else {}
    files.update({k: Path(p) for k, p in (("global", global_ckpt), ("roi", roi_ckpt)) if p})
    if not files:
        raise FerError("give a models folder (--models) or checkpoint files")
    from fer.models.graphs import cached_meta

    # all from the cache, or all read: one pair, one source of meta; a device wants the weights
    lazy = lazy and device is None and all(cached_meta(p) is not None for p in files.values())
    cks = {k: load_checkpoints([p], k, lazy=lazy)[0] for k, p in files.items()}
    if device is not None:
        for ck in cks.values():
            ck.model.to(device)
    chosen, source = REFERENCE, NO_FUSION_FILE
    if fusion is not None:
        chosen, source = fusion, "given"
    elif folder is not None and (found := read_fusion(folder, files)) is not None:
        chosen, source = found
    return ModelSet(cks, chosen, source, Path(folder) if folder is not None else None)


def main(argv: list[str] | None = None) -> int:
    """``fer pair``: write models/<dataset>/fusion.json."""
    from fer import cliargs

    p = cliargs.parser(
        "fer pair",
        "Make a trained Global Net and Global-ROI Net one predictor: write fusion.json (the "
        "fused logits' weights and both checkpoints' sha256) into their models folder, where "
        "fer predict, fer export and fer.Predictor.from_dir find it.",
    )
    p.add_argument(
        "--models", required=True, type=Path, help="models/<dataset>/ (global.pt, roi.pt)"
    )
    cliargs.add_fusion_weights(p, REFERENCE, "as roi=W,global=W")
    source = "where the weights come from, recorded in the file"
    p.add_argument("--source", default="given on the command line", help=source)
    args = p.parse_args(argv)
    spec = write_fusion(args.models, args.fusion_weights, args.source)
    print(
        f"wrote {args.models / FUSION_FILE}: {args.fusion_weights} for "
        f"{', '.join(spec['checkpoints'])}"
    )
    return 0
