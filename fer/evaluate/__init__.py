"""Evaluation: score trained models on a target into one result JSON per table cell.

Modules: :mod:`~fer.evaluate.predict` (checkpoints, the rows each scores, logits, fusion inputs),
:mod:`~fer.evaluate.scoring` (label maps, fusion and the result JSON, torch-free),
:mod:`~fer.evaluate.metrics` (numpy metrics) and :mod:`~fer.evaluate.cli` (the verb).
"""
