"""The file contracts between the stages, each fact once: column names, vocabularies, file names.

Every stage that writes or reads one of these files imports its names from here
(docs/design.md describes what each column and file holds). Nothing here imports numpy or torch:
the workflow and the report read it too.
"""

from __future__ import annotations

# ---- manifest: resources/{dataset}/manifest.csv (+ manifest.summary.json), by `fer manifest`
MANIFEST_COLUMNS = (
    "path",
    "label",
    "label_name",
    "split",
    "group",
    "fold",
    "box",
    "landmarks",
    "votes",
)
MANIFEST_REQUIRED = ("path", "label", "label_name", "split")  # the rest default to empty / -1
MANIFEST_SUMMARY = "manifest.summary.json"
SPLITS = ("train", "val", "test")
VAL_FRACTION_MAX = 0.5  # the most of train a validation carve may take (manifest and recipe)

# ---- prepared data: resources/{dataset}/prepared/, by `fer prepare`, read by fer.prepared
ROI_NAMES = ("eye", "nose", "mouth")
# ok: face and all three ROIs; no_face: the resized frame, no ROIs; landmarks_failed, roi_empty:
# a face but no usable ROI boxes; unreadable: not decoded; rejected: refused by a rule of
# docs/safety.md (too small, elongated or constant, a path outside its root) — both zeros,
# excluded from training and scoring, counted with their reasons.
STATUSES = ("ok", "no_face", "landmarks_failed", "roi_empty", "unreadable", "rejected")
EXCLUDED = ("unreadable", "rejected")
PREPARE_COLUMNS = ("status", "has_roi", "n_faces", "roi_boxes")  # added to the manifest's
INDEX_COLUMNS = (*MANIFEST_COLUMNS, *PREPARE_COLUMNS)
INDEX_REQUIRED = ("path", "label", "label_name", "split", "group", "fold", "status", "has_roi")
ARRAYS = ("faces", *ROI_NAMES, "landmarks")  # <name>.npy, row i = row i of index.csv
OPTIONAL_ARRAYS = ("original",)
PREPARED_FILES = ("index.csv", *(f"{a}.npy" for a in ARRAYS), "params.json", "summary.json")
# Two sizes, two names: a prepared folder *stores* face chips of chip_size and ROI crops of
# crop_size (params.json, preprocess.* in the config, fer prepare --chip-size / --crop-size); a
# model *takes* inputs of face_size and roi_size (its checkpoint's meta, the recipe), the stored
# arrays resized to them. One set of bounds for each, here.
MIN_CHIP = 32  # the smallest stored face chip: room for 68 landmarks and three ROI boxes
MIN_SIDE = 8  # the smallest stored ROI crop, and the smallest model input side
# what of params.json a checkpoint records as meta["preprocess"]: how to prepare a new input
# exactly as its training data was (fer predict)
PREPROCESS_KEYS = ("detector", "padding", "chip_size", "crop_size", "max_pixels", "min_face")
LEGACY_PREPROCESS = {"face_size": "chip_size", "roi_size": "crop_size"}  # older files' names


def preprocess_of(params: dict) -> dict:
    """The :data:`PREPROCESS_KEYS` of a ``params.json`` or a checkpoint's ``meta["preprocess"]``;
    files written before the stored sides had names of their own (``face_size``, ``roi_size``)
    read alike."""
    named = {LEGACY_PREPROCESS[k]: v for k, v in params.items() if k in LEGACY_PREPROCESS}
    named |= {k: v for k, v in params.items() if k not in LEGACY_PREPROCESS}
    return {k: named[k] for k in PREPROCESS_KEYS if k in named}


# ---- training outputs: models/{dataset}/{arch}[.fold{k}].{pt,history.csv,run.json}
HISTORY_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "seconds",
    "img_per_s",
    "validated_on",
)
MODELS = ("global", "roi")  # the trained networks; the table's columns add "fused"
# training's augmentation chains (fer.train.augment) and the test-time views a checkpoint is
# scored on (fer.models.tta; recorded in its meta as "tta")
AUGMENTATIONS = ("reference", "standard", "none")
TTA_MODES = ("none", "flip")
BACKENDS = ("auto", "eager", "onnx")  # who runs a checkpoint at inference (fer.models.graphs)
ARCHS = (*MODELS, "fused")
