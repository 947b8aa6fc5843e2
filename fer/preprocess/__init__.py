"""Preprocessing: face detection → dlib 68 landmarks → aligned chip → eye / nose / mouth crops.

Modules: :mod:`~fer.preprocess.detect` (mtcnn | dlib | none | given), :mod:`~fer.preprocess.align`
(landmarks + dlib's ``get_face_chip``), :mod:`~fer.preprocess.shapes` (dlib's landmark models in
NumPy), :mod:`~fer.preprocess.rois` (the reference's landmark boxes),
:mod:`~fer.preprocess.pipeline` (one chunk of manifest rows, per worker process),
:mod:`~fer.preprocess.contact` (contact sheet) and :mod:`~fer.preprocess.prepare` (the
``fer prepare`` verb). Heavy libraries (dlib, torch) are imported only when a detector or the
aligner is built.
"""

from fer.preprocess.rois import crop_rois, reference_boxes, roi_boxes

__all__ = ["crop_rois", "reference_boxes", "roi_boxes"]
