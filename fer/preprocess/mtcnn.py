"""MTCNN face detection (Zhang et al. 2016) as facenet-pytorch 2.5.3 runs it, with its bundled
weights, rebuilt for throughput.

The three nets and their weights are facenet-pytorch's (``facenet_pytorch/data/{p,r,o}net.pt``,
read without importing the package, which would import torchvision and with it torch._dynamo:
seconds of start-up per process). The cascade is ``facenet_pytorch.models.utils.detect_face``'s,
step for step, with its two slow parts replaced:

- the R-net / O-net inputs: facenet-pytorch crops and area-resizes every candidate box in a
  Python loop (one ``interpolate`` call per box, thousands per batch). Here every box of the batch
  is resized at once from a summed-area table of the batch: ``area`` interpolation is a mean over
  integer index windows, so the sums are exact integers and the means are the same float32
  values (:func:`area_crops`);
- non-maximum suppression runs on the host per image, in float32, with torchvision's rule
  (IoU > t suppresses, areas without +1) and facenet-pytorch's "Min" rule for the last stage.

The nets run channels-last (on the CPU ~3x faster pooling, ~2x faster convolutions, same values).
Boxes agree with facenet-pytorch's ``MTCNN.detect`` as closely as it agrees with itself at
another batch size (``tests/test_mtcnn.py``, on real faces): saturated scores tie, and which of
two near-identical boxes is kept then depends on float noise.

``min_face`` sets the smallest face searched for, hence the first pyramid level: the P-net's cost
grows with the square of ``12 / min_face``. facenet-pytorch's default is 20 px whatever the frame;
:func:`fer.preprocess.detect.min_face_for` scales it with the frame (``auto``: a tenth of the
short side, at least 20), since a face of a few percent of a portrait is no expression data.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fer.errors import FerError
from fer.preprocess.detect import check_min_face, min_face_for

THRESHOLDS = (0.6, 0.7, 0.7)  # facenet-pytorch's defaults: P-, R-, O-net score thresholds
FACTOR = 0.709  # pyramid step


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


def weights_folder() -> Path:
    """facenet-pytorch's ``data`` folder (the bundled P/R/O-net weights), found without importing
    the package."""
    spec = importlib.util.find_spec("facenet_pytorch")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" if spec else None
    if folder is None or not (folder / "pnet.pt").is_file():
        raise FerError(
            "the mtcnn detector needs facenet-pytorch's bundled weights (facenet_pytorch/data/"
            "pnet.pt …): pip install 'facenet-pytorch>=2.5.3,<2.6'"
        )
    return folder


def load_nets(device: str = "cpu") -> tuple[PNet, RNet, ONet]:
    """The three nets with facenet-pytorch's weights, in eval mode on ``device``, channels-last
    (on the CPU its pooling is ~3x and its convolutions ~2x faster than NCHW, same values)."""
    folder, nets = weights_folder(), (PNet(), RNet(), ONet())
    for net, name in zip(nets, ("pnet", "rnet", "onet"), strict=True):
        state = torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        net.to(device, memory_format=torch.channels_last).eval().requires_grad_(False)
    return nets


def pyramid(height: int, width: int, min_face: int, factor: float = FACTOR) -> list[float]:
    """The P-net's scales: from 12 / ``min_face`` down while the short side stays ≥ 12 px."""
    m = 12.0 / min_face
    short, scales, scale = min(height, width) * m, [], m
    while short >= 12:
        scales.append(scale)
        scale, short = scale * factor, short * factor
    return scales


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, rule: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression of ``boxes`` (N×4 float32), best score first. ``union``:
    torchvision's ``nms`` (IoU, areas w·h; of equal scores the first is kept); ``min``:
    facenet-pytorch's ``nms_numpy(..., 'Min')`` (intersection over the smaller area, areas
    (w+1)·(h+1); its ascending ``argsort`` walked from the end). Returns kept indices."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    one = np.float32(1 if rule == "min" else 0)
    area = (x2 - x1 + one) * (y2 - y1 + one)
    order = np.argsort(scores)[::-1] if rule == "min" else np.argsort(-scores, kind="stable")
    keep, zero = [], np.float32(0)
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(zero, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + one)
        h = np.maximum(zero, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + one)
        inter = w * h
        if rule == "min":
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, np.int64)


