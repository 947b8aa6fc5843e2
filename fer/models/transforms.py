"""The model's input contract: how a uint8 picture becomes what a network takes.

Like timm's pretrained config, each checkpoint records its own normalisation (meta
``normalisation``: ``{mean, std}``; :class:`Normalisation`), and the input sides (meta
``face_size`` / ``roi_size``). The eval transform (:func:`eval_transform`) is the one way a stored
uint8 chip reaches a model outside training: resized with antialiased bilinear interpolation when
its side differs, scaled to [0, 1], normalised. Training's random augmentation
(:mod:`fer.train.augment`) starts from :func:`to_float` and ends with :func:`normalize` too.

:func:`eval_array` is the same transform in NumPy, for the networks run as ONNX graphs without
torch (:mod:`fer.models.graphs`): the scaling and the normalisation are the same float32
operations, and the resize applies torch's antialiased bilinear weights (:func:`aa_weights`), so
its values agree with :func:`eval_transform`'s to float32 rounding (``tests/test_predict.py``).
torch is imported by the torch functions only, on first call.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalisation:
    """Per-channel ``mean`` and ``std`` (RGB, inputs in [0, 1]) a model was trained with."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @classmethod
    def from_meta(cls, meta: dict) -> Normalisation:
        """A checkpoint's recorded normalisation (ImageNet's where it records none)."""
        norm = meta.get("normalisation") or {}
        return cls(
            tuple(float(v) for v in norm.get("mean", IMAGENET_MEAN)),
            tuple(float(v) for v in norm.get("std", IMAGENET_STD)),
        )

    def to_meta(self) -> dict[str, list[float]]:
        """``{"mean": [...], "std": [...]}``, as checkpoints record it."""
        return {"mean": list(self.mean), "std": list(self.std)}


IMAGENET = Normalisation()  # what every fer model is trained with


def to_float(batch: torch.Tensor, size: int, channels_last: bool = True) -> torch.Tensor:
    """uint8 ``B×H×W×3`` (on any device) → float ``B×3×size×size`` in [0, 1].

    The permuted view is already channels-last in memory; a different ``size`` is resized with
    antialiased bilinear interpolation (like torchvision's ``Resize`` on PIL images).
    """
    import torch
    import torch.nn.functional as F

    x = batch.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        ).clamp_(0.0, 1.0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)


def normalize(x: torch.Tensor, norm: Normalisation = IMAGENET) -> torch.Tensor:
    """``(x - mean) / std`` per channel of a ``B×3×H×W`` float batch in [0, 1]."""
    import torch

    mean = torch.tensor(norm.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(norm.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def eval_transform(
    batch: torch.Tensor, size: int, norm: Normalisation = IMAGENET, channels_last: bool = True
) -> torch.Tensor:
    """The test transform: uint8 batch → resized, normalised float batch."""
    return normalize(to_float(batch, size, channels_last), norm)


@lru_cache(maxsize=32)
def aa_weights(source: int, size: int) -> np.ndarray:
    """The ``size × source`` float32 matrix of torch's antialiased bilinear resize along one
    axis (``F.interpolate(mode="bilinear", antialias=True, align_corners=False)``): row ``i``
    weighs the source pixels under output pixel ``i``'s triangle filter, widened by the scale
    when shrinking, normalised to sum 1; computed in float32 step by step, as torch's CPU kernel
    computes them for float inputs."""
    f = np.float32
    scale = f(source) / f(size)
    support = scale if scale >= 1.0 else f(1.0)  # the triangle's half-width, in source pixels
    invscale = f(1.0) / scale if scale >= 1.0 else f(1.0)
    out = np.zeros((size, source), np.float32)
    for i in range(size):
        center = scale * f(i + 0.5)
        lo = max(int(center - support + f(0.5)), 0)
        hi = min(int(center + support + f(0.5)), source)
        taps = [
            max(f(0.0), f(1.0) - abs((f(j) - center + f(0.5)) * invscale)) for j in range(lo, hi)
        ]
        total = f(0.0)
        for w in taps:
            total = f(total + w)
        out[i, lo:hi] = [w / total if total != 0 else w for w in taps]
    return out


def float_array(batch: np.ndarray, size: int) -> np.ndarray:
    """:func:`to_float` in NumPy: uint8 ``B×H×W×3`` → contiguous float32 ``B×3×size×size`` in
    [0, 1], resized (width, then height, as torch does) where a side differs."""
    x = (batch.astype(np.float32) / np.float32(255.0)).transpose(0, 3, 1, 2)  # B×3×H×W view
    height, width = x.shape[2:]
    if width != size or height != size:
        if width != size:  # one matrix product per axis: (…×W) @ (W×size)
            x = np.matmul(x, aa_weights(width, size).T)
        if height != size:
            x = np.matmul(aa_weights(height, size), x)
        np.clip(x, 0.0, 1.0, out=x)
    return np.ascontiguousarray(x)


def eval_array(batch: np.ndarray, size: int, norm: Normalisation = IMAGENET) -> np.ndarray:
    """:func:`eval_transform` in NumPy: :func:`float_array`, normalised."""
    x = float_array(batch, size)
    mean = np.asarray(norm.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(norm.std, np.float32).reshape(1, 3, 1, 1)
    return (x - mean) / std
