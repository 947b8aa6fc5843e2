"""ImageNet weights of ResNet-18 (torchvision's ``IMAGENET1K_V1``): which file, and where fer
looks for it.

fer never downloads at training time: ``weights: imagenet`` reads torch's hub cache,
``$TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth`` (``~/.cache/torch/...`` by default). The
workflow checks the file is there before any job runs; ``fer fetch-weights``
(:mod:`fer.models.fetch`) puts it there. This module imports nothing but the standard library.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE = "resnet18-f37072fd.pth"
URL = f"https://download.pytorch.org/models/{FILE}"
SHA256_PREFIX = FILE.split("-")[1].split(".")[0]  # torch.hub's convention: the name's hash part


def cache_path() -> Path:
    """Where ``weights: imagenet`` reads the file: ``torch.hub.get_dir()/checkpoints/FILE``,
    worked out as torch does (``TORCH_HOME``, else ``XDG_CACHE_HOME/torch``, else
    ``~/.cache/torch``) without importing torch."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch"
    )
    return Path(os.path.expanduser(home)) / "hub" / "checkpoints" / FILE
