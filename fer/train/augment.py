"""Training augmentation as batched tensor ops on the training device: the chains of the recipe's
``augment`` key, and MixUp / CutMix (:class:`Mixing`).

``reference``, the paper's chain (reference §3.4). Train: resize → RandomHorizontalFlip(0.5) →
ColorJitter(brightness=0.2, contrast=0.2) →
RandomApply([RandomAffine(degrees=20, scale=(0.8, 1.0), translate=(0.2, 0.2))], p=0.7) →
Normalize(ImageNet) → RandomErasing(p=0.5, scale=(0.02, 0.25), ratio=(0.3, 3.3), value=0).
Only the random part lives here: the resize, the scaling and the normalisation are the models'
input contract (:mod:`fer.models.transforms`, whose ``eval_transform`` is the test transform).
Every random draw comes from one ``torch.Generator`` on the device, per sample, with no Python
loop over images; the face and each ROI are augmented independently (as the reference does) by
calling :func:`augment` once per tensor.

``standard``, the usual chain for small low-resolution faces (the FER2013 literature's): resize →
RandomHorizontalFlip(0.5) → random crop after zero padding of 1/8 of the side each way (a whole
pixel shift) → Normalize → RandomErasing(p=0.5, scale=(0.02, 0.25), ratio=(0.3, 3.3), value=0).

``none``: the test transform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fer.contracts import AUGMENTATIONS
from fer.models.transforms import eval_transform, normalize, to_float

ERASE_ATTEMPTS = 10


STANDARD_PAD = 1 / 8  # the standard chain's padding, a share of the side


def augment(
    batch: torch.Tensor,
    size: int,
    gen: torch.Generator,
    channels_last: bool = True,
    kind: str = "reference",
) -> torch.Tensor:
    """The train transform ``kind`` (:data:`~fer.contracts.AUGMENTATIONS`): uint8 ``B×H×W×3`` →
    augmented, normalised ``B×3×size×size``."""
    if kind not in AUGMENTATIONS:
        raise ValueError(f"augmentation {kind!r}; expected one of {list(AUGMENTATIONS)}")
    if kind == "none":
        return eval_transform(batch, size, channels_last=channels_last)
    x = to_float(batch, size, channels_last)
    x = random_hflip(x, gen)
    if kind == "reference":
        x = color_jitter(x, gen, brightness=0.2, contrast=0.2)
        x = random_affine(x, gen, p=0.7, degrees=20.0, translate=0.2, scale=(0.8, 1.0))
    else:  # standard: pad-and-crop is a whole-pixel shift with zero fill
        x = random_affine(x, gen, p=1.0, degrees=0.0, translate=STANDARD_PAD, scale=(1.0, 1.0))
    x = normalize(x)
    x = random_erasing(x, gen, p=0.5, scale=(0.02, 0.25), ratio=(0.3, 3.3))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)


@dataclass(frozen=True)
class Mixing:
    """MixUp (Zhang et al., 2018) and CutMix (Yun et al., 2019) over a batch of model inputs.

    Each batch draws ``lam ~ Beta(alpha, alpha)`` and a permutation of the batch; MixUp blends
    every input with its permuted partner, CutMix pastes the partner's box of area ``1 - lam``
    (the same relative box in the face and each ROI crop, lam then set to the face box's exact
    share). With both alphas set, each batch takes one of the two with even odds. Targets mix by
    the same ``lam`` (:meth:`targets`); cross-entropy and BCE are linear in the target, so this is
    the mixed loss. Every draw comes from the augmentation generator (resumes repeat it).
    """

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0

    @property
    def on(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def draw(self, n: int, gen: torch.Generator) -> tuple[str, float, torch.Tensor]:
        """``(kind, lam, permutation)`` for a batch of ``n``: kind ``mixup`` or ``cutmix``."""
        dev = gen.device
        kinds = [k for k, a in (("mixup", self.mixup_alpha), ("cutmix", self.cutmix_alpha)) if a]
        pick = int(torch.randint(len(kinds), (1,), generator=gen, device=dev)) if kinds else 0
        kind = kinds[pick]
        alpha = self.mixup_alpha if kind == "mixup" else self.cutmix_alpha
        seed = int(torch.randint(2**31 - 1, (1,), generator=gen, device=dev))
        lam = float(np.random.default_rng(seed).beta(alpha, alpha))
        return kind, lam, torch.randperm(n, generator=gen, device=dev)

    def apply(
        self, inputs: dict[str, torch.Tensor], gen: torch.Generator
    ) -> tuple[dict[str, torch.Tensor], float, torch.Tensor]:
        """Mixed ``inputs`` (forward() keyword tensors, the face first), lam and the permutation."""
        n = next(iter(inputs.values())).shape[0]
        kind, lam, perm = self.draw(n, gen)
        if kind == "mixup":
            return {k: lam * x + (1 - lam) * x[perm] for k, x in inputs.items()}, lam, perm
        cut = math.sqrt(1.0 - lam)  # the box's side as a share of the picture's
        cy, cx = (float(v) for v in torch.rand(2, generator=gen, device=gen.device))
        out, share = {}, None
        for k, x in inputs.items():
            h, w = x.shape[-2:]
            y0, y1 = _span(cy, cut, h)
            x0, x1 = _span(cx, cut, w)
            mixed = x.clone()
            mixed[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
            out[k] = mixed
            if share is None:  # lam from the face's box, as CutMix corrects it
                share = (y1 - y0) * (x1 - x0) / (h * w)
        return out, 1.0 - share, perm

    @staticmethod
    def targets(target: torch.Tensor, lam: float, perm: torch.Tensor, n_classes: int):
        """The mixed targets: class indices become one-hot first (BCE vote vectors stay)."""
        if target.dtype in (torch.int64, torch.int32):
            target = F.one_hot(target.long(), n_classes).float()
        return lam * target + (1 - lam) * target[perm]


def _span(centre: float, share: float, side: int) -> tuple[int, int]:
    """The pixel range of a box of ``share × side`` centred at ``centre × side``, clipped."""
    half = share * side / 2
    lo = int(round(min(max(centre * side - half, 0), side)))
    hi = int(round(min(max(centre * side + half, 0), side)))
    return lo, hi


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (hi - lo) + lo


def random_hflip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Flip each image left-right with probability ``p``."""
    flip = torch.rand(x.shape[0], generator=gen, device=x.device) < p
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def _grey_mean(x: torch.Tensor) -> torch.Tensor:
    grey = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    return grey.mean(dim=(-2, -1)).view(-1, 1, 1, 1)


