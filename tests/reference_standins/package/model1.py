"""Stand-in for the reference's ``global_roi/package/model1.py``: the Global-ROI Net (doc 2.3).

Whole branch: resnet_cbam1's ResNet-18 with CBAM in every block, ``children()[:-3]``, then
AdaptiveAvgPool2d(1) (512). ROI branch: one trunk shared by eye, nose and mouth, built from a
randomly initialised torchvision ResNet-18 without its maxpool, with a ``my_Block_2`` after
layer2 and after layer3; the three maps are concatenated on the channels, max-pooled to 1536,
ReLU, Linear(1536, 512), BatchNorm1d(512). One head, Linear(512, C) + BatchNorm1d(C), is shared
by the whole, the ROI and the fused (ReLU(whole + roi)) vectors; forward returns
(x, x_whole, x_roi).
"""

import torch
import torchvision
from torch import nn

from . import resnet_cbam1
from .transformer_layer import my_Block_2


class ResNet(nn.Module):
    def __init__(self, num_classes, n_head=8, resnet_cbam=1):
        super().__init__()
        if resnet_cbam != 1:
            raise ValueError("this stand-in re-creates only resnet_cbam=1 (the trainers' value)")
        whole = resnet_cbam1.resnet18(use_cbam=True)
        self.features_whole = nn.Sequential(*list(whole.children())[:-3])

        resnet = torchvision.models.resnet18(weights=None)
        self.features = nn.Sequential(
            resnet.conv1,
            resnet.bn1,
            resnet.relu,
            resnet.layer1,
            resnet.layer2,
            my_Block_2(128, n_head),
            resnet.layer3,
            my_Block_2(256, n_head),
            resnet.layer4,
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.maxpool = nn.AdaptiveMaxPool2d(1)
        self.relu = nn.ReLU()
        self.fc_roi = nn.Linear(512 * 3, 512)
        self.bn_roi = nn.BatchNorm1d(512)
        self.fc = nn.Linear(512, num_classes)
        self.bn = nn.BatchNorm1d(num_classes)

    def forward(self, img, eye, nose, mouth):
        whole = self.features_whole(img)
        whole = self.avgpool(whole)
        whole = torch.flatten(whole, 1)

        roi = torch.cat([self.features(eye), self.features(nose), self.features(mouth)], dim=1)
        roi = self.maxpool(roi)
        roi = torch.flatten(roi, 1)
        roi = self.relu(roi)
        roi = self.fc_roi(roi)
        roi = self.bn_roi(roi)

        x_whole = self.bn(self.fc(whole))
        x_roi = self.bn(self.fc(roi))
        x = self.bn(self.fc(self.relu(whole + roi)))
        return x, x_whole, x_roi
