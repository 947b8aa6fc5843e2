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
# a face but no usable ROI boxes; unreadable: not decoded (zeros; excluded, counted).
STATUSES = ("ok", "no_face", "landmarks_failed", "roi_empty", "unreadable")
PREPARE_COLUMNS = ("status", "has_roi", "n_faces", "roi_boxes")  # added to the manifest's
INDEX_COLUMNS = (*MANIFEST_COLUMNS, *PREPARE_COLUMNS)
INDEX_REQUIRED = ("path", "label", "label_name", "split", "group", "fold", "status", "has_roi")
ARRAYS = ("faces", *ROI_NAMES, "landmarks")  # <name>.npy, row i = row i of index.csv
OPTIONAL_ARRAYS = ("original",)
PREPARED_FILES = ("index.csv", *(f"{a}.npy" for a in ARRAYS), "params.json", "summary.json")
# what of params.json a checkpoint records as meta["preprocess"]: how to prepare a new input
# exactly as its training data was (fer predict); face_size / roi_size here are the stored sizes
PREPROCESS_KEYS = ("detector", "padding", "face_size", "roi_size", "max_pixels", "min_face")
MIN_SIDE = 8  # the smallest face or ROI side any stage accepts (stored arrays, model inputs)

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
ARCHS = (*MODELS, "fused")