def batched_nms(boxes: torch.Tensor, image: torch.Tensor, threshold: float, rule: str = "union"):
    """:func:`nms` within each image of the batch; ``boxes`` N×≥5 (x1, y1, x2, y2, score).
    ``union`` runs image by image; ``min`` as facenet-pytorch, over the whole batch with each
    image's boxes shifted apart (its float32 rounding and tie order included). Returns the kept
    rows' indices, a tensor on the boxes' device."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    if rule == "min":
        shift = image.to(boxes) * (boxes[:, :4].max() + 1)
        shifted = (boxes[:, :4] + shift[:, None]).cpu().numpy()
        keep = nms(shifted, boxes[:, 4].cpu().numpy(), threshold, rule)
        return torch.as_tensor(keep, device=boxes.device)
    b, im = boxes[:, :5].cpu().numpy(), image.cpu().numpy()
    keep = []
    for k in np.unique(im):
        rows = np.flatnonzero(im == k)
        keep.append(rows[nms(b[rows, :4], b[rows, 4], threshold, rule)])
    return torch.as_tensor(np.concatenate(keep), device=boxes.device)


def area_windows(start: torch.Tensor, stop: torch.Tensor, size: int):
    """``area`` interpolation's input windows: for spans [start, stop) (K,) resized to ``size``,
    the (K, size) first and last+1 input index of each output cell (adaptive pooling's rule)."""
    length = (stop - start).unsqueeze(1)
    i = torch.arange(size, device=start.device).unsqueeze(0)
    lo = start.unsqueeze(1) + torch.div(i * length, size, rounding_mode="floor")
    hi = start.unsqueeze(1) + torch.div((i + 1) * length + size - 1, size, rounding_mode="floor")
    return lo, hi


def summed_area(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B, H+1, W+1, C) integer summed-area table of the (B, H, W, C) uint8 batch, on
    ``device`` (numpy's cumulative sums on the CPU: several times torch's there)."""
    b, h, w, c = images.shape
    kind = np.int32 if 255 * h * w < 2**31 else np.int64
    if device.type != "cpu":
        table = torch.zeros(
            (b, h + 1, w + 1, c), dtype=getattr(torch, kind.__name__), device=device
        )
        table[:, 1:, 1:] = (
            torch.as_tensor(images, device=device).to(table.dtype).cumsum(1).cumsum(2)
        )
        return table
    table = np.zeros((b, h + 1, w + 1, c), kind)
    np.cumsum(images, axis=1, dtype=kind, out=table[:, 1:, 1:])
    np.cumsum(table[:, 1:, 1:], axis=2, out=table[:, 1:, 1:])
    return torch.from_numpy(table)


def area_crops(table: torch.Tensor, image: torch.Tensor, box: tuple, size: int) -> torch.Tensor:
    """The boxes' crops area-resized to ``size``² (K, 3, size, size), normalised as the nets
    expect: every box of every image at once. ``box``: (y0, y1, x0, x1) index tensors (crop rows
    y0…y1-1, columns x0…x1-1) of image ``image`` in ``table`` (:func:`summed_area`). The same
    float32 values as ``F.interpolate(crop, size, mode="area")``: integer window sums / rows /
    columns."""
    y0, y1, x0, x1 = box
    r0, r1 = area_windows(y0, y1, size)
    c0, c1 = area_windows(x0, x1, size)
    _, h1, w1, c = table.shape
    flat = table.view(-1, c)
    base = image.view(-1, 1, 1) * h1
    r0, r1, c0, c1 = r0[:, :, None], r1[:, :, None], c0[:, None, :], c1[:, None, :]

    def at(r, col):  # (K, size, size, C) table values, one flat gather
        return flat.index_select(0, ((base + r) * w1 + col).reshape(-1)).view(-1, size, size, c)

    sums = at(r1, c1) - at(r0, c1) - at(r1, c0) + at(r0, c0)
    rows, cols = (r1 - r0).unsqueeze(-1).float(), (c1 - c0).unsqueeze(-1).float()
    crops = sums.float() / rows / cols  # adaptive pooling's order: sum / kh / kw
    return ((crops - 127.5) * 0.0078125).permute(0, 3, 1, 2)  # (K, 3, size, size) channels-last


def square(boxes: torch.Tensor) -> torch.Tensor:
    """facenet-pytorch's ``rerec``: each box made square on its longer side, same centre."""
    h, w = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    side = torch.maximum(w, h)
    out = boxes.clone()
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2], out[:, 3] = out[:, 0] + side, out[:, 1] + side
    return out


