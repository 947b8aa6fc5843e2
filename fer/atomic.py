"""Atomic file publication, the one way every stage writes a file.

A writer gets a handle on a temporary file with a unique name beside the target (so concurrent
runs never collide); only when the body finishes is that file given ordinary permissions and
renamed over the target, so readers see the old file or the whole new one, never a part. On any
failure the temporary file is removed; an ``OSError`` (a full disk, a read-only folder) becomes a
:class:`~fer.errors.FerError` naming the target, so the user sees one line, not a traceback.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from fer.errors import FerError


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """``with atomic_write(path) as fh: ...`` writes ``path`` all at once or not at all.

    ``mode`` is ``"w"`` (text, UTF-8 unless ``encoding`` is given) or ``"wb"``; other keyword
    arguments go to :func:`open` (e.g. ``newline=""`` for csv).
    """
    path = Path(path)
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
        publish(tmp, path)
    except OSError as exc:
        raise FerError(f"{path}: could not write ({exc.strerror or exc})") from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path) as handle:
        handle.write(text)


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2, **dump_kwargs) -> None:
    """Write ``obj`` as JSON (a trailing newline; NaN refused) to ``path`` atomically."""
    dump_kwargs.setdefault("allow_nan", False)
    with atomic_write(path) as handle:
        json.dump(obj, handle, indent=indent, **dump_kwargs)
        handle.write("\n")


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` atomically (checkpoints, resume state)."""
    import torch

    with atomic_write(path, "wb") as handle:
        try:
            torch.save(obj, handle)
        except RuntimeError as exc:  # torch's zip writer reports a failed write this way
            raise OSError(str(exc).splitlines()[0] if str(exc) else "torch.save failed") from exc


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give ``tmp`` ordinary permissions (``mkstemp`` makes it 0600) and rename it to ``path``."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
