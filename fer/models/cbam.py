"""CBAM (Woo et al. 2018) exactly as the reference's ``package/cbam.py``, plus the fp32 head BN.

Reference: the reference code's CBAM module. ``CBAM(C)`` = channel gate (shared MLP
``C → C/16 → C`` with biases over global avg- and max-pool, summed, sigmoid) then spatial gate
(``[max, mean]`` over channels → 7×7 conv without bias → ``BatchNorm2d(1, momentum=0.01)`` →
sigmoid). ``CBAM(512)`` has 33,412 parameters.

In training the four pools run as :class:`SpatialPools` and :class:`ChannelPools`, whose backward
passes send each max's gradient to one argmax, as the reference's ``max_pool2d`` and
``torch.max`` do (autograd's ``amax`` splits it over ties), and keep the map's memory format
(autograd's mean and amax backward passes give NCHW gradients that then meet channels_last ones:
1.2-1.7x slower per CBAM's forward and backward on 2 cores of a Xeon, fp32 and bf16). The
forward values are the same ops'; eval, export and inference use the plain ops.
"""

from __future__ import annotations

import torch
from torch import nn


def _layout(x: torch.Tensor) -> torch.memory_format:
    """The memory format a gradient for ``x`` should have."""
    cl = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if cl else torch.contiguous_format


class SpatialPools(torch.autograd.Function):
    """Mean and max over H and W of a B×C×H×W map (each B×C)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor):
        flat = x.flatten(2)  # a view, NCHW or channels_last
        top, where = flat.max(dim=2)
        ctx.save_for_backward(where)
        ctx.shape, ctx.layout = x.shape, _layout(x)
        return flat.mean(dim=2), top

    @staticmethod
    def backward(ctx, d_mean: torch.Tensor, d_max: torch.Tensor) -> torch.Tensor:
        (where,) = ctx.saved_tensors
        b, c, h, w = ctx.shape
        dx = (d_mean / (h * w))[:, :, None, None].expand(b, c, h, w)
        dx = dx.contiguous(memory_format=ctx.layout)
        dx.flatten(2).scatter_add_(2, where[:, :, None], d_max[:, :, None].to(dx.dtype))
        return dx


class ChannelPools(torch.autograd.Function):
    """``[max, mean]`` over the channels of a B×C×H×W map: B×2×H×W."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        top, where = x.max(dim=1, keepdim=True)
        ctx.save_for_backward(where)
        ctx.shape, ctx.layout = x.shape, _layout(x)
        return torch.cat((top, x.mean(dim=1, keepdim=True)), dim=1)

    @staticmethod
    def backward(ctx, d: torch.Tensor) -> torch.Tensor:
        (where,) = ctx.saved_tensors
        b, c, h, w = ctx.shape
        dx = (d[:, 1:] / c).expand(b, c, h, w).contiguous(memory_format=ctx.layout)
        return dx.scatter_add_(1, where, d[:, :1].to(dx.dtype))


def _training(module: nn.Module, x: torch.Tensor) -> bool:
    return module.training and x.requires_grad and torch.is_grad_enabled()


class ChannelGate(nn.Module):
    """Channel attention: ``sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))`` scales each channel."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = channels // reduction
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale the channels of ``x`` (B×C×H×W) by their attention weights."""
        if _training(self, x):
            mean, top = SpatialPools.apply(x)
        else:
            mean, top = x.mean(dim=(2, 3)), x.amax(dim=(2, 3))
        att = self.mlp(mean) + self.mlp(top)
        return x * torch.sigmoid(att)[:, :, None, None].to(x.dtype)


class SpatialGate(nn.Module):
    """Spatial attention: ``sigmoid(BN(conv7x7([max_c x, mean_c x])))`` scales each position."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale the positions of ``x`` (B×C×H×W) by their attention weights."""
        if _training(self, x):
            pooled = ChannelPools.apply(x)
        else:
            pooled = torch.cat((x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)), dim=1)
        return x * torch.sigmoid(self.bn(self.conv(pooled))).to(x.dtype)


class CBAM(nn.Module):
    """Convolutional block attention module: channel gate, then spatial gate."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.channel_gate = ChannelGate(channels, reduction)
        self.spatial_gate = SpatialGate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply channel then spatial attention to ``x`` (B×C×H×W); the shape is unchanged."""
        return self.spatial_gate(self.channel_gate(x))


class Fp32BatchNorm1d(nn.BatchNorm1d):
    """``BatchNorm1d`` that always normalises in float32, also under bf16/fp16 autocast.

    The reference applies BN to the logits (and one BN is shared by three heads in the
    Global-ROI Net), so its statistics must not be computed in reduced precision. The state dict
    is that of a plain ``BatchNorm1d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` (B×C) in float32 with autocast disabled; returns float32."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            return super().forward(x.float())
