"""Training: one recipe-driven trainer for both models and every data set (`fer train`).

Python API: build a :class:`TrainJob` and call :func:`train`::

    from fer.train import TrainJob, train
    from fer.train.recipe import Recipe
    train(TrainJob(prepared=Path("resources/rafdb/prepared"), arch="roi",
                   out=Path("models/rafdb/roi.pt"), recipe=Recipe(epochs=10)))

Modules: :mod:`~fer.train.recipe` (every knob, declared once), :mod:`~fer.train.data` (honest
splits, the class-balanced sampler, batches from the prepared arrays), :mod:`~fer.train.augment`
(the reference augmentation as batched tensor ops), :mod:`~fer.train.loop` (model, optimiser,
epochs), :mod:`~fer.train.state` (resume state and outputs) and :mod:`~fer.train.cli` (the verb).
Importing this package imports no torch: the workflow reads :mod:`~fer.train.recipe` at planning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fer.train.recipe import Recipe


@dataclass(frozen=True)
class TrainJob:
    """One training run: what to train on, with which recipe, where to write it, on what.

    ``fold``: for a k-fold data set, the fold held out (validation is carved from the others).
    ``state_dir``: where the per-epoch resume state lives (default ``<out dir>/.state/<stem>/``).
    ``device``: ``auto`` (CUDA when visible), ``cpu``, ``cuda`` or ``cuda:N``. ``threads``: torch
    CPU threads (None: torch's choice). ``progress``: a bar on stderr. ``keep_state``: keep the
    resume state after a successful run.
    """

    prepared: Path
    arch: str
    out: Path
    recipe: Recipe = field(default_factory=Recipe)
    fold: int | None = None
    state_dir: Path | None = None
    device: str = "auto"
    threads: int | None = None
    progress: bool = True
    keep_state: bool = False

    @property
    def state_folder(self) -> Path:
        """The resume state's folder."""
        return Path(self.state_dir or Path(self.out).parent / ".state" / Path(self.out).stem)


def train(job: TrainJob):
    """Run ``job`` to the end, resuming its saved state if any; returns the finished
    :class:`~fer.train.state.RunState`. User-fixable problems raise
    :class:`~fer.errors.FerError`."""
    from fer.train.loop import run_job

    return run_job(job)


__all__ = ["Recipe", "TrainJob", "train"]
