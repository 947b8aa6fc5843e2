"""Stand-in for the reference's ``global/package/resnet_cbam.py``: the Global Net (doc 2.2).

torchvision ResNet-18 without its avgpool and fc (``children()[:-2]``), then CBAM(512),
AdaptiveAvgPool2d(1), flatten, Linear(512, C) and BatchNorm1d(C) on the logits. The reference
loads ImageNet weights (``pretrained=True``); this stand-in never downloads anything, so its
backbone is randomly initialised.
"""

import torch
import torchvision
from torch import nn

from .cbam import CBAM


class Resnet(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        resnet = torchvision.models.resnet18(weights=None)
        self.features = nn.Sequential(*list(resnet.children())[:-2])
        self.cbam = CBAM(512)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        self.bn = nn.BatchNorm1d(num_classes)

    def forward(self, x):
        x = self.features(x)
        x = self.cbam(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        x = self.bn(x)
        return x
