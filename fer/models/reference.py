"""The authors' released checkpoints (``roi.path`` / ``global.path``), imported safely.

Those files are whole-module pickles (``torch.save(model)``, PyTorch 1.12, CUDA storages,
sometimes inside ``nn.DataParallel``): loading them plainly would import the reference's modules
and run whatever the pickle names. :mod:`fer.models.reference_pickle` reads them with a
restricted unpickler that accepts only the globals the reference's files are known to name, as
inert placeholders. Here their tensors are renamed into fer's models by name, through one
explicit table (:data:`RENAMES`): every reference tensor must find its place, every fer tensor
must be filled, every shape must agree. The head's rows are put into fer's class order and an
ordinary fer checkpoint is written, recording where it came from.
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


def head_order(dataset: str, n_classes: int, classes: list[str] | None, path: Path) -> list[str]:
    """The classes of the head's rows, in order: stated, or the reference's for the data set
    (its adapter's ``reference_order``: reference §4.2, AffectNet codes)."""
    from fer.data import get_adapter

    if classes:
        bad = [c for c in classes if c not in CANONICAL]
        if bad or len(set(classes)) != len(classes):
            raise FerError(f"--classes {classes}: expected distinct names of {list(CANONICAL)}")
        order = list(classes)
    else:
        known = get_adapter(dataset).reference_order
        if known is None:
            raise FerError(
                f"--dataset {dataset}: the reference code does not give its models' class order "
                "for it; state the head's order with --classes (e.g. --classes neutral,happy,...)"
            )
        order = list(known)
    if len(order) != n_classes:
        raise FerError(
            f"{path}: the head has {n_classes} classes, but the order for {dataset} has "
            f"{len(order)} ({', '.join(order)})"
        )
    return order


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
REFERENCE_PREPROCESS = {"detector": "dlib", "padding": 0.25, "face_size": 224, "roi_size": 90}


def import_reference(
    arch: str,
    checkpoint: str | Path,
    dataset: str,
    out: str | Path,
    classes: list[str] | None = None,
    name: str | None = None,
    global_input: str = "aligned",
    config_hash: str = "",
) -> dict:
    """Import one of the authors' checkpoints as a fer checkpoint ``out``; returns its meta.

    ``dataset``: the reference data set it was trained on (its class order, its selection);
    ``classes``: the head's class order, where the reference's is unknown (FERPlus);
    ``name``: the data set's name in the workflow (default ``dataset``); ``global_input``: what
    the Global Net is scored on (the authors trained it on un-aligned frames: ``original``).
    Also writes ``{out stem}.history.csv`` (no epochs) and ``{out stem}.run.json``, as
    ``fer train`` does. Any problem is a FerError naming the file.
    """
    import time

    from fer.atomic import atomic_write, write_json
    from fer.contracts import HISTORY_COLUMNS
    from fer.models import create_model, save_checkpoint
    from fer.provenance import git_sha, versions
    from fer.train.augment import MEAN, STD

    started, path, out = time.perf_counter(), Path(checkpoint), Path(out)
    if arch not in ROOTS:
        raise FerError(f"--arch {arch!r}: expected one of {list(ROOTS)}")
    if not path.is_file():
        raise FerError(f"{path}: checkpoint not found")
    ref, wrapped = reference_state(path, arch)
    if "fc.weight" not in ref or ref["fc.weight"].ndim != 2:
        raise FerError(f"{path}: no class head (fc.weight) in the reference's {NAMES[arch]}")
    order = head_order(dataset, int(ref["fc.weight"].shape[0]), classes, path)
    model = create_model(arch, len(order), 224, 90)
    state, fer_classes = _head_rows(fer_state(ref, arch, model, path), order)
    model.load_state_dict(state, strict=True)
    selection = SELECTION.get(dataset, "test")
    origin = {
        "file": str(path),
        "sha256": sha256_file(path),
        "classes": order,
        "data_parallel": wrapped,
        "module": ROOTS[arch],
    }
    meta = {
        "classes": fer_classes,
        "dataset": name or dataset,
        "adapter": dataset,
        "origin": "reference",
        "reference": origin,
        "normalisation": {"mean": list(MEAN), "std": list(STD)},
        "preprocess": dict(REFERENCE_PREPROCESS),
        "selection": selection,
        "selected_on_test": selection == "test",
        "seed": None,
        "global_input": global_input if arch == "global" else "aligned",
        "fold": None,
        "best_epoch": None,
        "git_sha": git_sha(),
        "config_hash": config_hash,
        "init": None,
    }
    if selection == "test":
        meta["warning"] = "the authors chose this checkpoint on the test split"
    stem = out.parent / out.stem
    with atomic_write(f"{stem}.history.csv", newline="") as fh:
        fh.write(",".join(HISTORY_COLUMNS) + "\n")  # no epoch: imported, not trained
    meta = save_checkpoint(out, model, meta)
    run = {
        "origin": "reference",
        "dataset": meta["dataset"],
        "arch": arch,
        "fold": None,
        "reference": origin,
        "classes": fer_classes,
        "selection": selection,
        "selected_on_test": selection == "test",
        "git_sha": meta["git_sha"],
        "versions": versions(),
        "import_s": round(time.perf_counter() - started, 3),
        "checkpoint_meta": meta,
    }
    write_json(f"{stem}.run.json", run)
    return meta


def main(argv: list[str] | None = None) -> int:
    """``fer import-reference``."""
    from fer import cliargs

    p = cliargs.parser(
        "fer import-reference",
        "Import one of the authors' released checkpoints (a whole-module pickle, plain or in "
        "nn.DataParallel) as a fer checkpoint, safely: only the globals their files name are "
        "accepted, as inert placeholders; no reference code is imported or run.",
    )
    p.add_argument("--arch", required=True, choices=list(ROOTS), help="global.path or roi.path")
    p.add_argument("--checkpoint", required=True, type=Path, help="the authors' .path file")
    p.add_argument("--dataset", required=True, help="its data set's adapter, e.g. rafdb, ferplus")
    p.add_argument("--out", required=True, type=Path, help="the fer checkpoint to write")
    order = "the head's class order, comma-separated (needed for ferplus)"
    p.add_argument("--classes", type=lambda t: [c.strip() for c in t.split(",")], help=order)
    p.add_argument("--name", help="the data set's name in the workflow (default: --dataset)")
    scored = "what the Global Net is scored on (the authors trained it on original frames)"
    p.add_argument(
        "--global-input", choices=("aligned", "original"), default="aligned", help=scored
    )
    p.add_argument("--config-hash", default="", help="workflow config hash, for provenance")
    cliargs.add_threads(p)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = import_reference(
        args.arch,
        args.checkpoint,
        args.dataset,
        args.out,
        args.classes,
        args.name,
        args.global_input,
        args.config_hash,
    )
    print(
        f"wrote {args.out}: the authors' {NAMES[args.arch]} for {args.dataset}, classes "
        f"{', '.join(meta['classes'])}"
    )
    return 0
