"""How long a `fer train` job takes, estimated before it runs, from its recipe: the workflow's
``runtime`` of each training job (a SLURM time limit, and what ``snakemake -n`` shows).

The estimate is for 2 CPU cores in fp32 (the slowest machine fer is tested on, where ``amp:
auto`` picks fp32), with a safety factor :data:`MARGIN`; a GPU, more cores or native bf16 finish
well inside it. It counts epochs × (training images per epoch + validation images, each twice
under ``tta: flip``) × the time one image takes at the recipe's input sizes. This module imports
no torch: the workflow reads it at planning.
"""

from __future__ import annotations

import math

# Seconds one training image takes on 2 cores, fp32, fitted as a·(face/224)² + b to
# benchmarks/bench_train.py's steps at 224 / 90 px and at 48 / 24 px (AMD EPYC, AVX2, no
# AVX-512: Global Net 10.8 and 133 img/s, Global-ROI Net 3.1 and 32 img/s).
STEP_S = {"global": (0.0874, 0.0035), "roi": (0.3054, 0.0172)}
EVAL_FRACTION = 1 / 3  # an evaluation image: the forward pass alone
TTA_VIEWS = {"none": 1, "flip": 2}  # forward passes per validation image (fer.models.tta)
MARGIN = 2.0  # the estimate is a limit: twice the measured rate
START_MIN = 1.0  # start-up, reading the prepared arrays, writing the outputs


def seconds_per_image(arch: str, face_size: int) -> float:
    """Seconds one training image of ``arch`` takes at ``face_size`` (ROIs scaled alike)."""
    a, b = STEP_S[arch]
    return a * (face_size / 224) ** 2 + b


def train_minutes(
    arch: str,
    *,
    epochs: int,
    n_train: int,
    n_val: int,
    n_classes: int,
    face_size: int,
    samples_per_class: int | None = None,
    batch_size: int = 64,
    max_steps_per_epoch: int | None = None,
    tta: str = "none",
) -> int:
    """Whole minutes a training job of ``arch`` is given: ``epochs`` passes over
    ``samples_per_class`` × ``n_classes`` images (else the ``n_train`` training rows), capped
    at ``max_steps_per_epoch`` batches, and a validation pass over ``n_val`` rows each (with
    each image's mirror image too under ``tta: flip``)."""
    per_epoch = samples_per_class * n_classes if samples_per_class else n_train
    if max_steps_per_epoch:
        per_epoch = min(per_epoch, max_steps_per_epoch * batch_size)
    step = seconds_per_image(arch, face_size)
    seconds = epochs * (per_epoch + EVAL_FRACTION * TTA_VIEWS[tta] * n_val) * step
    return math.ceil(START_MIN + MARGIN * seconds / 60)
