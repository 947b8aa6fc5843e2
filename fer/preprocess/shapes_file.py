"""dlib's ``shape_predictor`` model files read without dlib (dlib 19.24's ``serialize.h`` and
``shape_predictor.h`` formats), as the arrays :mod:`fer.preprocess.shapes` predicts with.

dlib writes every number portably: an integer as a control byte (low nibble: how many bytes
follow; 0x80: negative) and its little-endian bytes; a float as two such integers, the mantissa
and the power of two. The 68-point model is 16.5 million floats: their offsets are walked with
one table lookup each, and they are decoded together in NumPy (about 3 s on one core).
"""

from __future__ import annotations

import array
from pathlib import Path

import numpy as np

from fer.errors import FerError

# dlib's float_details exponents that stand for inf, -inf and NaN
SPECIAL_EXPONENT = 32000


def float_lengths(data: bytes) -> bytes:
    """For each byte offset, the length of a dlib-serialized float starting there (a control
    byte and up to 8 mantissa bytes, then a control byte and up to 8 exponent bytes), so that
    walking a run of floats is one table lookup per float."""
    buf = np.concatenate([np.frombuffer(data, np.uint8), np.zeros(20, np.uint8)])
    out = np.empty(len(data), np.uint8)
    step = 1 << 22
    for start in range(0, len(data), step):
        at = np.arange(start, min(start + step, len(data)))
        mantissa = buf[at] & 0x0F
        out[at] = 2 + mantissa + (buf[at + 1 + mantissa] & 0x0F)
    return out.tobytes()


class _Reader:
    """dlib's serialization (``dlib/serialize.h``) over a file's bytes: integers as a control
    byte (low nibble: byte count; 0x80: negative) then little-endian bytes; floats as two such
    integers, the mantissa and the power of two."""

    def __init__(self, data: bytes, name: str):
        self.data, self.pos, self.name = data, 0, name
        self.lengths = float_lengths(data)

    def fail(self, what: str):
        raise FerError(f"{self.name}: not a dlib shape predictor ({what} at byte {self.pos})")

    def int(self) -> int:
        data, pos = self.data, self.pos
        if pos >= len(data):
            self.fail("file ends early")
        control = data[pos]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            self.fail("bad integer")
        value = int.from_bytes(data[pos + 1 : pos + 1 + size], "little")
        self.pos = pos + 1 + size
        return -value if control & 0x80 else value

    def float_starts(self, count: int, out: array.array) -> None:
        """Append the offsets of the next ``count`` floats to ``out`` and skip them: only their
        lengths are read here; :func:`decode_floats` decodes them all at once."""
        lengths, pos, append = self.lengths, self.pos, out.append
        try:
            for _ in range(count):
                append(pos)
                pos += lengths[pos]
        except IndexError:
            self.fail("file ends early")
        if pos > len(self.data):
            self.fail("file ends early")
        self.pos = pos

    def count(self, what: str, limit: int = 1 << 24, least: int = 1) -> int:
        value = self.int()
        if not least <= value <= limit:
            self.fail(f"{what} {value}")
        return value

    def matrix_size(self) -> int:
        """A column vector's length (dlib writes its rows and columns negated)."""
        rows, cols = abs(self.int()), abs(self.int())
        if cols != 1 or rows > 1 << 16:
            self.fail(f"a {rows}x{cols} matrix where a column vector was expected")
        return rows


def decode_floats(data: bytes, starts: np.ndarray, name: str) -> np.ndarray:
    """The float32 values of dlib-serialized floats starting at byte offsets ``starts`` (in
    blocks, so that the temporaries stay small)."""
    buf = np.concatenate([np.frombuffer(data, np.uint8), np.zeros(20, np.uint8)])  # no overrun
    out = np.empty(len(starts), np.float32)
    block = 1 << 20
    for i in range(0, len(starts), block):
        out[i : i + block] = _decode(buf, starts[i : i + block], name)
    return out


