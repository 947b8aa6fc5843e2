"""Eye / nose / mouth ROI boxes and crops, with the reference's landmark rule (``face_roi.py``).

Boxes (x1, y1, x2, y2), end exclusive, in chip pixels, from 0-based iBUG-68 landmarks:

* eye = brows 17–26 ∪ eyes 36–47: min − 3, max + 3, except the bottom: max y + 6;
* nose = 27–35: x1 = min x − int((x33 − x31)/2), x2 = max x + int((x35 − x33)/2), y ± 4;
* mouth = outer lip 48–59: ± 6.

The paddings are pixels of the reference's 224 chip; other face sizes scale them. Bugs fixed:
boxes are clamped to the chip (the reference's negative starts wrapped around and gave empty
crops), and an image gets all three crops or none. Crops are squashed to ``crop_size`` square with
PIL's bilinear filter, what the reference's ``transforms.Resize((90, 90))`` did at load time.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

EYE_POINTS = list(range(17, 27)) + list(range(36, 48))
NOSE_POINTS = list(range(27, 36))
MOUTH_POINTS = list(range(48, 60))
REFERENCE_CHIP_SIZE = 224
MIN_SIDE = 4  # a clamped box thinner than this (chip pixels) is degenerate -> roi_empty

Box = tuple[int, int, int, int]


def reference_boxes(landmarks: np.ndarray, chip_size: int = REFERENCE_CHIP_SIZE) -> list[Box]:
    """The three unclamped boxes (eye, nose, mouth) of the reference rule, paddings scaled by
    ``chip_size / 224``. ``landmarks`` is 68×2 in chip pixels (rounded to ints, like dlib's)."""
    pts = np.rint(np.asarray(landmarks, dtype=np.float64)).astype(np.int64)
    s = chip_size / REFERENCE_CHIP_SIZE

    def pad(v: float) -> int:
        return int(round(v * s))

    def span(idx):
        sel = pts[idx]
        return (
            int(sel[:, 0].min()),
            int(sel[:, 1].min()),
            int(sel[:, 0].max()),
            int(sel[:, 1].max()),
        )

    ex1, ey1, ex2, ey2 = span(EYE_POINTS)
    eye = (ex1 - pad(3), ey1 - pad(3), ex2 + pad(3), ey2 + pad(6))
    nx1, ny1, nx2, ny2 = span(NOSE_POINTS)
    left = int((pts[33, 0] - pts[31, 0]) / 2 * s)
    right = int((pts[35, 0] - pts[33, 0]) / 2 * s)
    nose = (nx1 - left, ny1 - pad(4), nx2 + right, ny2 + pad(4))
    mx1, my1, mx2, my2 = span(MOUTH_POINTS)
    mouth = (mx1 - pad(6), my1 - pad(6), mx2 + pad(6), my2 + pad(6))
    return [eye, nose, mouth]


def clamp_box(box: Box, size: int) -> Box | None:
    """Clamp ``box`` to a ``size``-square chip; None when what is left is thinner than MIN_SIDE."""
    x1, y1, x2, y2 = (min(max(v, 0), size) for v in box)
    if x2 - x1 < MIN_SIDE or y2 - y1 < MIN_SIDE:
        return None
    return x1, y1, x2, y2


def roi_boxes(landmarks: np.ndarray, chip_size: int) -> list[Box] | None:
    """The three clamped boxes, or None if any of them is empty or degenerate (``roi_empty``)."""
    if landmarks is None or not np.all(np.isfinite(landmarks)):
        return None
    boxes = [clamp_box(b, chip_size) for b in reference_boxes(landmarks, chip_size)]
    return None if any(b is None for b in boxes) else boxes  # type: ignore[return-value]


def crop_rois(chip: np.ndarray, boxes: list[Box], crop_size: int) -> list[np.ndarray]:
    """Crop ``boxes`` out of ``chip`` and squash each to ``crop_size``×``crop_size`` RGB uint8."""
    crops = []
    for x1, y1, x2, y2 in boxes:
        patch = Image.fromarray(np.ascontiguousarray(chip[y1:y2, x1:x2]))
        crops.append(np.asarray(patch.resize((crop_size, crop_size), Image.Resampling.BILINEAR)))
    return crops


def format_boxes(boxes: list[Box] | None) -> str:
    """``x1,y1,x2,y2;…`` (eye;nose;mouth) for index.csv, empty when there are none."""
    if not boxes:
        return ""
    return ";".join(",".join(str(int(v)) for v in box) for box in boxes)


def parse_boxes(text: str) -> list[Box] | None:
    """Inverse of :func:`format_boxes`."""
    if not text:
        return None
    return [tuple(int(v) for v in part.split(",")) for part in text.split(";")]  # type: ignore[misc]
