"""ROI boxes (the reference's landmark rule, clamped), chip geometry, face picking."""

from __future__ import annotations

import numpy as np
import pytest

from fer.preprocess.detect import parse_landmarks, pick_face
from fer.preprocess.rois import (
    clamp_box,
    crop_rois,
    format_boxes,
    parse_boxes,
    reference_boxes,
    roi_boxes,
)


def _face_points() -> np.ndarray:
    """A plausible 68-point face in a 224 chip (integer coordinates, like dlib's)."""
    pts = np.zeros((68, 2))
    pts[0:17] = np.stack([np.linspace(40, 184, 17), np.linspace(90, 200, 17)], 1)  # jaw
    pts[17:27] = np.stack([np.linspace(60, 164, 10), np.full(10, 70)], 1)  # brows
    pts[27:31] = np.stack([np.full(4, 112), np.linspace(85, 125, 4)], 1)  # nose bridge
    pts[31:36] = np.stack([np.linspace(96, 128, 5), np.full(5, 135)], 1)  # nostrils
    pts[36:42] = np.stack([np.linspace(70, 100, 6), np.full(6, 90)], 1)  # right eye
    pts[42:48] = np.stack([np.linspace(124, 154, 6), np.full(6, 92)], 1)  # left eye
    pts[48:60] = np.stack([np.linspace(85, 139, 12), np.linspace(160, 176, 12)], 1)  # outer lip
    pts[60:68] = np.stack([np.linspace(95, 129, 8), np.full(8, 168)], 1)  # inner lip
    return np.rint(pts)


def test_reference_rule_by_hand():
    pts = _face_points()
    eye, nose, mouth = reference_boxes(pts, 224)
    eye_pts = pts[list(range(17, 27)) + list(range(36, 48))]
    assert eye == (
        eye_pts[:, 0].min() - 3,
        eye_pts[:, 1].min() - 3,
        eye_pts[:, 0].max() + 3,
        eye_pts[:, 1].max() + 6,
    )
    n = pts[27:36]
    left, right = int((pts[33, 0] - pts[31, 0]) / 2), int((pts[35, 0] - pts[33, 0]) / 2)
    assert nose == (
        n[:, 0].min() - left,
        n[:, 1].min() - 4,
        n[:, 0].max() + right,
        n[:, 1].max() + 4,
    )
    m = pts[48:60]
    assert mouth == (m[:, 0].min() - 6, m[:, 1].min() - 6, m[:, 0].max() + 6, m[:, 1].max() + 6)


def test_paddings_scale_with_face_size():
    pts = _face_points()
    half = np.rint(pts / 2)
    small = reference_boxes(half, 112)
    assert small[2][0] == half[48:60, 0].min() - 3  # mouth padding 6 -> 3 at half size
    assert small[0][3] == half[list(range(17, 27)) + list(range(36, 48)), 1].max() + 3


def test_boxes_are_clamped_and_degenerate_ones_rejected():
    assert clamp_box((-5, -2, 30, 40), 224) == (0, 0, 30, 40)
    assert clamp_box((200, 10, 260, 50), 224) == (200, 10, 224, 50)
    assert clamp_box((230, 10, 260, 50), 224) is None  # wholly outside: empty
    pts = _face_points()
    pts[48:60, 1] += 300  # mouth below the chip -> its box clamps to nothing
    assert roi_boxes(pts, 224) is None
    pts = _face_points()
    pts[17:27, 1] -= 80  # brows above the top: eye box clamped, still valid
    boxes = roi_boxes(pts, 224)
    assert boxes is not None and boxes[0][1] == 0
    assert roi_boxes(np.full((68, 2), np.nan), 224) is None


def test_crops_are_squashed_and_boxes_round_trip():
    chip = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    boxes = roi_boxes(_face_points(), 224)
    crops = crop_rois(chip, boxes, 90)
    assert [c.shape for c in crops] == [(90, 90, 3)] * 3 and crops[0].dtype == np.uint8
    assert parse_boxes(format_boxes(boxes)) == boxes
    assert format_boxes(None) == "" and parse_boxes("") is None


def test_pick_face_prefers_large_and_central():
    boxes = np.array([[0, 0, 40, 40], [80, 80, 140, 140], [150, 0, 210, 60]], float)
    assert pick_face(boxes, 220, 220) == 1  # central and as large as the corner one
    boxes = np.array([[100, 100, 120, 120], [0, 0, 120, 120]], float)
    assert pick_face(boxes, 220, 220) == 1  # much larger wins even off-centre


def test_parse_landmarks():
    text = ";".join(str(v) for v in range(136))
    pts = parse_landmarks(text)
    assert pts.shape == (68, 2) and pts[1, 0] == 2
    assert parse_landmarks("1;2;3") is None
    assert parse_landmarks("a;b") is None


def test_chip_rect_and_mapping_to_chip():
    dlib = pytest.importorskip("dlib")
    skdata = pytest.importorskip("skimage.data")
    from fer.preprocess.align import (
        Aligner,
        apply_affine,
        chip_rect,
        intensity,
        mapping_to_chip,
        predictor_path,
    )

    assert chip_rect(224, 0.25) == (15, 15, 194, 194)  # the measured chip detector box
    aligner = Aligner(224, 0.25)
    img = skdata.astronaut()
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    coded = np.stack([xx * 255 / (w - 1), yy * 255 / (h - 1), 0 * xx], -1).round().astype(np.uint8)
    face = dlib.get_frontal_face_detector()(img, 0)[0]
    shape = dlib.shape_predictor(str(predictor_path()))(img, face)
    grey, is_grey = intensity(img)  # dlib reads exactly (r + g + b) // 3 of an RGB pixel
    theirs = np.array([(p.x, p.y) for p in shape.parts()], float)
    assert not is_grey and np.array_equal(aligner.landmarks(grey, face), theirs)
    assert np.array_equal(aligner.landmarks(img, face), theirs)
    details = dlib.get_face_chip_details(shape, size=224, padding=0.25)
    chip = dlib.extract_image_chip(coded, details).astype(float)
    pts = np.array([(p.x, p.y) for p in shape.parts()], float)
    mapped = np.rint(apply_affine(mapping_to_chip(details), pts)).astype(int)
    decoded = chip[mapped[:, 1], mapped[:, 0], :2] * [(w - 1) / 255, (h - 1) / 255]
    assert np.abs(decoded - pts).max() < 3  # 1 grey level = 2 px here
