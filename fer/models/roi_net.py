"""Global-ROI Net: whole-face ResNet-18 with CBAM in every block + shared ROI trunk, sum fusion.

Reference: the reference code's ``global_roi/package/model1.py``, both
branches randomly initialised. 24,222,509 parameters for C=7, 24,223,024 for C=8:

* whole branch: torchvision ResNet-18 with ``CBAM(planes, 16)`` on the residual path of every
  BasicBlock (after ``bn2``, before the identity add); avgpool → 512-d ``whole``;
* ROI trunk (shared by eye, nose, mouth): conv1, bn1, relu (no maxpool), layer1, layer2,
  TransformerBlock(128), layer3, TransformerBlock(256), layer4; the three 512-channel maps are
  concatenated, global-max-pooled (1536), then ``BN(Linear(1536, 512)(ReLU(.)))`` → ``roi``;
* one shared head ``BN_C(Linear(512, C))`` applied, in this order, to ``whole``, ``roi`` and
  ``ReLU(whole + roi)``: its running statistics update three times per training forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from fer.models.base import FerModel
from fer.models.cbam import CBAM, Fp32BatchNorm1d
from fer.models.global_net import TRUNK_LAYERS, resnet_trunk
from fer.models.weights import load_into_trunk

ROI_LAYERS = ("conv1", "bn1", "relu", "layer1", "layer2", "attn2", "layer3", "attn3", "layer4")


class CbamBasicBlock(BasicBlock):
    """torchvision BasicBlock with ``CBAM(planes, 16)`` on the residual path before the add."""

    def __init__(self, inplanes: int, planes: int, *args, **kwargs) -> None:
        super().__init__(inplanes, planes, *args, **kwargs)
        self.cbam = CBAM(planes, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """conv-bn-relu-conv-bn, CBAM, + identity (downsampled if needed), ReLU."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(self.cbam(out) + identity)


class SelfAttention(nn.Module):
    """Multi-head self-attention, separate Q/K/V ``Linear(C, C)``, scale ``1/sqrt(C/heads)``;
    under bf16 autocast on the CPU the softmax core runs in fp32 (faster there)."""

    def __init__(self, dim: int, heads: int = 8) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(dim, dim) for _ in range(3))
        self.proj = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Attend over all tokens (B×N×C): no mask, no positional encoding."""
        b, n, c = tokens.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, c // self.heads).transpose(1, 2)

        q, k, v = split(self.query(tokens)), split(self.key(tokens)), split(self.value(tokens))
        if q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16):
            # torch's CPU flash attention is slower in bf16 than in fp32, forward + backward on
            # 2 cores of a Xeon with AMX: 2.4x at 529 tokens (90 px ROIs), 4x at 144, 8x at 36
            # (24 px): the core runs in fp32 (the Global-ROI Net's bf16 step: 1.28x faster)
            with torch.autocast("cpu", enabled=False):
                out = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
            out = out.to(q.dtype)
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class QuickGELU(nn.Module):
    """``x · sigmoid(1.702 x)`` (the reference's "GELU2")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the activation element-wise."""
        return x * torch.sigmoid(1.702 * x)


class TransformerBlock(nn.Module):
    """Pre-LN block on a feature map's H·W tokens: ``x + Attn(LN x)``, then ``x + MLP(LN x)``."""

    def __init__(self, dim: int, heads: int = 8) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), QuickGELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B×C×H×W in, B×C×H×W out, in the input's memory format."""
        b, c, h, w = x.shape
        t = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
        t = t + self.attn(self.ln1(t))
        t = t + self.mlp(self.ln2(t))
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else None
        out = t.view(b, h, w, c).permute(0, 3, 1, 2)
        return out.contiguous(memory_format=fmt or torch.contiguous_format)


def whole_branch() -> nn.Sequential:
    """ResNet-18 with CBAM in every BasicBlock (torchvision init: Kaiming fan_out for all convs)."""
    return resnet_trunk(ResNet(CbamBasicBlock, [2, 2, 2, 2]), TRUNK_LAYERS)


def roi_trunk() -> nn.Sequential:
    """ResNet-18 without maxpool, with a TransformerBlock after layer2 (128) and layer3 (256)."""
    resnet = torchvision.models.resnet18(weights=None)
    resnet.attn2, resnet.attn3 = TransformerBlock(128), TransformerBlock(256)
    return resnet_trunk(resnet, ROI_LAYERS)


class GlobalRoiNet(FerModel):
    """Two-branch model; ``forward`` gives ``(x, x_whole, x_roi)``, each (B, C); ``x`` predicts."""

    arch = "roi"
    uses_rois = True
    class_head = ("fc.", "bn.")  # shared by the three heads: not copied when fine-tuning

    def __init__(self, num_classes: int, face_size: int = 224, roi_size: int = 90) -> None:
        super().__init__(num_classes, face_size, roi_size)
        self.whole = whole_branch()
        self.whole_pool = nn.AdaptiveAvgPool2d(1)
        self.roi_trunk = roi_trunk()
        self.roi_pool = nn.AdaptiveMaxPool2d(1)
        self.fc_roi = nn.Linear(3 * 512, 512)
        self.bn_roi = Fp32BatchNorm1d(512)
        self.fc = nn.Linear(512, num_classes)  # shared by the three heads
        self.bn = Fp32BatchNorm1d(num_classes)  # shared by the three heads

    def head(self, v: torch.Tensor) -> torch.Tensor:
        """The shared classifier ``BN_C(Linear(512, C))``; float32 logits."""
        return self.bn(self.fc(v))

    def roi_vector(self, eye: torch.Tensor, nose: torch.Tensor, mouth: torch.Tensor):
        """512-d ROI vector. Training runs the trunk once per ROI (per-ROI BN batch statistics,
        as the reference); eval batches the three crops in one pass (same result, faster)."""
        if self.training:
            maps = [self.roi_trunk(r) for r in (eye, nose, mouth)]
        else:
            # a view by the batch size, not chunk(3): exportable with a dynamic batch (fer export)
            maps = self.roi_trunk(torch.cat((eye, nose, mouth))).unflatten(0, (3, eye.shape[0]))
            maps = maps.unbind(0)
        roi = torch.flatten(self.roi_pool(torch.cat(maps, dim=1)), 1)
        return self.bn_roi(self.fc_roi(F.relu(roi)))

    def classify(self, face, eye, nose, mouth) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x, x_whole, x_roi)`` logits for the face (B×3×F×F) and its three ROIs (B×3×R×R)."""
        whole = torch.flatten(self.whole_pool(self.whole(face)), 1)
        roi = self.roi_vector(eye, nose, mouth)
        x_whole = self.head(whole)
        x_roi = self.head(roi)
        x = self.head(F.relu(whole + roi))
        return x, x_whole, x_roi

    def load_backbone(self, state: dict[str, torch.Tensor], source: str) -> int:
        """Beyond the reference (which trains from scratch): ResNet-18 weights into both trunks;
        CBAM and attention blocks keep their init. Returns the number of tensors copied."""
        return load_into_trunk(self.whole, state, source, extra=("cbam",)) + load_into_trunk(
            self.roi_trunk, state, source, extra=("attn2", "attn3")
        )
