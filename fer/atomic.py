"""Atomic file publication, the one way every stage writes a file (or a folder).

A writer gets a handle on a temporary file with a unique name beside the target (so concurrent
runs never collide); only when the body finishes is that file given ordinary permissions and
renamed over the target, so readers see the old file or the whole new one, never a part. On any
failure the temporary file is removed; an ``OSError`` (a full disk, a read-only folder) becomes a
:class:`~fer.errors.FerError` naming the target, so the user sees one line, not a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
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


class StagedFile:
    """For writers that need a file name rather than a handle (``torch.jit.save``, an ONNX
    program, a video muxer): :attr:`tmp` is a unique temporary path beside ``path``, ending in
    ``path``'s suffix (muxers pick the format by it). :meth:`commit` publishes it over ``path``,
    :meth:`discard` removes it; used as a context manager it commits when the body succeeds and
    discards on any failure. An ``OSError`` becomes a FerError naming ``path``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=f".tmp{self.path.suffix}", dir=self.path.parent
            )
            os.close(fd)
        except OSError as exc:
            raise FerError(f"{self.path}: could not write ({exc.strerror or exc})") from exc
        self.tmp = Path(tmp)

    def commit(self) -> Path:
        """Publish the temporary file as :attr:`path`; returns it."""
        try:
            publish(self.tmp, self.path)
        except OSError as exc:
            self.discard()
            raise FerError(f"{self.path}: could not write ({exc.strerror or exc})") from exc
        return self.path

    def discard(self) -> None:
        """Remove the temporary file (if still there)."""
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> StagedFile:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


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


@contextmanager
def staged_folder(out: str | os.PathLike) -> Iterator[Path]:
    """``with staged_folder(out) as tmp: ...`` fills ``tmp`` (``.<name>.partial-<pid>`` beside
    ``out``), then swaps it in for ``out``; on any failure it is removed and ``out`` is untouched.
    Partial folders left by processes that no longer run (a ``kill -9``) are removed first."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        yield tmp
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise FerError(f"{exc.filename or out}: could not write ({exc.strerror or exc})") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale(out: Path) -> list[Path]:
    """Remove the ``.<name>.partial-<pid>`` and ``.old-<pid>`` folders of dead processes."""
    removed = []
    for kind in ("partial", "old"):
        for path in out.parent.glob(f".{out.name}.{kind}-*"):
            pid = path.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def reserve(path: str | os.PathLike, nbytes: int) -> None:
    """Allocate ``nbytes`` of disk for ``path`` now, so that writing it later (through a memory
    map, where a full disk would be a SIGBUS) cannot run out of space. A full disk is a
    :class:`~fer.errors.FerError` naming the file and the space it needs."""
    try:
        with open(path, "r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, nbytes)
    except OSError as exc:
        raise FerError(f"{path}: cannot reserve {human(nbytes)} ({exc.strerror or exc})") from exc


def require_space(target: str | os.PathLike, nbytes: int) -> None:
    """A :class:`~fer.errors.FerError` naming ``target`` unless the file system it is to be
    written on (that of its nearest existing folder) has ``nbytes`` free."""
    where = Path(target)
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    if free < nbytes:
        raise FerError(f"{target}: needs {human(nbytes)}, only {human(free)} free on its disk")


def human(nbytes: float) -> str:
    """``1536`` -> ``1.5 KB``: bytes for people."""
    if nbytes < 1024:
        return f"{nbytes:.0f} B"
    for unit in ("KB", "MB", "GB"):
        nbytes /= 1024
        if nbytes < 1024:
            return f"{nbytes:.1f} {unit}"
    return f"{nbytes / 1024:.1f} TB"
