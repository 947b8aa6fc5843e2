"""The authors' released checkpoints (``roi.path`` / ``global.path``), imported safely.

Those files are whole-module pickles (``torch.save(model)``, PyTorch 1.12, CUDA storages,
sometimes inside ``nn.DataParallel``): loading them plainly would import the reference's modules
and run whatever the pickle names. :mod:`fer.models.reference_pickle` reads them with a
restricted unpickler that accepts only the globals the reference's files are known to name, as
inert placeholders. Here their tensors are renamed into fer's models by name, through one
explicit table (:data:`RENAMES`): every reference tensor must find its place, every fer tensor
must be filled, every shape must agree, and the head's rows are put into fer's class order
(:func:`reference_model`). The verb that writes the result as an ordinary fer checkpoint is
``fer import-reference`` (:mod:`fer.train.reference`).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from fer.errors import FerError
from fer.labels import CANONICAL
from fer.models.reference_pickle import NAMES, ROOTS, reference_state
from fer.provenance import sha256_file

# Reference module path -> fer module path, by name; the first matching prefix renames a key.
# Inside the blocks the names are torchvision's on both sides; RENAMES_INSIDE handles CBAM.
RENAMES = {
    "global": [
        ("features.0.", "trunk.conv1."),
        ("features.1.", "trunk.bn1."),
        ("features.4.", "trunk.layer1."),
        ("features.5.", "trunk.layer2."),
        ("features.6.", "trunk.layer3."),
        ("features.7.", "trunk.layer4."),
        ("cbam.", "cbam."),
        ("fc.", "fc."),
        ("bn.", "bn."),
    ],
    "roi": [
        ("features_whole.0.", "whole.conv1."),
        ("features_whole.1.", "whole.bn1."),
        ("features_whole.4.", "whole.layer1."),
        ("features_whole.5.", "whole.layer2."),
        ("features_whole.6.", "whole.layer3."),
        ("features_whole.7.", "whole.layer4."),
        ("features.0.", "roi_trunk.conv1."),
        ("features.1.", "roi_trunk.bn1."),
        ("features.3.", "roi_trunk.layer1."),
        ("features.4.", "roi_trunk.layer2."),
        ("features.5.", "roi_trunk.attn2."),
        ("features.6.", "roi_trunk.layer3."),
        ("features.7.", "roi_trunk.attn3."),
        ("features.8.", "roi_trunk.layer4."),
        ("fc_roi.", "fc_roi."),
        ("bn_roi.", "bn_roi."),
        ("fc.", "fc."),
        ("bn.", "bn."),
    ],
}
RENAMES_INSIDE = [  # CBAM's gates, wherever they sit (the reference's mlp starts with a Flatten)
    (re.compile(r"(^|\.)cbam\.ChannelGate\.mlp\.1\."), r"\1cbam.channel_gate.mlp.0."),
    (re.compile(r"(^|\.)cbam\.ChannelGate\.mlp\.3\."), r"\1cbam.channel_gate.mlp.2."),
    (re.compile(r"(^|\.)cbam\.SpatialGate\.spatial\."), r"\1cbam.spatial_gate."),
]
HEAD = ("fc.weight", "fc.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")

# How the authors chose their checkpoints: on the test split, but for FERPlus's own val split.
SELECTION = {
    "affectnet8": "test",
    "affectnet7": "test",
    "rafdb": "test",
    "ckplus": "test",
    "ferplus": "val",
}


def fer_name(key: str, arch: str) -> str | None:
    """fer's name of a reference tensor (:data:`RENAMES`, :data:`RENAMES_INSIDE`), or None."""
    for pattern, new in RENAMES_INSIDE:
        key = pattern.sub(new, key)
    for old, new in RENAMES[arch]:
        if key.startswith(old):
            return new + key[len(old) :]
    return None


def fer_state(ref: dict, arch: str, model: torch.nn.Module, path: Path) -> dict:
    """The fer model's state_dict from the reference's tensors: every one used, every fer tensor
    filled, shapes equal; any gap is one FerError naming the file and the first problems."""
    targets = model.state_dict()
    state, placed, problems = {}, set(), []
    for key, tensor in ref.items():
        name = fer_name(key, arch)
        if name not in targets:
            problems.append(f"unexpected tensor {key}")
            continue
        placed.add(name)
        want = tuple(targets[name].shape)
        if tuple(tensor.shape) != want:
            problems.append(f"{key} has shape {tuple(tensor.shape)}, not {want}")
        state[name] = tensor.to(targets[name].dtype)
    problems += [f"no tensor for fer's {k}" for k in targets if k not in placed]
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        detail = "; ".join(problems[:3]) + more
        raise FerError(f"{path}: not the reference's {NAMES[arch]}: {detail}")
    return state


def _head_rows(state: dict, order: list[str]) -> tuple[dict, list[str]]:
    """The head's rows moved into fer's canonical order; returns the state and the classes."""
    classes = [c for c in CANONICAL if c in order]
    perm = torch.tensor([order.index(c) for c in classes])
    return {k: (v[perm] if k in HEAD else v) for k, v in state.items()}, classes


# how the reference prepared its inputs (reference §2): dlib's HOG detector, get_face_chip padding
# 0.25, 224 px chips, 90 px ROI crops: fer predict prepares new inputs this way for its weights
REFERENCE_PREPROCESS = {"detector": "dlib", "padding": 0.25, "chip_size": 224, "crop_size": 90}


def reference_model(arch: str, path: Path, order: list[str]):
    """fer's ``arch`` model holding the authors' file ``path``, whose head's rows are the classes
    ``order``; returns the model, its classes (the rows, now in canonical order) and where it
    came from (``{file, sha256, classes, data_parallel, module}``). Any problem is a FerError
    naming the file."""
    from fer.models import create_model

    path = Path(path)
    if arch not in ROOTS:
        raise FerError(f"--arch {arch!r}: expected one of {list(ROOTS)}")
    if not path.is_file():
        raise FerError(f"{path}: checkpoint not found")
    bad = [c for c in order if c not in CANONICAL]
    if bad or len(set(order)) != len(order):
        raise FerError(f"--classes {order}: expected distinct names of {list(CANONICAL)}")
    ref, wrapped = reference_state(path, arch)
    if "fc.weight" not in ref or ref["fc.weight"].ndim != 2:
        raise FerError(f"{path}: no class head (fc.weight) in the reference's {NAMES[arch]}")
    n_classes = int(ref["fc.weight"].shape[0])
    if len(order) != n_classes:
        raise FerError(
            f"{path}: the head has {n_classes} classes, but the order given for it has "
            f"{len(order)} ({', '.join(order)})"
        )
    model = create_model(arch, len(order), 224, 90)
    state, classes = _head_rows(fer_state(ref, arch, model, path), list(order))
    model.load_state_dict(state, strict=True)
    origin = {
        "file": str(path),
        "sha256": sha256_file(path),
        "classes": list(order),
        "data_parallel": wrapped,
        "module": ROOTS[arch],
    }
    return model, classes, origin