def _decode(buf: np.ndarray, starts: np.ndarray, name: str) -> np.ndarray:
    control = buf[starts]
    size = (control & 0x0F).astype(np.int64)
    if (control & 0x70).any() or (size > 8).any():
        raise FerError(f"{name}: not a dlib shape predictor (a float in an unknown encoding)")
    mantissa = np.zeros(len(starts), np.uint64)
    for lane in range(int(size.max(initial=0))):  # byte by byte, little-endian
        byte = np.where(size > lane, buf[starts + 1 + lane], 0).astype(np.uint64)
        mantissa |= byte << np.uint64(8 * lane)
    at = starts + 1 + size
    control2 = buf[at]
    size2 = (control2 & 0x0F).astype(np.int64)
    if (control2 & 0x70).any() or (size2 > 2).any():
        raise FerError(f"{name}: not a dlib shape predictor (a float exponent out of range)")
    exponent = (
        buf[at + 1].astype(np.int64) | np.where(size2 > 1, buf[at + 2].astype(np.int64), 0) << 8
    )
    exponent = np.where(control2 & 0x80, -exponent, exponent)
    if (exponent >= SPECIAL_EXPONENT).any():
        raise FerError(f"{name}: a dlib shape predictor with an infinite or NaN value")
    signed = np.where(control & 0x80, -1.0, 1.0) * mantissa.astype(np.float64)
    return np.ldexp(signed, exponent).astype(np.float32)


def parse(path: Path) -> dict[str, np.ndarray]:
    """A dlib ``shape_predictor`` file as arrays: ``initial`` (P, 2) the mean shape, and per
    cascade level ``c`` and tree ``t``: ``split`` (C, T, S, 2) pixel pairs, ``thresh`` (C, T, S),
    ``leaves`` (C, T, L, P, 2); ``anchor`` (C, F) and ``delta`` (C, F, 2), each feature pixel's
    landmark and offset. Every tree of the file must have the same depth."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FerError(f"{path}: cannot read the landmark model ({exc.strerror})") from None
    r = _Reader(data, name)
    if r.int() != 1:
        r.fail("version other than 1")
    points = r.matrix_size()
    if points % 2:
        r.fail(f"a mean shape of {points} numbers (x, y pairs expected)")
    starts = array.array("q")  # the floats' offsets (8 bytes each, not a Python int each)
    r.float_starts(points, starts)
    levels = r.count("cascade levels", 1000)
    split_idx, trees, n_splits, n_leaves = [], None, None, None
    for _ in range(levels):
        count = r.count("trees")
        if trees not in (None, count):
            r.fail("cascade levels with different numbers of trees")
        trees = count
        for _ in range(count):
            splits = r.count("splits")
            if n_splits not in (None, splits):
                r.fail("trees of different depths")
            n_splits = splits
            for _ in range(splits):
                split_idx.append((r.int(), r.int()))
                r.float_starts(1, starts)
            leaves = r.count("leaves")
            if n_leaves not in (None, leaves) or leaves != splits + 1 or leaves & splits:
                r.fail(f"{leaves} leaves for {splits} splits")
            n_leaves = leaves
            for _ in range(leaves):
                if r.matrix_size() != points:
                    r.fail("a leaf of another size than the shape")
                r.float_starts(points, starts)
    anchors = []
    if r.count("anchor levels", 1000) != levels:
        r.fail("anchors for another number of levels")
    for _ in range(levels):
        anchors.append([r.int() for _ in range(r.count("anchors", least=0))])
    if r.count("delta levels", 1000) != levels:
        r.fail("offsets for another number of levels")
    for i in range(levels):
        n = r.count("offsets", least=0)
        if n != len(anchors[i]) or n != len(anchors[0]):
            r.fail("as many offsets as anchors expected")
        r.float_starts(2 * n, starts)
    if r.pos != len(data):
        r.fail("trailing bytes")
    values = decode_floats(data, np.frombuffer(starts, np.int64), name)
    features = len(anchors[0])
    c, t, s, le, p = levels, trees or 0, n_splits or 0, n_leaves or 0, points
    # the floats in file order: the mean shape, then per tree its thresholds and its leaves
    # (interleaved: one threshold per split, then the leaves), then the offsets
    initial, rest = values[:p], values[p:]
    per_tree = rest[: c * t * (s + le * p)].reshape(c, t, s + le * p)
    thresh = np.ascontiguousarray(per_tree[:, :, :s])
    leaves = np.ascontiguousarray(per_tree[:, :, s:].reshape(c, t, le, p // 2, 2))
    delta = rest[c * t * (s + le * p) :].reshape(c, features, 2)
    split = np.asarray(split_idx, np.int64).reshape(c, t, s, 2)
    anchor = np.asarray(anchors, np.int64)
    if split.min() < 0 or split.max() >= features:
        raise FerError(f"{name}: not a dlib shape predictor (a split names a missing pixel)")
    if anchor.size and (anchor.min() < 0 or anchor.max() >= p // 2):
        raise FerError(f"{name}: not a dlib shape predictor (an anchor names a missing point)")
    return {
        "initial": initial.reshape(p // 2, 2),
        "split": split.astype(np.int32),
        "thresh": thresh,
        "leaves": leaves,
        "anchor": anchor.astype(np.int32),
        "delta": np.ascontiguousarray(delta),
    }
