"""Face detection: ``mtcnn`` (facenet-pytorch's weights, batched: :mod:`fer.preprocess.mtcnn`),
``dlib`` (HOG, as the reference), ``none`` (the whole frame is the face: already-cropped sets)
and ``given`` (the manifest's publisher box / landmarks, AffectNet).

Every detector answers, per image, a :class:`Detection`: one face rectangle (``x1, y1, x2, y2``
in image pixels, or ``None``), how many faces were seen, and optional given landmarks. With several
faces the largest, most central one is kept (:func:`pick_face`); the reference kept the last.
``rects`` / ``scores`` hold every face seen, the kept one first (``fer predict --all-faces``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fer.errors import FerError

DETECTORS = ("mtcnn", "dlib", "none", "given")

# MTCNN boxes run from forehead to chin and are taller than the HOG boxes dlib's 68-point predictor
# was trained on. On skimage's astronaut MTCNN gives [181, 62, 268, 172] and dlib [179, 83, 266,
# 170]: a square of the MTCNN width, centred lower by ~8.5 % of the MTCNN height, matches it. The
# aligner re-runs the predictor on the aligned chip, so small offsets here do not reach the ROIs.
MTCNN_TO_DLIB_SHIFT = 0.085


@dataclass
class Detection:
    """One image's face: ``rect`` (x1, y1, x2, y2) or None, ``n_faces`` seen, given ``points``;
    ``rects`` and ``scores``: every face seen, the kept one first, then by :func:`pick_order`
    (the score is the detector's confidence, NaN for detectors without one)."""

    rect: tuple[float, float, float, float] | None
    n_faces: int
    points: np.ndarray | None = None
    rects: list[tuple[float, float, float, float]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def __post_init__(self):
        if self.rect is not None and not self.rects:
            self.rects, self.scores = [tuple(self.rect)], [float("nan")]


def pick_order(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Indices of ``boxes`` (N×4 x1,y1,x2,y2), best first: the largest area, discounted by up to a
    half for distance of its centre from the frame centre (largest *and* most central)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    centre = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    half_diag = max(np.hypot(width, height) / 2, 1.0)
    off = np.hypot(centre[:, 0] - width / 2, centre[:, 1] - height / 2) / half_diag
    merit = area * (1.0 - 0.5 * np.clip(off, 0, 1))
    return np.argsort(-merit, kind="stable")


def pick_face(boxes: np.ndarray, height: int, width: int) -> int:
    """Index of the face to keep among ``boxes``: the first of :func:`pick_order`."""
    return int(pick_order(boxes, height, width)[0])


class WholeFrameDetector:
    """``none``: the whole frame is the face rectangle (CK+48, FER2013, RAF-DB aligned)."""

    name = "none"

    def detect(self, images: list[np.ndarray], rows: list[dict]) -> list[Detection]:
        """One full-frame rectangle per image."""
        return [Detection((0.0, 0.0, im.shape[1] - 1.0, im.shape[0] - 1.0), 1) for im in images]


class GivenDetector:
    """``given``: the manifest's ``box`` (x,y,w,h) and, if present, ``landmarks`` (x;y;...)."""

    name = "given"

    def detect(self, images: list[np.ndarray], rows: list[dict]) -> list[Detection]:
        """Parse each row's publisher box / landmarks; a row without a box uses the whole frame."""
        return [self._one(im, row) for im, row in zip(images, rows, strict=True)]

    @staticmethod
    def _one(image: np.ndarray, row: dict) -> Detection:
        box, marks = str(row.get("box", "") or ""), str(row.get("landmarks", "") or "")
        points = parse_landmarks(marks) if marks.strip() else None
        if box.strip():
            try:
                x, y, w, h = (float(v) for v in box.split(","))
            except ValueError:
                raise FerError(
                    f"manifest row {row.get('path', '?')}: box {box!r}, expected 'x,y,w,h'"
                ) from None
            if w <= 0 or h <= 0:
                return Detection(None, 0, None)
            return Detection((x, y, x + w - 1, y + h - 1), 1, points)
        height, width = image.shape[:2]
        return Detection((0.0, 0.0, width - 1.0, height - 1.0), 1, points)


def parse_landmarks(text: str) -> np.ndarray | None:
    """``x;y;x;y…`` (68 points) to a 68×2 float array; None when malformed (then the predictor
    runs on the box instead)."""
    try:
        values = np.array([float(v) for v in text.replace(",", ";").split(";") if v.strip()])
    except ValueError:
        return None
    if values.size != 136 or not np.all(np.isfinite(values)):
        return None
    return values.reshape(68, 2)


class DlibDetector:
    """``dlib``: the frontal HOG + linear-SVM detector, as the reference (which ran upsample 1).

    Upsampling doubles the image and costs ~4x; it only matters for faces smaller than the
    detector's 80 px window. So the image is first scanned as is, and upsampled once only when
    nothing was found there (``upsample_first=False`` always upsamples, as the reference).
    """

    name = "dlib"

    def __init__(self, upsample: int = 1, upsample_first: bool = False):
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.upsample, self.upsample_first = upsample, upsample_first

    def detect(self, images: list[np.ndarray], rows: list[dict]) -> list[Detection]:
        """Run the HOG detector on each image; keep the largest, most central face."""
        return [self._one(image) for image in images]

    def _one(self, image: np.ndarray) -> Detection:
        rects = [] if self.upsample_first else self._detector(image, 0)
        if len(rects) == 0 and self.upsample > 0:
            rects = self._detector(image, self.upsample)
        if len(rects) == 0:
            return Detection(None, 0)
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], float)
        order = pick_order(boxes, *image.shape[:2])
        found = [tuple(float(v) for v in boxes[k]) for k in order]
        return Detection(found[0], len(rects), None, found, [float("nan")] * len(found))


class MtcnnDetector:
    """``mtcnn``: facenet-pytorch's MTCNN weights and cascade (:mod:`fer.preprocess.mtcnn`),
    batched over same-size images; ``min_face``: the smallest face searched for (``auto``: a
    tenth of the frame's short side, at least 20 px)."""

    name = "mtcnn"

    def __init__(self, device: str = "cpu", min_face="auto"):
        from fer.preprocess.mtcnn import FastMTCNN

        self.device = device
        self._mtcnn = FastMTCNN(device, min_face)

    def detect(self, images: list[np.ndarray], rows: list[dict]) -> list[Detection]:
        """Detect faces in batches of equal-size images; boxes are turned into dlib-like boxes."""
        out: list[Detection | None] = [None] * len(images)
        groups: dict[tuple, list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(image.shape, []).append(i)
        for members in groups.values():
            found = self._mtcnn.detect(np.stack([images[i] for i in members]))
            for i, faces in zip(members, found, strict=True):
                out[i] = self._to_detection(faces[:, :4], faces[:, 4], images[i].shape)
        return out  # type: ignore[return-value]

    @staticmethod
    def _to_detection(found, prob, shape) -> Detection:
        if found is None or len(found) == 0:
            return Detection(None, 0)
        boxes = np.asarray(found, dtype=np.float64).reshape(-1, 4)
        probs = np.asarray(prob, dtype=np.float64).reshape(-1)
        rects = []
        order = pick_order(boxes, *shape[:2])
        for x1, y1, x2, y2 in boxes[order]:
            side, cx = x2 - x1, (x1 + x2) / 2
            cy = (y1 + y2) / 2 + MTCNN_TO_DLIB_SHIFT * (y2 - y1)
            rects.append((cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
        return Detection(rects[0], len(boxes), None, rects, [float(p) for p in probs[order]])


def make_detector(name: str, device: str = "cpu", min_face="auto"):
    """Build the detector called ``name`` (one of :data:`DETECTORS`) on ``device``
    (``min_face``: MTCNN's smallest face, see :func:`fer.preprocess.mtcnn.min_face_for`)."""
    if name == "none":
        return WholeFrameDetector()
    if name == "given":
        return GivenDetector()
    if name == "dlib":
        return DlibDetector()
    if name == "mtcnn":
        return MtcnnDetector(device, min_face)
    raise FerError(f"unknown detector {name!r}; expected one of {', '.join(DETECTORS)}")
