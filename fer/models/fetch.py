"""``fer fetch-weights``: put torchvision's ResNet-18 ImageNet weights where ``weights: imagenet``
reads them (:func:`fer.imagenet.cache_path`).

It downloads them with torchvision's own weights API (``ResNet18_Weights.IMAGENET1K_V1.
get_state_dict``, which saves the file into torch's hub cache and checks its sha256 against the
name), or copies a file downloaded by hand (``--from FILE``) after checking the same hash and
that it holds a ResNet-18 (:func:`fer.models.weights.load_resnet18_state`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from fer import cliargs, imagenet
from fer.atomic import atomic_write
from fer.errors import FerError
from fer.imagenet import FILE, URL
from fer.models.weights import load_resnet18_state
from fer.paths import file_problem
from fer.provenance import sha256_file


def check_file(path: Path) -> None:
    """A FerError unless ``path`` is torchvision's ResNet-18 ImageNet file (hash and content)."""
    digest = sha256_file(path)
    if not digest.startswith(imagenet.SHA256_PREFIX):
        raise FerError(
            f"{path}: sha256 {digest[:12]}..., not torchvision's ResNet-18 IMAGENET1K_V1 file "
            f"({imagenet.SHA256_PREFIX}...); other weights go in a recipe as `weights: {path}`"
        )
    load_resnet18_state(path)


def fetch(source: Path | None = None) -> Path:
    """Put the ImageNet weights into the cache (download, or copy ``source``); returns where."""
    target = imagenet.cache_path()
    if source is not None:
        source = Path(source).expanduser()
        problem = file_problem(source)
        if problem:
            raise FerError(f"{source}: {problem} (expected {FILE}, from {URL})")
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
    """Entry point of ``fer fetch-weights``."""
    p = cliargs.parser(
        "fer fetch-weights",
        f"Put torchvision's ResNet-18 ImageNet weights where `weights: imagenet` reads them "
        f"({imagenet.cache_path()}): download them ({URL}, sha256-checked), or copy a file "
        "downloaded by hand.",
    )
    p.add_argument("--from", dest="source", type=Path, metavar="FILE", help=f"a copy of {FILE}")
    args = p.parse_args(argv)
    target = fetch(args.source)
    print(f"ImageNet ResNet-18 weights at {target}")
    return 0
