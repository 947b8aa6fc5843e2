"""Evaluation: run both models once over a target into a prediction record (``fer infer``), then
score each table cell from the record(s) into one result JSON (``fer evaluate``).

Python API: run the models with :func:`fer.evaluate.infer.infer` (an :class:`InferJob`), score
with :func:`evaluate` (an :class:`EvaluateJob`)::

    from fer.evaluate import EvaluateJob, InferJob, evaluate
    from fer.evaluate.infer import infer
    record = infer(InferJob("rafdb", "sfew", Path("resources/sfew/prepared"),
                            global_ckpts=(Path("models/rafdb/global.pt"),),
                            roi_ckpts=(Path("models/rafdb/roi.pt"),)))
    record.save("results/rafdb/predictions/sfew.npz")
    result = evaluate(EvaluateJob("rafdb", "sfew", "fused", records=(record,)))

Modules: :mod:`~fer.evaluate.jobs` (the two job types), :mod:`~fer.evaluate.infer` (``fer
infer``'s core: the rows each checkpoint scores, logits → a record),
:mod:`~fer.evaluate.records` (the record file), :mod:`~fer.evaluate.scoring` (label maps,
replicates and the result JSON, torch-free), :mod:`~fer.evaluate.compare` (paired tests, the
validated fusion), :mod:`~fer.evaluate.metrics` (numpy metrics), :mod:`~fer.evaluate.cli`
(``fer evaluate``) and :mod:`~fer.evaluate.infer_cli` (``fer infer``). The fused score itself is
:mod:`fer.fusion`. Importing this package imports no torch.
"""

from __future__ import annotations

from fer.evaluate.jobs import EvaluateJob, InferJob


def evaluate(job: EvaluateJob) -> dict:
    """Score ``job``'s cell from its prediction records; the result dict
    (``fer/schemas/result.schema.json``). User-fixable problems raise FerError."""
    from fer.evaluate.records import Predictions
    from fer.evaluate.scoring import score

    records = list(job.records) or [Predictions.load(p) for p in job.predictions]
    validation = list(job.validation) or [Predictions.load(p) for p in job.validation_files]
    return score(job, records, validation)


__all__ = ["EvaluateJob", "InferJob", "evaluate"]
