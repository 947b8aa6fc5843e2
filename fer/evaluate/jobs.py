"""What the two evaluation verbs are asked to do, as frozen values (like :class:`fer.train.job.
TrainJob`): :class:`InferJob` (``fer infer``: run the models once over a target into a prediction
record) and :class:`EvaluateJob` (``fer evaluate``: score one table cell from records). Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fer.contracts import ARCHS
from fer.errors import FerError
from fer.fusion import REFERENCE, Fusion
from fer.labels import PROTOCOLS

ROWS = ("all", "within", "val")  # which rows fer infer scores


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise FerError(f"protocol {protocol!r}: expected one of {list(PROTOCOLS)}")


@dataclass(frozen=True)
class InferJob:
    """Models trained on ``dataset`` run over the prepared ``target`` (``prepared``: its folder).

    ``rows``: ``all`` every usable row (cross-dataset); ``within`` the test split, or for a k-fold
    set each checkpoint's own fold; ``val`` the rows each checkpoint pair was selected on (the
    trained set's validation carve; the record says why it is empty where there is none).
    ``global_ckpts`` / ``roi_ckpts``: one per fold for a k-fold target scored ``within``.
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
        _check_protocol(self.protocol)
        if self.batch_size < 1:
            raise FerError("the batch size must be >= 1")


@dataclass(frozen=True)
class EvaluateJob:
    """One table cell: models trained on ``dataset`` scored on ``target``, reported for ``arch``,
    from the target's prediction records (:mod:`fer.evaluate.records`), one per replicate seed.

    ``records`` (loaded :class:`~fer.evaluate.records.Predictions`) or ``predictions`` (their
    files); ``validation`` / ``validation_files``: records of the trained set's validation rows,
    one per seed, to choose the fusion weight on (none: not chosen). ``fusion``: the fixed
    weights of the fused logits. ``bootstrap`` resamples (0: none) with ``seed``;
    ``config_hash`` is provenance.
    """

    dataset: str
    target: str
    arch: str
    records: tuple = ()
    predictions: tuple[Path, ...] = ()
    validation: tuple = ()
    validation_files: tuple[Path, ...] = ()
    protocol: str = "shared"
    fusion: Fusion = field(default=REFERENCE)
    bootstrap: int = 1000
    seed: int = 0
    config_hash: str = ""

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise FerError(f"arch {self.arch!r}: expected one of {list(ARCHS)}")
        _check_protocol(self.protocol)
        if not isinstance(self.fusion, Fusion):
            raise FerError(f"fusion {self.fusion!r}: expected a fer.fusion.Fusion")
        if self.bootstrap < 0:
            raise FerError("the bootstrap resamples must be >= 0")
        if not self.records and not self.predictions:
            raise FerError("a cell is scored from prediction records (--predictions of fer infer)")