def color_jitter(
    x: torch.Tensor, gen: torch.Generator, brightness: float = 0.2, contrast: float = 0.2
) -> torch.Tensor:
    """torchvision ColorJitter(brightness, contrast): factors U(1±b), U(1±c), random order."""
    n, dev = x.shape[0], x.device
    b = _uniform(gen, n, 1 - brightness, 1 + brightness, dev).view(-1, 1, 1, 1)
    c = _uniform(gen, n, 1 - contrast, 1 + contrast, dev).view(-1, 1, 1, 1)
    b_first = (torch.rand(n, generator=gen, device=dev) < 0.5).view(-1, 1, 1, 1)

    def bright(t):
        return (t * b).clamp(0.0, 1.0)

    def contr(t):
        return (c * t + (1 - c) * _grey_mean(t)).clamp(0.0, 1.0)

    return torch.where(b_first, contr(bright(x)), bright(contr(x)))


def random_affine(
    x: torch.Tensor,
    gen: torch.Generator,
    p: float = 0.7,
    degrees: float = 20.0,
    translate: float = 0.2,
    scale=(0.8, 1.0),
) -> torch.Tensor:
    """RandomApply([RandomAffine(degrees, translate, scale)], p): nearest sampling, fill 0.

    Angle U(±degrees), scale U(scale), translation a whole number of pixels up to
    ``translate × size`` each way, about the image centre, as torchvision draws them.
    """
    n, _, h, w = x.shape
    dev = x.device
    apply = torch.rand(n, generator=gen, device=dev) < p
    angle = _uniform(gen, n, -degrees, degrees, dev) * (math.pi / 180.0)
    s = _uniform(gen, n, scale[0], scale[1], dev)
    tx = torch.round(_uniform(gen, n, -translate * w, translate * w, dev))
    ty = torch.round(_uniform(gen, n, -translate * h, translate * h, dev))
    # Output pixel p samples input at A^-1 (p - t); in affine_grid's normalised coordinates.
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack(
        [
            torch.stack([cos, sin * h / w, -(cos * tx * 2 / w + sin * ty * 2 / w)], dim=1),
            torch.stack([-sin * w / h, cos, (sin * tx * 2 / h - cos * ty * 2 / h)], dim=1),
        ],
        dim=1,
    )
    eye = torch.eye(2, 3, device=dev).expand(n, 2, 3)
    theta = torch.where(apply.view(-1, 1, 1), theta, eye).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return torch.where(apply.view(-1, 1, 1, 1), out, x)


def random_erasing(
    x: torch.Tensor, gen: torch.Generator, p: float = 0.5, scale=(0.02, 0.25), ratio=(0.3, 3.3)
) -> torch.Tensor:
    """torchvision RandomErasing(p, scale, ratio, value=0), batched.

    Up to ten (area, log-ratio) draws per image; the first rectangle that fits is erased, an image
    with none that fits is left as is (torchvision's behaviour).
    """
    n, _, h, w = x.shape
    dev = x.device
    erase = torch.rand(n, generator=gen, device=dev) < p
    k = ERASE_ATTEMPTS
    area = _uniform(gen, n * k, scale[0], scale[1], dev).view(n, k) * (h * w)
    log_r = _uniform(gen, n * k, math.log(ratio[0]), math.log(ratio[1]), dev).view(n, k)
    r = torch.exp(log_r)
    eh = torch.round(torch.sqrt(area * r))
    ew = torch.round(torch.sqrt(area / r))
    fits = (eh < h) & (ew < w)
    first = torch.argmax(fits.int(), dim=1, keepdim=True)
    eh = eh.gather(1, first).squeeze(1)
    ew = ew.gather(1, first).squeeze(1)
    erase &= fits.any(dim=1)
    top = torch.floor(torch.rand(n, generator=gen, device=dev) * (h - eh + 1))
    left = torch.floor(torch.rand(n, generator=gen, device=dev) * (w - ew + 1))
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    box = (
        (rows >= top.view(-1, 1, 1))
        & (rows < (top + eh).view(-1, 1, 1))
        & (cols >= left.view(-1, 1, 1))
        & (cols < (left + ew).view(-1, 1, 1))
    )
    mask = (box & erase.view(-1, 1, 1)).unsqueeze(1)
    return x.masked_fill(mask, 0.0)
