"""ImageNet weights of ResNet-18 (torchvision's ``IMAGENET1K_V1``): where fer looks for them, and
``fer fetch-weights``, which puts them there.

fer never downloads at training time: ``weights: imagenet`` reads torch's hub cache,
``$TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth`` (``~/.cache/torch/...`` by default). The
workflow checks the file is there before any job runs. ``fer fetch-weights`` downloads it with
torchvision's own weights API (``ResNet18_Weights.IMAGENET1K_V1.get_state_dict``, which saves it
into that cache and checks its sha256 against the name), or copies a file you downloaded by hand
(``--from FILE``) after checking the same hash. This module imports no torch unless it fetches.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fer import cliargs
from fer.atomic import atomic_write
from fer.errors import FerError
from fer.provenance import sha256_file

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


def check_file(path: Path) -> None:
    """A FerError unless ``path`` is torchvision's ResNet-18 ImageNet file (hash and content)."""
    from fer.models.weights import load_resnet18_state

    digest = sha256_file(path)
    if not digest.startswith(SHA256_PREFIX):
        raise FerError(
            f"{path}: sha256 {digest[:12]}..., not torchvision's ResNet-18 IMAGENET1K_V1 file "
            f"({SHA256_PREFIX}...); other weights go in a recipe as `weights: {path}`"
        )
    load_resnet18_state(path)


def fetch(source: Path | None = None) -> Path:
    """Put the ImageNet weights into the cache (download, or copy ``source``); returns where."""
    target = cache_path()
    if source is not None:
        source = Path(source).expanduser()
        if not source.is_file():
            raise FerError(f"{source}: not found (expected {FILE}, from {URL})")
        check_file(source)
        with open(source, "rb") as data, atomic_write(target, "wb") as copy:
            shutil.copyfileobj(data, copy)
        return target
    if target.is_file():
        check_file(target)
        return target
    try:
        download()
    except OSError as exc:  # URLError is an OSError: no network, a proxy, a refused connection
        reason = getattr(exc, "reason", None) or exc
        raise FerError(
            f"could not download {URL} ({reason}); download it by hand and run "
            f"`fer fetch-weights --from {FILE}`"
        ) from None
    except RuntimeError as exc:  # torch.hub's hash check
        raise FerError(f"{URL}: the download failed its hash check ({exc})") from None
    return target


def download() -> None:
    """torchvision's own download of ``ResNet18_Weights.IMAGENET1K_V1`` into torch's hub cache
    (``torch.hub.load_state_dict_from_url`` with ``check_hash=True``)."""
    import torchvision

    torchvision.models.ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=True, check_hash=True)


def main(argv: list[str] | None = None) -> int:
    p = cliargs.parser(
        "fer fetch-weights",
        f"Put torchvision's ResNet-18 ImageNet weights where `weights: imagenet` reads them "
        f"({cache_path()}): download them ({URL}, sha256-checked), or copy a file downloaded "
        "by hand.",
    )
    p.add_argument("--from", dest="source", type=Path, metavar="FILE", help=f"a copy of {FILE}")
    args = p.parse_args(argv)
    target = fetch(args.source)
    print(f"ImageNet ResNet-18 weights at {target}")
    return 0
