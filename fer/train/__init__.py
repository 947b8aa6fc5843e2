"""Training: one recipe-driven trainer for both models and every data set (`fer train`).

Python API: build a :class:`TrainJob` and call :func:`train`::

    from fer.train import TrainJob, train
    from fer.train.recipe import Recipe
    train(TrainJob(prepared=Path("resources/rafdb/prepared"), arch="roi",
                   out=Path("models/rafdb/roi.pt"), recipe=Recipe(epochs=10)))

Modules: :mod:`~fer.train.job` (:class:`TrainJob`), :mod:`~fer.train.recipe` (every knob,
declared once), :mod:`~fer.train.data` (honest splits, the class-balanced sampler, batches from
the prepared arrays), :mod:`~fer.train.augment` (the reference augmentation as batched tensor
ops), :mod:`~fer.train.loop` (model, optimiser, epochs), :mod:`~fer.train.state` (resume state
and outputs), :mod:`~fer.train.cli` (the verb) and :mod:`~fer.train.reference`
(``fer import-reference``: the authors' checkpoints instead).
Importing this package imports no torch: the workflow reads :mod:`~fer.train.recipe` at planning.
"""

from __future__ import annotations

from fer.train.job import TrainJob
from fer.train.recipe import Recipe


def train(job: TrainJob):
    """Run ``job`` to the end, resuming its saved state if any; returns the finished
    :class:`~fer.train.state.RunState`. User-fixable problems raise
    :class:`~fer.errors.FerError`."""
    from fer.train.loop import run_job

    return run_job(job)


__all__ = ["Recipe", "TrainJob", "train"]
