"""MTCNN's nets in torch, for a GPU: facenet-pytorch's modules (its layer names, so its state
dicts load), fed the NumPy cascade's batches (:mod:`fer.preprocess.mtcnn`). On the CPU fer runs
the NumPy nets instead (:mod:`fer.preprocess.mtcnn_nets`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fer.preprocess.mtcnn_nets import NET_NAMES, load_weights


class PNet(nn.Module):
    """The proposal net (facenet-pytorch's layer names, so its state dict loads)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """The refinement net."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """The output net (its landmark head is loaded but not run: fer aligns with dlib)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2 = nn.Linear(256, 2), nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), torch.softmax(self.dense6_1(x), dim=1)


class TorchNets:
    """The three nets on ``device``, channels-last, with the :class:`~fer.preprocess.mtcnn_nets.
    NumpyNets` interface: channels-last batches in, NumPy (offsets, face probability) out."""

    def __init__(self, device: str = "cuda", weights=None):
        self.device = torch.device(device)
        weights = weights or load_weights()
        self.p, self.r, self.o = (PNet(), RNet(), ONet())
        for net, name in zip((self.p, self.r, self.o), NET_NAMES, strict=True):
            net.load_state_dict({k: torch.from_numpy(v) for k, v in weights[name].items()})
            net.to(self.device, memory_format=torch.channels_last).eval().requires_grad_(False)

    @torch.inference_mode()
    def levels(self, images: np.ndarray, sizes):
        """The pyramid levels of the uint8 batch, area-resized on the device and normalised."""
        imgs = torch.as_tensor(images, device=self.device).permute(0, 3, 1, 2).float()
        for size in sizes:
            level = F.interpolate(imgs, size=size, mode="area")
            yield ((level - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def pnet(self, level: torch.Tensor):
        reg, probs = self.p(level)
        return reg.permute(0, 2, 3, 1).cpu().numpy(), probs[:, 1].cpu().numpy()

    def rnet(self, crops: np.ndarray):
        return self._run(self.r, crops)

    def onet(self, crops: np.ndarray):
        return self._run(self.o, crops)

    @torch.inference_mode()
    def _run(self, net, crops: np.ndarray):
        x = torch.from_numpy(crops).to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        reg, probs = net(x)
        return reg.cpu().numpy(), probs[:, 1].cpu().numpy()
