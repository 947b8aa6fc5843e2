"""What produced a number: the code's commit, the package versions, the device it ran on."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
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


_DIGESTS: dict[tuple, str] = {}  # sha256 by (path, size, mtime): read once per process


def file_digest(path: str | os.PathLike) -> str:
    """:func:`sha256_file` of a file read once per process while its size and mtime hold (a
    checkpoint's names its cached graph and is checked against fusion.json: one read serves
    both)."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


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


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_only(name: str) -> bool:
    """Whether device ``name`` is the CPU, known without importing torch (about 1.5 s): ``cpu``,
    or ``auto`` where no CUDA device can be visible (a CPU-only torch build, macOS, or Linux
    without NVIDIA's or ROCm's device files). False where only torch can tell."""
    if name == "cpu":
        return True
    if name != "auto":
        return False
    from importlib.metadata import PackageNotFoundError, version

    try:
        if "+cpu" in version("torch"):
            return True
    except PackageNotFoundError:
        return False
    if sys.platform == "darwin":
        return True
    if sys.platform.startswith("linux"):
        dev = Path("/dev")
        return not (any(dev.glob("nvidia[0-9]*")) or (dev / "kfd").exists())
    return False


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
