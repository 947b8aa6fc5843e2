"""Initial weights from a local file: never downloaded at run time.

``weights="imagenet"`` reads torchvision's IMAGENET1K_V1 file from the torch hub cache
(``$TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth``, :func:`fer.imagenet.cache_path`; ``fer
fetch-weights`` puts it there);
``weights="/path/to/resnet18.pth"`` reads that file; ``None``/``"none"`` means random init.
``weights="models/fer2013/global.pt"`` (a checkpoint written by ``fer train``) fine-tunes from
that model: every tensor but the class head (whose classes belong to the other data set).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from fer import imagenet
from fer.errors import FerError
from fer.imagenet import URL as IMAGENET_URL

# keys of torchvision's resnet18 state_dict that a trunk never uses
_UNUSED_PREFIXES = ("fc.",)


class Init(NamedTuple):
    """What ``weights`` names: a ResNet-18 state_dict (``meta`` None) or a fer checkpoint."""

    state: dict[str, torch.Tensor]
    meta: dict | None
    source: str


def resolve_weights(weights: str | Path | None) -> Init | None:
    """Read the weights that ``weights`` names, or return None for random init.

    Raises FerError (saying where to put the file and where to get it) when it is missing.
    """
    if weights is None or str(weights).strip().lower() in ("", "none"):
        return None
    if str(weights).strip().lower() == "imagenet":
        path = imagenet.cache_path()
        if not path.is_file():
            raise FerError(
                f"ImageNet ResNet-18 weights not found at {path}: fer never downloads at run "
                f"time; run `fer fetch-weights` (or `fer fetch-weights --from FILE` with a copy "
                f"of {IMAGENET_URL}), set TORCH_HOME, or name a file: weights: /path/to/file"
            )
        return Init(load_resnet18_state(path), None, str(path))
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FerError(
            f"weights file {path} not found: expected torchvision's ResNet-18 state_dict "
            f"({IMAGENET_URL}), a checkpoint written by `fer train`, 'imagenet' (looks in "
            f"{imagenet.cache_path().parent}) or 'none'"
        )
    state = _load(path)
    if (
        isinstance(state, dict)
        and isinstance(state.get("state_dict"), dict)
        and isinstance(state.get("meta"), dict)
    ):
        return Init(state["state_dict"], state["meta"], str(path))
    return Init(load_resnet18_state(path, state), None, str(path))


def _load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling, zip and I/O errors all mean: not a usable file
        raise FerError(
            f"{path}: not a readable ResNet-18 state_dict or fer checkpoint "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc


def load_resnet18_state(path: str | Path, state=None) -> dict[str, torch.Tensor]:
    """Read a torchvision ResNet-18 state_dict (plain, or under ``"state_dict"``) safely;
    ``state``: what ``path`` holds, when it was read already. Any other network (a ResNet-34,
    a ResNet-50, a state_dict missing or adding tensors) is refused, naming what the file holds."""
    if state is None:
        state = _load(Path(path))
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or "conv1.weight" not in state:
        raise FerError(f"{path}: expected a ResNet-18 state_dict with a 'conv1.weight' entry")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    found, expected = _trunk_keys(state), _trunk_keys(_resnet18_keys())
    if found != expected:
        what = describe_resnet(state)
        if what.startswith("ResNet-18"):  # the right depth, yet tensors missing or added
            gaps = [f"missing {k}" for k in sorted(expected - found)]
            gaps += [f"unexpected {k}" for k in sorted(found - expected)]
            what += (
                ": " + "; ".join(gaps[:3]) + (f" (+{len(gaps) - 3} more)" if len(gaps) > 3 else "")
            )
        raise FerError(
            f"{path}: holds {what}; expected torchvision's ResNet-18 (blocks per layer 2, 2, 2, 2)"
        )
    return state


def _trunk_keys(keys) -> set[str]:
    """The keys that define a trunk: not the ImageNet classifier, not BN's batch counters (the
    original ImageNet files predate them)."""
    return {k for k in keys if not k.startswith(_UNUSED_PREFIXES) and "num_batches" not in k}


@lru_cache(maxsize=1)
def _resnet18_keys() -> frozenset[str]:
    import torchvision

    return frozenset(torchvision.models.resnet18(weights=None).state_dict())


KNOWN_RESNETS = {
    ((2, 2, 2, 2), False): "ResNet-18",
    ((3, 4, 6, 3), False): "ResNet-34",
    ((3, 4, 6, 3), True): "ResNet-50",
    ((3, 4, 23, 3), True): "ResNet-101",
    ((3, 8, 36, 3), True): "ResNet-152",
}


def describe_resnet(state: dict) -> str:
    """What a ResNet-like state_dict is, in words: its depth from the blocks of each layer."""
    blocks = []
    for layer in range(1, 5):
        indices = {int(k.split(".")[1]) for k in state if k.startswith(f"layer{layer}.")}
        blocks.append(max(indices) + 1 if indices else 0)
    if not any(blocks):
        return f"{len(state)} tensor(s) of no ResNet (no layer1..layer4)"
    bottleneck = any(k.endswith("conv3.weight") for k in state)
    name = KNOWN_RESNETS.get((tuple(blocks), bottleneck), "a ResNet-like network")
    per_layer = ", ".join(map(str, blocks))
    return f"{name} weights ({len(state)} tensors, blocks per layer {per_layer})"


def load_into_trunk(
    trunk: nn.Module, state: dict[str, torch.Tensor], source: str, extra: tuple[str, ...] = ()
) -> int:
    """Copy ResNet-18 tensors into ``trunk`` (whose keys are torchvision's, e.g. ``layer1.0...``).

    Keys with a path component in ``extra`` (modules the reference adds, e.g. ``cbam``) keep
    their init. Any other trunk key missing from ``state`` or of another shape raises FerError
    naming ``source``. Returns the number of tensors copied.
    """
    picked = _matching(
        trunk.state_dict(),
        state,
        lambda key: any(part in extra for part in key.split(".")),
        f"{source}: not a ResNet-18 state_dict",
    )
    trunk.load_state_dict(picked, strict=False)
    return len(picked)


def _matching(targets: dict, state: dict, skip, where: str) -> dict[str, torch.Tensor]:
    """The tensors of ``state`` for every key of ``targets`` that ``skip(key)`` keeps out of it.

    A key missing from ``state`` (other than a BatchNorm ``num_batches_tracked`` count) or of
    another shape raises FerError ``"{where}: ..."`` naming the first three.
    """
    picked, problems = {}, []
    for key, target in targets.items():
        if skip(key):
            continue
        if key not in state:
            if not key.endswith("num_batches_tracked"):
                problems.append(f"missing {key}")
        elif tuple(state[key].shape) != tuple(target.shape):
            problems.append(f"{key} has shape {tuple(state[key].shape)}, not {tuple(target.shape)}")
        else:
            picked[key] = state[key]
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise FerError(f"{where}: {'; '.join(problems[:3])}{more}")
    return picked


def load_finetune(model: nn.Module, init: Init) -> int:
    """Copy a fer checkpoint of the same architecture into ``model``, all but its class head.

    The head (``model.class_head`` prefixes) keeps its fresh init: its classes are the other
    data set's. Input sizes may differ (the convolutions do not depend on them). Another
    architecture, or a tensor missing or of another shape, raises FerError naming the file.
    Returns the number of tensors copied.
    """
    arch = init.meta.get("model")
    if arch != model.arch:
        raise FerError(
            f"{init.source}: a {arch!r} checkpoint cannot initialise a {model.arch!r} model "
            f"(fine-tuning starts from a model of the same architecture)"
        )
    picked = _matching(
        model.state_dict(),
        init.state,
        lambda key: key.startswith(model.class_head),
        f"{init.source}: does not fit a {model.arch!r} model",
    )
    model.load_state_dict(picked, strict=False)
    return len(picked)
