"""MTCNN face detection (Zhang et al. 2016) as facenet-pytorch 2.5.3 runs it, with its bundled
weights, rebuilt for throughput.

The cascade is ``facenet_pytorch.models.utils.detect_face``'s, step for step, in NumPy; the nets
run in NumPy on the CPU (:mod:`fer.preprocess.mtcnn_nets`: no torch import, which alone costs
more than a second per run) and in torch on a GPU (:mod:`fer.preprocess.mtcnn_torch`). Its slow
parts are replaced:

- the image pyramid and the R-net / O-net inputs: facenet-pytorch area-resizes the batch per
  pyramid level and crops every candidate box in a Python loop (one ``interpolate`` call per
  box). Here both come from integer sums: ``area`` interpolation is a mean over integer index
  windows, so window sums from cumulative sums are exact and the means are the same float32
  values (:func:`area_level`, :func:`area_crops`);
- non-maximum suppression runs per image, in float32, with torchvision's rule (IoU > t
  suppresses, areas without +1) and facenet-pytorch's "Min" rule for the last stage.

Boxes agree with facenet-pytorch's ``MTCNN.detect`` as closely as it agrees with itself at
another batch size (``tests/test_mtcnn.py``, on real faces): saturated scores tie, and which of
two near-identical boxes is kept then depends on float noise.

``min_face`` sets the smallest face searched for, hence the first pyramid level: the P-net's cost
grows with the square of ``12 / min_face``. facenet-pytorch's default is 20 px whatever the frame;
:func:`min_face_for` scales it with the frame (``auto``: a tenth of the
short side, at least 20), since a face of a few percent of a portrait is no expression data.
"""

from __future__ import annotations

import numpy as np

from fer.errors import FerError
from fer.preprocess.mtcnn_nets import NumpyNets

MIN_FACE = 20  # facenet-pytorch's default smallest MTCNN face, in pixels, whatever the frame
AUTO_FRACTION = 0.1  # ``auto``: the smallest face is this share of the frame's short side


def min_face_for(setting: str | int | float, height: int, width: int) -> int:
    """MTCNN's smallest face (pixels) in a ``height`` x ``width`` frame: ``auto`` (a tenth of
    the short side, at least 20 px), a number of pixels (a whole number ≥ 12), or a share of the
    short side (a number between 0 and 1)."""
    short = min(height, width)
    if setting == "auto":
        return max(MIN_FACE, int(round(AUTO_FRACTION * short)))
    try:
        value = float(setting)
    except (TypeError, ValueError):
        value = float("nan")
    if 0 < value < 1:
        return max(12, int(round(value * short)))
    if value >= 12 and value == int(value):
        return int(value)
    raise FerError(
        f"mtcnn min_face {setting!r}: expected 'auto', a whole number of pixels >= 12, or a "
        "share of the frame's short side between 0 and 1"
    )


def check_min_face(setting):
    """``setting`` checked as :func:`min_face_for` reads it; returned as given."""
    min_face_for(setting, 100, 100)
    return setting


def parse_min_face(text: str) -> str | int | float:
    """An argparse type for ``--min-face``: ``auto``, pixels (int) or a share (float)."""
    import argparse

    value: str | int | float = text
    if text != "auto":
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                value = text
    try:
        return check_min_face(value)
    except FerError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None


THRESHOLDS = (0.6, 0.7, 0.7)  # facenet-pytorch's defaults: P-, R-, O-net score thresholds
FACTOR = 0.709  # pyramid step


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


def batched_nms(boxes: np.ndarray, image: np.ndarray, threshold: float, rule: str = "union"):
    """:func:`nms` within each image of the batch; ``boxes`` N×≥5 (x1, y1, x2, y2, score).
    ``union`` runs image by image; ``min`` as facenet-pytorch, over the whole batch with each
    image's boxes shifted apart (its float32 rounding and tie order included). Returns the kept
    rows' indices."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    if rule == "min":
        shift = image.astype(np.float32) * (boxes[:, :4].max() + 1)
        return nms(boxes[:, :4] + shift[:, None], boxes[:, 4], threshold, rule)
    keep = []
    for k in np.unique(image):
        rows = np.flatnonzero(image == k)
        keep.append(rows[nms(boxes[rows, :4], boxes[rows, 4], threshold, rule)])
    return np.concatenate(keep)


def area_windows(start, stop, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``area`` interpolation's input windows: for spans [start, stop) (K,) resized to ``size``,
    the (K, size) first and last+1 input index of each output cell (adaptive pooling's rule)."""
    start, stop = np.asarray(start, np.int64)[:, None], np.asarray(stop, np.int64)[:, None]
    length, i = stop - start, np.arange(size)[None, :]
    return start + i * length // size, start + ((i + 1) * length + size - 1) // size