def regress(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    """facenet-pytorch's ``bbreg``: the boxes moved by the net's offsets (in box sizes, +1)."""
    w = (boxes[:, 2] - boxes[:, 0] + 1).unsqueeze(1)
    h = (boxes[:, 3] - boxes[:, 1] + 1).unsqueeze(1)
    out = boxes.clone()
    out[:, :4] = boxes[:, :4] + reg * torch.cat([w, h, w, h], dim=1)
    return out


def clip_windows(boxes: torch.Tensor, height: int, width: int):
    """facenet-pytorch's ``pad``: truncated boxes clipped to the image, as (y0, y1, x0, x1)
    0-based half-open index spans, and which are non-empty."""
    b = boxes[:, :4].trunc().int()
    x0, y0 = b[:, 0].clamp(min=1) - 1, b[:, 1].clamp(min=1) - 1
    x1, y1 = b[:, 2].clamp(max=width), b[:, 3].clamp(max=height)
    valid = (y1 > y0) & (x1 > x0)
    return (y0.long(), y1.long(), x0.long(), x1.long()), valid


class FastMTCNN:
    """The cascade over a batch of equal-size RGB images: :meth:`detect` returns, per image, an
    N×5 float32 array of boxes (x1, y1, x2, y2, probability), best first."""

    def __init__(self, device: str = "cpu", min_face="auto", thresholds=THRESHOLDS):
        self.device, self.min_face = torch.device(device), check_min_face(min_face)
        self.thresholds = thresholds
        self.pnet, self.rnet, self.onet = load_nets(device)

    @torch.inference_mode()
    def detect(self, images: np.ndarray) -> list[np.ndarray]:
        """Faces of each image of the (B, H, W, 3) uint8 batch."""
        images = np.ascontiguousarray(images)
        imgs = torch.as_tensor(images, device=self.device)
        imgs = imgs.permute(0, 3, 1, 2).float()
        n, height, width = imgs.shape[0], imgs.shape[2], imgs.shape[3]
        boxes, image = self._propose(imgs, min_face_for(self.min_face, height, width))
        table = summed_area(images, self.device) if len(boxes) else None
        if len(boxes):
            boxes, image, reg = self._score(self.rnet, table, boxes, image, 24, self.thresholds[1])
            keep = batched_nms(boxes, image, 0.7)
            boxes, image = square(regress(boxes[keep], reg[keep])), image[keep]
        if len(boxes):
            boxes, image, reg = self._score(self.onet, table, boxes, image, 48, self.thresholds[2])
            boxes = regress(boxes, reg)
            keep = batched_nms(boxes, image, 0.7, "min")
            boxes, image = boxes[keep], image[keep]
        found, image = boxes[:, :5].cpu().numpy(), image.cpu().numpy()
        return [found[image == k] for k in range(n)]

    def _propose(self, imgs: torch.Tensor, min_face: int):
        """Stage 1: the P-net over the pyramid; candidate boxes (x1, y1, x2, y2, score, 4
        offsets) and their image, after NMS per scale (0.5) and per image (0.7), regressed and
        squared."""
        height, width = imgs.shape[2:]
        found, images = [], []
        for scale in pyramid(height, width, min_face):
            size = (int(height * scale + 1), int(width * scale + 1))
            level = F.interpolate(imgs, size=size, mode="area")
            level = ((level - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last)
            reg, probs = self.pnet(level)
            boxes, image = _cells(reg, probs[:, 1], scale, self.thresholds[0])
            keep = batched_nms(boxes, image, 0.5)
            found.append(boxes[keep]), images.append(image[keep])
        if not found:
            return torch.zeros((0, 9), device=imgs.device), torch.zeros(0, dtype=torch.long)
        boxes, image = torch.cat(found), torch.cat(images)
        keep = batched_nms(boxes, image, 0.7)
        boxes, image = boxes[keep], image[keep]
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        moved = boxes[:, :4] + boxes[:, 5:9] * torch.stack([w, h, w, h], dim=1)
        return square(torch.cat([moved, boxes[:, 4:5]], dim=1)), image

    @staticmethod
    def _score(net, table, boxes, image, size, threshold):
        """Stages 2 and 3: crops of the boxes through ``net``; the boxes that pass, their new
        score, their image and the net's offsets."""
        windows, valid = clip_windows(boxes, table.shape[1] - 1, table.shape[2] - 1)
        windows = tuple(w[valid] for w in windows)
        boxes, image = boxes[valid], image[valid]
        if len(boxes) == 0:
            return boxes, image, boxes[:, :4]
        out = net(area_crops(table, image, windows, size))
        reg, score = out[0], out[-1][:, 1]
        passed = score > threshold
        kept = torch.cat([boxes[passed, :4], score[passed].unsqueeze(1)], dim=1)
        return kept, image[passed], reg[passed]


def _cells(reg: torch.Tensor, probs: torch.Tensor, scale: float, threshold: float):
    """facenet-pytorch's ``generateBoundingBox``: the P-net cells over ``threshold`` as boxes in
    image pixels (x1, y1, x2, y2, score, 4 offsets), and their image."""
    mask = probs >= threshold
    where = mask.nonzero()
    score = probs[mask]
    offsets = reg.permute(1, 0, 2, 3)[:, mask].permute(1, 0)
    cell = where[:, 1:].to(reg.dtype).flip(1)
    q1 = ((2 * cell + 1) / scale).floor()
    q2 = ((2 * cell + 12) / scale).floor()
    return torch.cat([q1, q2, score.unsqueeze(1), offsets], dim=1), where[:, 0]
