"""Prediction on new pictures: ``fer predict``, :class:`Predictor`, ``fer pair`` and ``fer export``.

Python API::

    from fer import Predictor
    table = Predictor.from_dir("models/rafdb").predict(["photo.jpg", "clips/"])

Modules: :mod:`~fer.predict.models` (a models folder: checkpoints, fusion.json, ``fer pair``),
:mod:`~fer.predict.sources` (images, folders, videos, arrays → frames), :mod:`~fer.predict.core`
(the :class:`Predictor`), :mod:`~fer.predict.annotate` (drawn copies), :mod:`~fer.predict.table`
(streamed CSV / JSON lines / Parquet), :mod:`~fer.predict.cli` (the verb) and
:mod:`~fer.predict.export` (ONNX / TorchScript).
"""

from __future__ import annotations

from fer.predict.core import Predictor

__all__ = ["Predictor"]
