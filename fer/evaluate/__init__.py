"""Evaluation: run both models once over a target into a prediction record, then score each
table cell from the record(s) into one result JSON.

Python API: run the models with :func:`infer` (a :class:`Target`), score with :func:`evaluate`
(an :class:`EvalCell`)::

    from fer.evaluate import EvalCell, Target, evaluate, infer
    record = infer(Target("rafdb", "sfew", Path("resources/sfew/prepared"),
                          global_ckpts=(Path("models/rafdb/global.pt"),),
                          roi_ckpts=(Path("models/rafdb/roi.pt"),)))
    record.save("results/rafdb/predictions/sfew.npz")
    result = evaluate(EvalCell("rafdb", "sfew", "fused", records=(record,)))

An :class:`EvalCell` given checkpoints and a prepared folder instead of records runs
:func:`infer` itself. Modules: :mod:`~fer.evaluate.predict` (checkpoints, the rows each scores,
logits), :mod:`~fer.evaluate.records` (the record file), :mod:`~fer.evaluate.scoring` (label
maps, fusion, replicates, paired tests and the result JSON, torch-free),
:mod:`~fer.evaluate.metrics` (numpy metrics) and :mod:`~fer.evaluate.cli` (the verbs
``fer infer`` and ``fer evaluate``). Importing this package imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fer.contracts import ARCHS
from fer.errors import FerError
from fer.labels import PROTOCOLS

NEEDS = {"global": ("global",), "roi": ("roi",), "fused": ("global", "roi")}  # models per arch


ROWS = ("all", "within", "val")  # which rows fer infer scores


@dataclass(frozen=True)
class Target:
    """What :func:`infer` runs: models trained on ``dataset`` over the prepared ``target``.

    ``rows``: ``all`` every usable row (cross-dataset); ``within`` the test split, or for a k-fold
    set each checkpoint's own fold; ``val`` the rows each checkpoint pair was selected on (the
    trained set's validation carve; the record says why it is empty where there is none).
    ``batch_size``, ``device`` and ``progress`` (None: a bar on a terminal only) say how the
    models run.
    """

    dataset: str
    target: str
    prepared: Path
    global_ckpts: tuple[Path, ...] = ()
    roi_ckpts: tuple[Path, ...] = ()
    rows: str = "all"
    protocol: str = "shared"
    batch_size: int = 64
    device: str = "auto"
    progress: bool | None = None

    def __post_init__(self):
        if self.rows not in ROWS:
            raise FerError(f"rows {self.rows!r}: expected one of {list(ROWS)}")
        if self.protocol not in PROTOCOLS:
            raise FerError(f"protocol {self.protocol!r}: expected one of {list(PROTOCOLS)}")
        if self.batch_size < 1:
            raise FerError("the batch size must be >= 1")


@dataclass(frozen=True)
class EvalCell:
    """One table cell: models trained on ``dataset`` scored on ``target``, reported for ``arch``.

    ``records``: the target's prediction records (:mod:`fer.evaluate.records`), one per
    replicate seed, or ``predictions``: their files. Without either, :func:`evaluate` runs
    :func:`infer` on ``prepared`` (the target's prepared folder) with ``global_ckpts`` /
    ``roi_ckpts`` (one per fold for a k-fold target scored ``within``), ``within`` (the test
    split or each checkpoint's fold rather than every usable row), ``protocol``, ``batch_size``,
    ``device`` and ``progress``. ``validation`` / ``validation_files``: records of the trained
    set's validation rows, one per seed, to choose the fusion weight on (none: not chosen).
    ``fusion``: the fixed (roi, global) weights of the fused logits. ``bootstrap`` resamples
    (0: none) with ``seed``; ``config_hash`` is provenance.
    """

    dataset: str
    target: str
    arch: str
    prepared: Path | None = None
    records: tuple = ()
    predictions: tuple[Path, ...] = ()
    validation: tuple = ()
    validation_files: tuple[Path, ...] = ()
    global_ckpts: tuple[Path, ...] = ()
    roi_ckpts: tuple[Path, ...] = ()
    within: bool = False
    protocol: str = "shared"
    fusion: tuple[float, float] = (0.55, 0.45)
    bootstrap: int = 1000
    seed: int = 0
    batch_size: int = 64
    device: str = "auto"
    config_hash: str = ""
    progress: bool | None = None

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise FerError(f"arch {self.arch!r}: expected one of {list(ARCHS)}")
        if self.protocol not in PROTOCOLS:
            raise FerError(f"protocol {self.protocol!r}: expected one of {list(PROTOCOLS)}")
        roi, glob = self.fusion
        if not all(0 <= w <= 1 for w in (roi, glob)) or roi + glob == 0:
            raise FerError(
                f"fusion weights roi={roi}, global={glob}: expected each in [0, 1], not both 0"
            )
        if self.batch_size < 1 or self.bootstrap < 0:
            raise FerError("the batch size must be >= 1 and the bootstrap resamples >= 0")

    @property
    def fusion_weights(self) -> dict[str, float]:
        """``{"roi": w, "global": w}``, as the result JSON records them."""
        return {"roi": float(self.fusion[0]), "global": float(self.fusion[1])}

    def target_spec(self, prepared: Path | None = None) -> Target:
        """The :class:`Target` whose record this cell is scored from, when it has none
        (``prepared``: the folder, when not the cell's own)."""
        prepared = prepared or self.prepared
        if prepared is None:
            raise FerError("a cell needs prediction records (--predictions) or a prepared folder")
        return Target(
            self.dataset,
            self.target,
            Path(prepared),
            tuple(self.global_ckpts),
            tuple(self.roi_ckpts),
            "within" if self.within else "all",
            self.protocol,
            self.batch_size,
            self.device,
            self.progress,
        )


def infer(spec: Target):
    """Run ``spec``'s models once over its rows; the :class:`~fer.evaluate.records.Predictions`
    record (save it with ``.save(path)``). User-fixable problems raise FerError."""
    from fer.evaluate.predict import infer as run

    return run(spec)


def evaluate(cell: EvalCell) -> dict:
    """Score ``cell`` from its records (running :func:`infer` first where it has none); the
    result dict (``fer/schemas/result.schema.json``). User-fixable problems raise FerError."""
    from fer.evaluate.records import Predictions
    from fer.evaluate.scoring import score

    records = list(cell.records) or [Predictions.load(p) for p in cell.predictions]
    if not records:
        for kind, given in (("global", cell.global_ckpts), ("roi", cell.roi_ckpts)):
            if kind in NEEDS[cell.arch] and not given:
                raise FerError(f"arch {cell.arch} needs {kind} checkpoints (--{kind}-ckpt)")
        records = [infer(cell.target_spec())]
    validation = list(cell.validation) or [Predictions.load(p) for p in cell.validation_files]
    return score(cell, records, validation)


__all__ = ["EvalCell", "Target", "evaluate", "infer"]
