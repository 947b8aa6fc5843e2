"""CBAM (Woo et al. 2018) exactly as the reference's ``package/cbam.py``, plus the fp32 head BN.

Reference: the reference code's CBAM module. ``CBAM(C)`` = channel gate (shared MLP
``C → C/16 → C`` with biases over global avg- and max-pool, summed, sigmoid) then spatial gate
(``[max, mean]`` over channels → 7×7 conv without bias → ``BatchNorm2d(1, momentum=0.01)`` →
sigmoid). ``CBAM(512)`` has 33,412 parameters.
"""

from __future__ import annotations

import torch
from torch import nn


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
        att = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))
        return x * torch.sigmoid(att)[:, :, None, None].to(x.dtype)


class SpatialGate(nn.Module):
    """Spatial attention: ``sigmoid(BN(conv7x7([max_c x, mean_c x])))`` scales each position."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale the positions of ``x`` (B×C×H×W) by their attention weights."""
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
