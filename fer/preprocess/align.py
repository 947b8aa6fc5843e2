"""Alignment: dlib's 68-point predictor and ``dlib.get_face_chip`` (padding 0.25), as the reference.

The reference aligned each face (68 points on the detector box, ``get_face_chips`` at 224) and
then, in a second script, ran the HOG detector *again on the chip* (upsample 0) and the 68-point
predictor on that box; its ROI boxes come from those chip landmarks. Here:

1. a first, cheap pass of dlib's **5-point** predictor on the face rectangle gives a rough chip;
2. the 68-point predictor runs on that chip, on the box dlib's detector finds on an aligned chip.
   That box is a constant: on 197 sampled CK+48 chips (224 px, padding 0.25) it was (15, 15, 194,
   194) every time, and :func:`chip_rect` reproduces it for any size/padding, so no detector
   runs on the chip;
3. the 68 points, mapped back into the image, give the final chip by dlib's 68-point alignment
   (the reference's), and are mapped into it exactly.

So each face costs one 68-point predictor call instead of the reference's two calls and two
detector runs. Passes 1 and 2 also check each other: if the 5 first-pass points, mapped into the
chip, disagree with the 68-point ones by more than :data:`REFINE_ABOVE` inter-ocular distances,
alignment is redone from the 68 points (up to :data:`MAX_REFINE` times), and the landmarks are
declared failed above :data:`MAX_DISAGREEMENT`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer.errors import FerError
from fer.preprocess import shapes

# The chip detector box in dlib's face-template units (0..1 spans the template; padding p adds p on
# each side), measured at 224 px / padding 0.25: 15/224*1.5-0.25 and 194/224*1.5-0.25.
CHIP_RECT_UNITS = (15 / 224 * 1.5 - 0.25, 194 / 224 * 1.5 - 0.25)
# Mean distance between first-pass (mapped) and second-pass chip landmarks, in inter-ocular
# distances, above which the landmarks are declared failed. Measured after refinement: CK+48
# median 0.026, max 0.062; a 656-image FER2013 sample median 0.034, 99th percentile 0.15, and 1
# face above 0.35 (plus 1 blank frame). It flags unstable points (profiles, occlusions); it does
# not reject a non-face, on which both passes return the same mean shape: detectors do that.
MAX_DISAGREEMENT = 0.35
# Above this disagreement the alignment is redone from the chip landmarks, at most MAX_REFINE times.
REFINE_ABOVE = 0.1
MAX_REFINE = 2
FIVE_POINT_MODEL = "shape_predictor_5_face_landmarks.dat"
# The 68-point indices of the 5-point model's points (eye corners, then the base of the nose).
FIVE_IN_68 = (45, 42, 36, 39, 33)
# A frame whose grey-level standard deviation is below this holds no face (blank FER2013 images).
MIN_FRAME_STD = 2.0


def predictor_path(name: str = "shape_predictor_68_face_landmarks.dat") -> Path:
    """Path of a dlib model (default the 68-point one) shipped by ``face-recognition-models``.

    The package is located without importing it (its ``__init__`` needs ``pkg_resources``).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FerError("face-recognition-models is not installed (needed for dlib's 68 landmarks)")
    path = Path(spec.submodule_search_locations[0]) / "models" / name
    if not path.is_file():
        raise FerError(f"{path}: dlib model missing from face-recognition-models")
    return path


def chip_rect(chip_size: int, padding: float) -> tuple[int, int, int, int]:
    """The box dlib's detector finds on an aligned chip of ``chip_size`` px with ``padding``."""
    lo, hi = ((u + padding) / (1 + 2 * padding) * chip_size for u in CHIP_RECT_UNITS)
    return round(lo), round(lo), round(hi), round(hi)


