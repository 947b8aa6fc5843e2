"""What produced a number: the code's commit, the package versions, the device it ran on."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path

from fer import __version__
from fer.errors import FerError


def git_sha() -> str | None:
    """Commit of the checkout ``fer`` runs from (``FER_GIT_SHA`` wins); None if unknown."""
    if os.environ.get("FER_GIT_SHA"):
        return os.environ["FER_GIT_SHA"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in chunks (checkpoints, prepared arrays, weights)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def versions() -> dict[str, str]:
    """Versions of the packages that decide the numbers."""
    import numpy as np
    import torch
    import torchvision

    return {
        "fer": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": str(torch.version.cuda),
    }


def resolve_device(name: str):
    """``auto`` -> cuda when one is visible, else cpu; an unusable device is a FerError."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise FerError(f"--device {name!r}: not a torch device ({exc})") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FerError(f"--device {name!r}: no CUDA device is visible here")
    return device
