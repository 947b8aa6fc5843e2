"""Global Net: ImageNet ResNet-18 trunk, CBAM(512), average pool, ``Linear(512, C)``, BN on logits.

Reference: the reference code's ``global/package/resnet_cbam.py`` (docs/reference.md says where
fer departs from it).
11,213,529 parameters for C=7, 11,214,044 for C=8.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torchvision
from torch import nn

from fer.models.base import FerModel
from fer.models.cbam import CBAM, Fp32BatchNorm1d
from fer.models.weights import load_into_trunk

TRUNK_LAYERS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def resnet_trunk(resnet: nn.Module, names: tuple[str, ...] = TRUNK_LAYERS) -> nn.Sequential:
    """The named children of a torchvision ResNet as a Sequential (keys stay torchvision's)."""
    return nn.Sequential(OrderedDict((name, getattr(resnet, name)) for name in names))


class GlobalNet(FerModel):
    """Single-branch model on the face; ``forward`` returns logits (B, C)."""

    arch = "global"
    uses_rois = False
    class_head = ("fc.", "bn.")  # the classifier: not copied when fine-tuning on other classes

    def __init__(self, num_classes: int, face_size: int = 224, roi_size: int = 90) -> None:
        super().__init__(num_classes, face_size, roi_size)
        self.trunk = resnet_trunk(torchvision.models.resnet18(weights=None))
        self.cbam = CBAM(512)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        self.bn = Fp32BatchNorm1d(num_classes)

    def classify(self, face: torch.Tensor) -> torch.Tensor:
        """Logits (B, C), float32, for ``face`` (B×3×H×W); ``forward`` ignores ROI tensors."""
        features = torch.flatten(self.pool(self.cbam(self.trunk(face))), 1)
        return self.bn(self.fc(features))

    def load_backbone(self, state: dict[str, torch.Tensor], source: str) -> int:
        """Initialise the ResNet-18 trunk from a torchvision state_dict; returns tensors copied."""
        return load_into_trunk(self.trunk, state, source)
