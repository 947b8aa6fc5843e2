"""Evaluation: score trained models on a target into one result JSON per table cell.

Python API: describe the cell with an :class:`EvalCell` and call :func:`evaluate`::

    from fer.evaluate import EvalCell, evaluate
    result = evaluate(EvalCell("rafdb", "sfew", "fused", Path("resources/sfew/prepared"),
                               global_ckpts=(Path("models/rafdb/global.pt"),),
                               roi_ckpts=(Path("models/rafdb/roi.pt"),)))

Modules: :mod:`~fer.evaluate.predict` (checkpoints, the rows each scores, logits, fusion inputs),
:mod:`~fer.evaluate.scoring` (label maps, fusion and the result JSON, torch-free),
:mod:`~fer.evaluate.metrics` (numpy metrics) and :mod:`~fer.evaluate.cli` (the verb). Importing
this package imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fer.contracts import ARCHS
from fer.errors import FerError
from fer.labels import PROTOCOLS

NEEDS = {"global": ("global",), "roi": ("roi",), "fused": ("global", "roi")}  # models per arch


@dataclass(frozen=True)
class EvalCell:
    """One table cell: models trained on ``dataset`` scored on ``target``, reported for ``arch``.

    ``prepared``: the target's prepared folder. ``global_ckpts`` / ``roi_ckpts``: the models'
    checkpoints (one per fold for a k-fold target scored ``within``). ``within``: score the
    target's test split (or each checkpoint's fold) rather than every usable row. ``protocol``:
    the class-scoring protocol. ``fusion``: the (roi, global) weights of the fused logits.
    ``bootstrap`` resamples (0: none) with ``seed``; ``batch_size``, ``device`` and ``progress``
    (None: a bar on a terminal only) say how the models run; ``config_hash`` is provenance.
    """

    dataset: str
    target: str
    arch: str
    prepared: Path
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


def evaluate(cell: EvalCell) -> dict:
    """Score ``cell``: open its prepared data and checkpoints, run the models, return the result
    dict (``fer/schemas/result.schema.json``). User-fixable problems raise FerError."""
    from fer.evaluate.predict import evaluate_cell

    return evaluate_cell(cell)


__all__ = ["EvalCell", "evaluate"]