def normalise(sums: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Window means, adaptive pooling's float32 order (sum / rows / columns), as the nets want
    them: ``(mean - 127.5) / 128``."""
    means = sums.astype(np.float32) / rows.astype(np.float32) / cols.astype(np.float32)
    means -= np.float32(127.5)
    means *= np.float32(0.0078125)
    return means


def summed_area(images: np.ndarray) -> np.ndarray:
    """(B, H+1, W+1, C) integer summed-area table of the (B, H, W, C) uint8 batch. (Row by row,
    then one in-place cumulative sum: 4x faster than casting cumulative sums.)"""
    b, h, w, c = images.shape
    table = np.zeros((b, h + 1, w + 1, c), np.int32 if 255 * h * w < 2**31 else np.int64)
    inner = table[:, 1:, 1:]
    inner[...] = images
    for y in range(1, h):
        np.add(inner[:, y], inner[:, y - 1], out=inner[:, y])
    np.cumsum(inner, axis=2, out=inner)
    return table


def area_level(table: np.ndarray, height: int, width: int) -> np.ndarray:
    """The whole batch area-resized to ``height`` × ``width`` (B, height, width, C), normalised:
    ``F.interpolate(images, (height, width), mode="area")``'s float32 values, from the
    :func:`summed_area` ``table``."""
    _, h1, w1, _ = table.shape
    (r0, r1), (c0, c1) = area_windows([0], [h1 - 1], height), area_windows([0], [w1 - 1], width)
    r0, r1, c0, c1 = r0[0], r1[0], c0[0], c1[0]
    rows = np.take(table, r1, axis=1)  # (B, height, W+1, C): row-window sums' running sums
    rows -= np.take(table, r0, axis=1)
    sums = np.take(rows, c1, axis=2)
    sums -= np.take(rows, c0, axis=2)
    return normalise(sums, (r1 - r0)[:, None, None], (c1 - c0)[:, None])


def area_crops(table: np.ndarray, image: np.ndarray, box: tuple, size: int) -> np.ndarray:
    """The boxes' crops area-resized to ``size``² (K, size, size, C), normalised as the nets
    expect: every box of every image at once. ``box``: (y0, y1, x0, x1) index arrays (crop rows
    y0…y1-1, columns x0…x1-1) of image ``image`` in ``table`` (:func:`summed_area`). The same
    float32 values as ``F.interpolate(crop, size, mode="area")``."""
    y0, y1, x0, x1 = box
    r0, r1 = area_windows(y0, y1, size)
    c0, c1 = area_windows(x0, x1, size)
    _, h1, w1, c = table.shape
    flat = table.reshape(-1, c)
    base = np.asarray(image, np.int64).reshape(-1, 1, 1) * h1
    r0, r1, c0, c1 = r0[:, :, None], r1[:, :, None], c0[:, None, :], c1[:, None, :]

    def at(r, col):  # (K, size, size, C) table values, one flat gather (take: 3x indexing's)
        return np.take(flat, ((base + r) * w1 + col).reshape(-1), axis=0).reshape(-1, size, size, c)

    sums = at(r1, c1) - at(r0, c1) - at(r1, c0) + at(r0, c0)
    return normalise(sums, (r1 - r0)[..., None], (c1 - c0)[..., None])


def square(boxes: np.ndarray) -> np.ndarray:
    """facenet-pytorch's ``rerec``: each box made square on its longer side, same centre."""
    h, w = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    side = np.maximum(w, h)
    out = boxes.copy()
    out[:, 0] = boxes[:, 0] + w * np.float32(0.5) - side * np.float32(0.5)
    out[:, 1] = boxes[:, 1] + h * np.float32(0.5) - side * np.float32(0.5)
    out[:, 2], out[:, 3] = out[:, 0] + side, out[:, 1] + side
    return out


def regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """facenet-pytorch's ``bbreg``: the boxes moved by the net's offsets (in box sizes, +1)."""
    w = boxes[:, 2:3] - boxes[:, 0:1] + np.float32(1)
    h = boxes[:, 3:4] - boxes[:, 1:2] + np.float32(1)
    out = boxes.copy()
    out[:, :4] = boxes[:, :4] + reg * np.concatenate([w, h, w, h], axis=1)
    return out


def clip_windows(boxes: np.ndarray, height: int, width: int):
    """facenet-pytorch's ``pad``: truncated boxes clipped to the image, as (y0, y1, x0, x1)
    0-based half-open index spans, and which are non-empty."""
    b = boxes[:, :4].astype(np.int64)  # truncation toward zero, as torch's trunc().int()
    x0, y0 = np.maximum(b[:, 0], 1) - 1, np.maximum(b[:, 1], 1) - 1
    x1, y1 = np.minimum(b[:, 2], width), np.minimum(b[:, 3], height)
    return (y0, y1, x0, x1), (y1 > y0) & (x1 > x0)


class FastMTCNN:
    """The cascade over a batch of equal-size RGB images: :meth:`detect` returns, per image, an
    N×5 float32 array of boxes (x1, y1, x2, y2, probability), best first. On ``cpu`` the nets
    run in NumPy; on another device in torch (:class:`fer.preprocess.mtcnn_torch.TorchNets`)."""

    def __init__(self, device: str = "cpu", min_face="auto", thresholds=THRESHOLDS):
        self.device, self.min_face = str(device), check_min_face(min_face)
        self.thresholds = thresholds
        if self.device == "cpu":
            self.nets = NumpyNets()
        else:
            from fer.preprocess.mtcnn_torch import TorchNets

            self.nets = TorchNets(self.device)

    def detect(self, images: np.ndarray) -> list[np.ndarray]:
        """Faces of each image of the (B, H, W, 3) uint8 batch."""
        images = np.ascontiguousarray(images)
        n, height, width = images.shape[:3]
        table = summed_area(images)
        boxes, image = self._propose(images, table, min_face_for(self.min_face, height, width))
        if len(boxes):
            boxes, image, reg = self._score(self.nets.rnet, table, boxes, image, 24, 1)
            keep = batched_nms(boxes, image, 0.7)
            boxes, image = square(regress(boxes[keep], reg[keep])), image[keep]
        if len(boxes):
            boxes, image, reg = self._score(self.nets.onet, table, boxes, image, 48, 2)
            boxes = regress(boxes, reg)
            keep = batched_nms(boxes, image, 0.7, "min")
            boxes, image = boxes[keep], image[keep]
        return [boxes[image == k, :5] for k in range(n)]

    def _propose(self, images: np.ndarray, table: np.ndarray, min_face: int):
        """Stage 1: the P-net over the pyramid; candidate boxes (x1, y1, x2, y2, score) and their
        image, after NMS per scale (0.5) and per image (0.7), regressed and squared."""
        height, width = images.shape[1:3]
        scales = pyramid(height, width, min_face)
        sizes = [(int(height * s + 1), int(width * s + 1)) for s in scales]
        on_device = getattr(self.nets, "levels", None)  # torch nets resample on their device
        levels = on_device(images, sizes) if on_device else (area_level(table, *s) for s in sizes)
        found, images_of = [], []
        for scale, level in zip(scales, levels, strict=True):
            reg, probs = self.nets.pnet(level)
            boxes, image = _cells(reg, probs, scale, self.thresholds[0])
            keep = batched_nms(boxes, image, 0.5)
            found.append(boxes[keep]), images_of.append(image[keep])
        if not found:
            return np.zeros((0, 9), np.float32), np.zeros(0, np.int64)
        boxes, image = np.concatenate(found), np.concatenate(images_of)
        keep = batched_nms(boxes, image, 0.7)
        boxes, image = boxes[keep], image[keep]
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        moved = boxes[:, :4] + boxes[:, 5:9] * np.stack([w, h, w, h], axis=1)
        return square(np.concatenate([moved, boxes[:, 4:5]], axis=1)), image

    def _score(self, net, table, boxes, image, size, stage):
        """Stages 2 and 3: crops of the boxes through ``net``; the boxes that pass, their new
        score, their image and the net's offsets."""
        windows, valid = clip_windows(boxes, table.shape[1] - 1, table.shape[2] - 1)
        windows = tuple(w[valid] for w in windows)
        boxes, image = boxes[valid], image[valid]
        if len(boxes) == 0:
            return boxes, image, boxes[:, :4]
        reg, score = net(area_crops(table, image, windows, size))
        passed = score > self.thresholds[stage]
        kept = np.concatenate([boxes[passed, :4], score[passed, None]], axis=1)
        return kept, image[passed], reg[passed]


def _cells(reg: np.ndarray, probs: np.ndarray, scale: float, threshold: float):
    """facenet-pytorch's ``generateBoundingBox``: the P-net cells over ``threshold`` (``reg``
    (N, h, w, 4), ``probs`` (N, h, w)) as boxes in image pixels (x1, y1, x2, y2, score, 4
    offsets), and their image."""
    mask = probs >= threshold
    image, y, x = np.nonzero(mask)
    cell = np.stack([x, y], axis=1).astype(np.float32)
    q1 = np.floor((2 * cell + 1) / np.float32(scale))
    q2 = np.floor((2 * cell + 12) / np.float32(scale))
    score = probs[mask][:, None]
    return np.concatenate([q1, q2, score, reg[mask]], axis=1).astype(np.float32), image
