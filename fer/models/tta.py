"""Test-time augmentation: how a checkpoint's logits are taken from its inputs (meta ``tta``).

``none`` is one forward pass; ``flip`` is the mean of the logits of the inputs and of their mirror
images (every input, the face and each ROI crop, flipped left-right). Training's validation
(:func:`fer.train.loop.evaluate`), ``fer infer`` and ``fer predict``
(:func:`fer.models.inference.model_logits`) and ``fer export``
(:class:`fer.predict.export.FusedPair`) all take logits through :func:`logits`, so they agree on
a checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fer.contracts import TTA_MODES
from fer.errors import FerError

if TYPE_CHECKING:  # tensor methods only: :func:`of` serves code that never loads torch
    import torch


def main_logits(outputs) -> torch.Tensor:
    """The prediction head: a Global-ROI Net's first output, a Global Net's only one."""
    return outputs[0] if isinstance(outputs, tuple | list) else outputs


def logits(model, inputs: dict[str, torch.Tensor], tta: str = "none") -> torch.Tensor:
    """``model``'s main logits on ``inputs`` (forward() keyword tensors, N×3×S×S) under ``tta``;
    float32 when averaged."""
    z = main_logits(model(**inputs))
    if tta == "none":
        return z
    if tta == "flip":
        mirrored = main_logits(model(**{k: v.flip(-1) for k, v in inputs.items()}))
        return (z.float() + mirrored.float()) / 2
    raise FerError(f"test-time augmentation {tta!r}; expected one of {list(TTA_MODES)}")


def of(meta: dict, where: str = "checkpoint") -> str:
    """The ``tta`` a checkpoint's meta records (``none`` for checkpoints written before fer
    recorded it, and for imported ones)."""
    tta = meta.get("tta", "none")
    if tta not in TTA_MODES:
        raise FerError(f"{where}: meta tta {tta!r}; expected one of {list(TTA_MODES)}")
    return str(tta)
