"""Where fer may read and write: the path rules of docs/safety.md, each in one function.

- **Inputs stay inside their root** (:func:`confined`): a path that fer reads because a *file*
  told it to (a manifest row, a ``csv:`` picture reference, the checkpoints ``fusion.json``
  names) must resolve — after ``..`` and every symlink in it — inside the folder it belongs to.
  The root itself may be a symlink. What the user types (a command-line path, a list on stdin)
  is the user's own and exempt.
- **Outputs never go inside raw data and never over an input** (:func:`writable_out`): checked
  by every verb before it writes anything.
- **Only regular files are opened** (:func:`file_problem`, :func:`require_file`): a FIFO, a
  device, a folder or a symlink loop where a file is expected is named as such, never opened
  (opening a FIFO blocks until someone writes to it).

Each refusal is a :class:`~fer.errors.FerError`: one line naming the path and the rule.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from fer.errors import FerError

CACHE_ENV = "FER_CACHE"  # where fer keeps what it derives once (cache_dir)
OUTSIDE_ROOT = "outside_root"  # the reason a row whose path leaves its root is skipped with

PathLike = str | os.PathLike


class OutsideRoot(FerError):
    """A path that a file named and that resolves outside its root (``reason`` = outside_root)."""

    reason = OUTSIDE_ROOT

    def __init__(self, path: PathLike, root: PathLike, resolved: PathLike, what: str = "path"):
        where = f" (it resolves to {resolved})" if str(resolved) != str(path) else ""
        super().__init__(f"{what} {path}: outside its root {root}{where}; refused ({OUTSIDE_ROOT})")
        self.path, self.root = str(path), str(root)


def real(path: PathLike) -> Path:
    """``path`` with ``..`` and every symlink resolved (a missing tail kept as written; a
    symlink loop left where it loops)."""
    return Path(os.path.realpath(os.fspath(path)))


def is_within(path: PathLike, root: PathLike) -> bool:
    """Whether ``path`` is ``root`` or lies under it, both resolved."""
    p, r = real(path), real(root)
    return p == r or r in p.parents


def confined(path: PathLike, root: PathLike, what: str = "path") -> Path:
    """``root / path`` (an absolute ``path`` stays itself), refused with :class:`OutsideRoot`
    unless it resolves inside ``root``. Returns the joined path as written (for messages)."""
    joined = Path(root) / path
    resolved = real(joined)
    if not is_within(resolved, root):
        raise OutsideRoot(path, root, resolved, what)
    return joined


def file_problem(path: PathLike) -> str | None:
    """Why ``path`` cannot be opened as a regular file (``"file not found"``, ``"a folder, not a
    file"``, ``"a FIFO (named pipe), not a regular file"``, ``"a symlink loop"``,
    ``"permission denied"``, …), or None when it can."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "permission denied"
        if exc.errno == errno.ENOTDIR:
            return "not found (a parent is a file, not a folder)"
        if exc.errno == errno.ENAMETOOLONG:
            return "a name too long for the file system"
        return "file not found" if exc.errno == errno.ENOENT else f"cannot be read: {exc.strerror}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    return "a device, not a regular file"


def require_file(path: PathLike, what: str = "") -> Path:
    """``path`` if it is a regular file; otherwise a one-line FerError saying what it is."""
    problem = file_problem(path)
    if problem:
        raise FerError(f"{what + ' ' if what else ''}{path}: {problem}")
    return Path(path)


SMALL_FILE = 1 << 20  # 1 MiB: the most a configuration-sized file (fusion.json, a config) may hold


def read_small(path: PathLike, limit: int = SMALL_FILE, what: str = "file") -> str:
    """The text of a small file fer parses (a config, ``fusion.json``): a regular file of at
    most ``limit`` bytes, UTF-8; anything else is a one-line FerError naming it."""
    require_file(path, what)
    size = os.path.getsize(path)
    if size > limit:
        raise FerError(f"{what} {path}: {size:,} bytes, over the limit of {limit:,}")
    try:
        with open(path, "rb") as handle:
            return handle.read(limit + 1).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FerError(f"{what} {path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise FerError(f"{what} {path}: cannot be read ({exc.strerror or exc})") from None


def writable_out(
    out: PathLike,
    *,
    inputs: Iterable[PathLike] = (),
    raw_roots: Iterable[PathLike] = (),
    what: str = "--out",
    whole: bool = True,
) -> Path:
    """``out`` if a verb may write it: not inside (nor holding) a data folder the call reads
    (``raw_roots``: a raw data root, a prepared folder, an input folder), not one of the
    ``inputs`` and — when the output is replaced as a whole (``whole``: a file, a prepared
    folder) — not a folder holding one. Checked before anything is written; a FerError names
    the rule."""
    target = real(out)
    for root in raw_roots:
        if is_within(target, root):
            raise FerError(
                f"{what} {out}: inside {root}, a data folder this command reads; data folders "
                "are only read — write the output elsewhere"
            )
        if whole and is_within(root, target):
            raise FerError(
                f"{what} {out}: holds {root}, a data folder this command reads; write elsewhere"
            )
    for source in inputs:
        if real(source) == target:
            raise FerError(
                f"{what} {out}: is an input of this command ({source}); it would be "
                "overwritten — write elsewhere"
            )
        if whole and is_within(source, target):
            raise FerError(f"{what} {out}: holds the input {source}; write elsewhere")
    return Path(out)


def cache_dir() -> Path:
    """Where fer keeps what it derives once (ONNX graphs, decoded landmark models):
    ``$FER_CACHE``, else ``$XDG_CACHE_HOME/fer``, else ``~/.cache/fer``."""
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "fer"
