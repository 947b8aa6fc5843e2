"""The model's input contract: how a uint8 picture becomes what a network takes.

Like timm's pretrained config, each checkpoint records its own normalisation (meta
``normalisation``: ``{mean, std}``; :class:`Normalisation`), and the input sides (meta
``face_size`` / ``roi_size``). The eval transform (:func:`eval_transform`) is the one way a stored
uint8 chip reaches a model outside training: resized with antialiased bilinear interpolation when
its side differs, scaled to [0, 1], normalised. Training's random augmentation
(:mod:`fer.train.augment`) starts from :func:`to_float` and ends with :func:`normalize` too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

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
    x = batch.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        ).clamp_(0.0, 1.0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)


def normalize(x: torch.Tensor, norm: Normalisation = IMAGENET) -> torch.Tensor:
    """``(x - mean) / std`` per channel of a ``B×3×H×W`` float batch in [0, 1]."""
    mean = torch.tensor(norm.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(norm.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def eval_transform(
    batch: torch.Tensor, size: int, norm: Normalisation = IMAGENET, channels_last: bool = True
) -> torch.Tensor:
    """The test transform: uint8 batch → resized, normalised float batch."""
    return normalize(to_float(batch, size, channels_last), norm)
