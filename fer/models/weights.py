"""ImageNet ResNet-18 weights from a local file: never downloaded at run time.

``weights="imagenet"`` reads torchvision's IMAGENET1K_V1 file from the torch hub cache
(``torch.hub.get_dir()/checkpoints/resnet18-f37072fd.pth``, i.e. ``$TORCH_HOME/hub/checkpoints``);
``weights="/path/to/resnet18.pth"`` reads that file; ``None``/``"none"`` means random init.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fer.errors import FerError

IMAGENET_FILE = "resnet18-f37072fd.pth"
IMAGENET_URL = f"https://download.pytorch.org/models/{IMAGENET_FILE}"
# keys of torchvision's resnet18 state_dict that a trunk never uses
_UNUSED_PREFIXES = ("fc.",)


def imagenet_path() -> Path:
    """Where ``weights="imagenet"`` looks for torchvision's ResNet-18 IMAGENET1K_V1 file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE


def resolve_weights(weights: str | Path | None) -> dict[str, torch.Tensor] | None:
    """Return the ResNet-18 state_dict that ``weights`` names, or None for random init.

    Raises FerError (saying where to put the file and where to get it) when it is missing.
    """
    if weights is None or str(weights).strip().lower() in ("", "none"):
        return None
    if str(weights).strip().lower() == "imagenet":
        path = imagenet_path()
        if not path.is_file():
            raise FerError(
                f"ImageNet ResNet-18 weights not found at {path}: fer never downloads at run "
                f"time; fetch {IMAGENET_URL} and save it there (or set TORCH_HOME), or name a "
                f"local file with weights: /path/to/{IMAGENET_FILE}"
            )
        return load_resnet18_state(path)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FerError(
            f"weights file {path} not found: expected torchvision's ResNet-18 state_dict "
            f"({IMAGENET_URL}), 'imagenet' (looks in {imagenet_path().parent}) or 'none'"
        )
    return load_resnet18_state(path)


def load_resnet18_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a torchvision ResNet-18 state_dict (plain, or under ``"state_dict"``) safely."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling, zip and I/O errors all mean: not a usable file
        raise FerError(
            f"{path}: not a readable ResNet-18 state_dict ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or "conv1.weight" not in state:
        raise FerError(f"{path}: expected a ResNet-18 state_dict with a 'conv1.weight' entry")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_into_trunk(
    trunk: nn.Module, state: dict[str, torch.Tensor], source: str, extra: tuple[str, ...] = ()
) -> int:
    """Copy ResNet-18 tensors into ``trunk`` (whose keys are torchvision's, e.g. ``layer1.0...``).

    Keys with a path component in ``extra`` (modules the reference adds, e.g. ``cbam``) keep
    their init. Any other trunk key missing from ``state`` or of another shape raises FerError
    naming ``source``. Returns the number of tensors copied.
    """
    picked, problems = {}, []
    for key, target in trunk.state_dict().items():
        if any(part in extra for part in key.split(".")):
            continue
        if key not in state:
            if not key.endswith("num_batches_tracked"):
                problems.append(f"missing {key}")
            continue
        if tuple(state[key].shape) != tuple(target.shape):
            problems.append(f"{key} has shape {tuple(state[key].shape)}, not {tuple(target.shape)}")
            continue
        picked[key] = state[key]
    if problems:
        shown = "; ".join(problems[:3]) + (
            f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        )
        raise FerError(f"{source}: not a ResNet-18 state_dict: {shown}")
    trunk.load_state_dict(picked, strict=False)
    return len(picked)