def mapping_to_chip(details) -> np.ndarray:
    """2×3 affine matrix taking image pixels to chip pixels for a ``dlib.chip_details``
    (dlib's ``get_mapping_to_chip``: the rotated rect corners go to the chip corners)."""
    rect, angle = details.rect, details.angle
    cx, cy = (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2
    cos, sin = np.cos(angle), np.sin(angle)
    corners = [(rect.left(), rect.top()), (rect.right(), rect.top()), (rect.right(), rect.bottom())]
    src = np.array(
        [
            [cx + cos * (x - cx) - sin * (y - cy), cy + sin * (x - cx) + cos * (y - cy), 1.0]
            for x, y in corners
        ]
    )
    dst = np.array([[0, 0], [details.cols - 1, 0], [details.cols - 1, details.rows - 1]], float)
    return np.linalg.solve(src, dst).T


def cache_predictors() -> None:
    """Decode dlib's landmark models into fer's cache now, if they are not there yet: done by a
    parent before it starts worker processes, so that they do not each decode them."""
    for path in (predictor_path(FIVE_POINT_MODEL), predictor_path()):
        shapes.load(path)


@dataclass
class Aligned:
    """Alignment of one face: the chip (F×F×3), chip landmarks (68×2) or None, and a status."""

    chip: np.ndarray | None
    landmarks: np.ndarray | None
    status: str  # "ok" or "landmarks_failed"
    disagreement: float = float("nan")
    image_landmarks: np.ndarray | None = None  # the 68 points in the image (drawn by predict)


@dataclass
class _Face:
    """One face's state while :meth:`Aligner.align_many` works on it."""

    image: np.ndarray
    grey: np.ndarray
    is_grey: bool
    box: object  # dlib.rectangle
    first: np.ndarray | None = None  # image landmarks the chip is aligned on (5 or 68)
    pick: object = FIVE_IN_68  # which of the 68 found points ``first`` corresponds to
    details: object = None  # dlib.chip_details
    found: np.ndarray | None = None  # 68 points in that chip
    in_image: np.ndarray | None = None  # ``found`` mapped back into the image
    score: float = float("nan")

    def check(self) -> float:
        """Disagreement of ``first`` and ``found`` (in the chip); sets ``in_image``."""
        to_chip = mapping_to_chip(self.details)
        self.score = disagreement(
            apply_affine(to_chip, self.first), self.found[_index(self.pick)], self.found
        )
        self.in_image = apply_affine(invert_affine(to_chip), self.found)
        return self.score


def _index(pick):
    """A tuple of point numbers as a list index (a tuple would index several axes)."""
    return list(pick) if isinstance(pick, tuple) else pick


class Aligner:
    """Loads the predictors once; :meth:`align` maps a face rectangle to an aligned chip.

    The predictors are dlib's models run by :mod:`fer.preprocess.shapes` (dlib's points, from
    arrays cached once instead of dlib's 0.7 s load of the 68-point model in every process)."""

    def __init__(self, chip_size: int = 224, padding: float = 0.25):
        import dlib

        self._dlib = dlib
        self.chip_size, self.padding = int(chip_size), float(padding)
        self.predictor = shapes.load(predictor_path())
        self.predictor5 = shapes.load(predictor_path(FIVE_POINT_MODEL))
        self._chip_rect = chip_rect(self.chip_size, self.padding)

    def landmarks(self, image: np.ndarray, rect, predictor=None) -> np.ndarray:
        """N×2 float landmarks of the face in ``rect`` (a dlib.rectangle, or left, top, right,
        bottom inclusive) of an RGB or grey image; 68 by default."""
        grey = image if image.ndim == 2 else intensity(image)[0]
        return (predictor or self.predictor)(grey, _corners(rect)).astype(np.float64)

    def align(self, image: np.ndarray, rect, points: np.ndarray | None = None) -> Aligned:
        """Align the face in ``rect`` (x1,y1,x2,y2) of ``image``; given 68 ``points`` replace
        the first pass. Returns the chip, its 68 landmarks and ``ok``, or ``landmarks_failed``."""
        return self.align_many([image], [rect], [points])[0]

    def align_many(self, images: list, rects: list, points: list) -> list[Aligned]:
        """:meth:`align` for several faces, stage by stage: each predictor runs over all of them
        in a row, which keeps its 100 MB of trees warmer in the CPU caches than alternating.

        The predictors run on the grey intensity ``(r + g + b) // 3``, which is what dlib
        computes from an RGB pixel itself: the same landmarks as on the RGB image, faster.
        """
        out: list[Aligned | None] = [None] * len(images)
        todo: dict[int, _Face] = {}
        for i, (image, rect, given) in enumerate(zip(images, rects, points, strict=True)):
            grey, is_grey = intensity(image)
            if float(grey.std()) < MIN_FRAME_STD:
                out[i] = Aligned(None, None, "landmarks_failed")
                continue
            box = self._dlib.rectangle(*(int(round(v)) for v in rect))
            todo[i] = _Face(image, grey, is_grey, box)
            if given is not None:
                todo[i].first, todo[i].pick = np.asarray(given, dtype=np.float64), slice(None)
        rough = [face for face in todo.values() if face.first is None]
        found = self.predictor5.many([f.grey for f in rough], [_corners(f.box) for f in rough])
        for face, points in zip(rough, found.astype(np.float64), strict=True):
            face.first = points  # first pass: 5 points, where none were given
        pending = list(todo.values())
        for attempt in range(MAX_REFINE + 1):
            for face in pending:
                face.details = self._details(face.box, face.first)
            chips = [self._dlib.extract_image_chip(f.grey, f.details) for f in pending]
            found = self.predictor.many(chips, [self._chip_rect] * len(chips))
            for face, points in zip(pending, found.astype(np.float64), strict=True):
                face.found = points  # the one 68-point pass, on the rough chip
            pending = [f for f in pending if f.check() > REFINE_ABOVE and attempt < MAX_REFINE]
            for face in pending:
                face.first, face.pick = face.in_image, slice(None)
        for i, face in todo.items():
            out[i] = self._final(face)
        return out  # type: ignore[return-value]

    def _final(self, face: _Face) -> Aligned:
        """The chip by 68-point alignment of the found landmarks, and those landmarks in it."""
        if face.score > MAX_DISAGREEMENT:
            return Aligned(None, None, "landmarks_failed", face.score)
        dlib = self._dlib
        final = self._details(face.box, face.in_image)
        marks = apply_affine(mapping_to_chip(final), face.in_image)
        if face.is_grey:
            chip = np.repeat(dlib.extract_image_chip(face.grey, final)[..., None], 3, axis=2)
        else:
            chip = dlib.extract_image_chip(face.image, final)
        return Aligned(chip, marks, "ok", face.score, face.in_image)

    def _details(self, box, points: np.ndarray):
        """dlib chip_details aligning 68 or 5 image ``points`` (as ``get_face_chip`` does)."""
        dlib = self._dlib
        parts = [dlib.point(x, y) for x, y in np.rint(points).astype(int).tolist()]
        shape = dlib.full_object_detection(box, parts)
        return dlib.get_face_chip_details(shape, size=self.chip_size, padding=self.padding)


def _corners(rect) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a dlib.rectangle, or of such a tuple."""
    if hasattr(rect, "left"):
        return rect.left(), rect.top(), rect.right(), rect.bottom()
    return tuple(int(v) for v in rect)


def intensity(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """dlib's grey level of an RGB uint8 image, ``(r + g + b) // 3``; and whether it was grey."""
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    if np.array_equal(r, g) and np.array_equal(g, b):
        return np.ascontiguousarray(r), True
    total = r.astype(np.uint16) + g + b
    return (total // 3).astype(np.uint8), False


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine ``matrix`` to N×2 ``points``."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine matrix."""
    lin = np.linalg.inv(matrix[:, :2])
    return np.hstack([lin, -lin @ matrix[:, 2:3]])


def disagreement(a: np.ndarray, b: np.ndarray, face: np.ndarray) -> float:
    """Mean distance between point sets ``a`` and ``b``, in inter-ocular distances of the 68-point
    ``face``."""
    eyes = np.linalg.norm(face[36:42].mean(0) - face[42:48].mean(0))
    return float(np.linalg.norm(a - b, axis=1).mean() / max(eyes, 1.0))
