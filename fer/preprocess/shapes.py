"""dlib's landmark predictors (``shape_predictor``: Kazemi & Sullivan's cascade of regression
trees) in NumPy, read from dlib's own model files, giving dlib's points.

Why: ``dlib.shape_predictor`` spends 0.6–0.8 s reading the 68-point model (100 MB of numbers in
dlib's portable encoding, two variable-length integers per float) in every process that aligns
faces: each ``fer prepare`` / ``fer predict`` worker, each run. That was most of their start-up.
Here the model is decoded once into plain arrays kept in fer's cache (``$FER_CACHE``, else
``~/.cache/fer``; :func:`load`), read back in milliseconds, and shared between forked workers
through the page cache.

The prediction is dlib's ``shape_predictor::operator()`` step for step (dlib 19.24,
``dlib/image_processing/shape_predictor.h``): for each cascade level, the similarity transform
from the mean shape to the current one (Umeyama, in double precision, then cast to float),
the feature pixels (float offsets from their anchor points, mapped into the face box and rounded
to the nearest pixel; 0 outside the image), each tree walked from the root (left where the
difference of its two pixels exceeds the threshold), and the leaves added to the shape one tree
after another in float32, as dlib does; the points are mapped into the image and rounded. The
points are dlib's, equal as integers (``tests/test_shapes.py`` compares them on real faces).

Images are grey (H, W) uint8: the intensity dlib reads from a pixel (``align.intensity``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer.atomic import staged_folder
from fer.errors import FerError
from fer.paths import CACHE_ENV, cache_dir
from fer.preprocess.shapes_file import parse
from fer.progress import say

FORMAT = 1  # the cache entry's layout; bump it when the arrays below change
# the leaves picked for a group of faces, laid out tree-major, are summed in one call: for 8 to 32
# faces of the 68-point model (up to 15 per group here) twice as fast as one face at a time, whose
# sums were 500 calls of 136 values
GROUP_BYTES = 4 << 20


def _cache_folder(path: Path) -> Path:
    """The cache entry of model ``path``: named after its path, size and modification time (a
    reinstall changes them), so no start-up reads 100 MB to hash it."""
    st = path.stat()
    key = json.dumps([str(path.resolve()), st.st_size, st.st_mtime_ns, FORMAT])
    return cache_dir() / "landmarks" / hashlib.sha256(key.encode()).hexdigest()[:32]


def load(path: str | os.PathLike) -> ShapePredictor:
    """The predictor in dlib model file ``path``, decoded into fer's cache the first time (a few
    seconds for the 68-point model) and memory-mapped from it afterwards (milliseconds; forked
    or spawned workers share the pages). A damaged cache entry is decoded again, and the decode
    of a model file that has changed since (a reinstall) replaced; an unwritable cache only costs
    the decoding each time."""
    path = Path(path)
    try:
        folder = _cache_folder(path)
    except OSError as exc:
        raise FerError(f"{path}: cannot read the landmark model ({exc.strerror})") from None
    arrays = _read_cache(folder)
    if arrays is None:
        arrays = parse(path)
        _write_cache(folder, arrays, path)
    return ShapePredictor(**arrays)


NAMES = ("initial", "split", "thresh", "leaves", "anchor", "delta")


def _read_cache(folder: Path) -> dict | None:
    """The cached arrays, memory-mapped; None where the entry is missing or damaged."""
    try:
        arrays = {n: np.load(folder / f"{n}.npy", mmap_mode="r") for n in NAMES}
        ShapePredictor(**arrays)  # shapes consistent
        return arrays
    except (OSError, ValueError, TypeError, IndexError):
        return None


def _write_cache(folder: Path, arrays: dict, source: Path) -> None:
    """The arrays as .npy files, published all at once (:func:`fer.atomic.staged_folder`: a
    damaged entry there is replaced, a killed writer's partial folder removed), then the other
    decodes of the model at that path removed (:func:`_prune_stale`); a cache that cannot be
    written is said in one line."""
    try:
        with staged_folder(folder) as tmp:
            for name in NAMES:
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(arrays[name]))
            (tmp / "source.json").write_text(json.dumps({"model": str(source.resolve())}) + "\n")
    except (OSError, FerError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        say(
            f"fer: {folder.parent}: cannot keep the decoded landmark model ({reason}); "
            f"each process decodes {source.name} again (seconds): set {CACHE_ENV} to a "
            "writable folder"
        )
    else:
        _prune_stale(folder, source)


def _prune_stale(keep: Path, source: Path) -> None:
    """Remove the cache's other decodes of the model file at ``source``'s path: that file has
    changed since they were made (a reinstall; about 70 MB each for the 68-point model). Decodes of
    other paths (other environments sharing the cache) stay; one that cannot be removed is left
    for the next decode to try."""
    model = str(source.resolve())
    try:
        entries = list(keep.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry == keep or entry.name.startswith(".") or not entry.is_dir():
            continue  # ours, or a writer's staging folder (fer.atomic clears those)
        try:
            named = json.loads((entry / "source.json").read_text()).get("model")
        except (OSError, ValueError, AttributeError):
            continue  # not an entry this code wrote: left alone
        if isinstance(named, str) and named == model:
            shutil.rmtree(entry, ignore_errors=True)


@dataclass(frozen=True)
class ShapePredictor:
    """A cascade of regression-tree forests (the arrays :func:`parse` returns); call it on a
    grey image and a face box to get dlib's landmarks."""

    initial: np.ndarray
    split: np.ndarray
    thresh: np.ndarray
    leaves: np.ndarray
    anchor: np.ndarray
    delta: np.ndarray

    @property
    def points(self) -> int:
        return len(self.initial)

    def __post_init__(self):
        c, t, s, _ = self.split.shape
        p = len(self.initial)
        expected = {
            "initial": (p, 2),
            "thresh": (c, t, s),
            "leaves": (c, t, s + 1, p, 2),
            "anchor": (c, self.anchor.shape[1]),
            "delta": (c, self.anchor.shape[1], 2),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name}: shape {getattr(self, name).shape}, expected {shape}")
        if (s + 1) & s:
            raise ValueError(f"trees of {s} splits: complete binary trees expected")
        for name in NAMES:
            kind = "i" if name in ("split", "anchor") else "f"
            if (
                getattr(self, name).dtype.kind != kind
                or kind == "f"
                and getattr(self, name).dtype != np.float32
            ):
                raise ValueError(f"{name}: {getattr(self, name).dtype} values")
        features = self.anchor.shape[1]
        if self.split.size and not 0 <= self.split.min() <= self.split.max() < features:
            raise ValueError(f"split: a feature pixel outside 0..{features - 1}")
        if self.anchor.size and not 0 <= self.anchor.min() <= self.anchor.max() < p:
            raise ValueError(f"anchor: a landmark outside 0..{p - 1}")
        # plain (not memmap: slower to index) flat views for the walk: node k of tree t is row
        # t * S + k; leaf l of tree t is row t * L + l
        split = np.asarray(self.split)
        object.__setattr__(self, "_first", split[..., 0].reshape(c, t * s))
        object.__setattr__(self, "_second", split[..., 1].reshape(c, t * s))
        object.__setattr__(self, "_thresh", np.asarray(self.thresh).reshape(c, t * s))
        object.__setattr__(self, "_leaves", np.asarray(self.leaves).reshape(c, -1, 2 * p))
        object.__setattr__(self, "_dx", np.ascontiguousarray(self.delta[..., 0]))
        object.__setattr__(self, "_dy", np.ascontiguousarray(self.delta[..., 1]))
        object.__setattr__(self, "_anchor", np.asarray(self.anchor))
        object.__setattr__(self, "_depth", int(s + 1).bit_length() - 1)

    def __call__(self, grey: np.ndarray, box) -> np.ndarray:
        """(P, 2) int64 landmarks (x, y) of the face in ``box`` (left, top, right, bottom,
        inclusive as a dlib.rectangle) of the (H, W) uint8 image ``grey``:
        ``dlib.shape_predictor``'s."""
        return self.many([grey], [box])[0]

    def many(self, greys: list[np.ndarray], boxes: list) -> np.ndarray:
        """(N, P, 2) landmarks of N faces, one per image and box, as :meth:`__call__`: each
        cascade level runs over all of them at once, which is faster than one face at a time."""
        if not greys:
            return np.zeros((0, self.points, 2), np.int64)
        for grey in greys:
            if grey.ndim != 2 or grey.dtype != np.uint8:
                raise ValueError(
                    f"grey (H, W) uint8 images expected, not {grey.dtype} {grey.shape}"
                )
        n = len(greys)
        box = np.array([[float(v) for v in b] for b in boxes]).reshape(n, 4)
        # unnormalizing_tform: the unit square onto each box (double precision), per axis
        left, top = box[:, 0:1], box[:, 1:2]
        wide, tall = box[:, 2:3] - left, box[:, 3:4] - top
        height = np.array([g.shape[0] for g in greys], np.uint64)[:, None]
        width = np.array([g.shape[1] for g in greys], np.uint64)[:, None]
        start = np.cumsum([0] + [g.size for g in greys[:-1]])[:, None]
        pixels = np.concatenate([g.reshape(-1) for g in greys] + [np.zeros(1, np.uint8)])
        outside = len(pixels) - 1  # index of a 0 pixel, read for points outside their image
        levels, trees, splits, _ = self.split.shape
        features = self.anchor.shape[1]
        node_base = np.arange(trees) * splits
        leaf_base = np.arange(trees) * self.leaves.shape[2] - splits
        face_base = np.arange(n)[:, None] * features
        initial = np.asarray(self.initial, np.float64)
        # the current shapes; the leaves of a group of faces are summed down axis 0 of a buffer
        # (tree, face, value) whose row 0 holds their shapes: a reduction over the outer axis is
        # sequential, tree after tree in float32, as dlib's `current_shape += leaf`
        coords = 2 * self.points  # x, y of each point
        current = np.empty((n, coords), np.float32)
        current[:] = np.asarray(self.initial).reshape(-1)
        groups = -(-n * (trees + 1) * coords * 4 // GROUP_BYTES)  # of even sizes
        group = -(-n // groups)
        buffer = np.empty((trees + 1) * group * coords, np.float32)
        for level in range(levels):
            shape = current.reshape(n, -1, 2)
            m = _similarity(initial, shape)  # (N, 2, 2)
            dx, dy, anchor = self._dx[level], self._dy[level], self._anchor[level]
            # tform * delta in float (x = m00 dx + m01 dy), plus the anchor point, in float;
            # then into the box in double and rounded; an axis at a time (contiguous arrays)
            x = dx * m[:, 0, 0:1] + dy * m[:, 0, 1:2]
            x += shape[:, anchor, 0]
            x = np.floor(x.astype(np.float64) * wide + left + 0.5).astype(np.int64)
            y = dx * m[:, 1, 0:1] + dy * m[:, 1, 1:2]
            y += shape[:, anchor, 1]
            y = np.floor(y.astype(np.float64) * tall + top + 0.5).astype(np.int64)
            # inside the image: as unsigned numbers, negative coordinates are past every side
            inside = (x.view(np.uint64) < width) & (y.view(np.uint64) < height)
            y *= width.astype(np.int64)
            y += x
            y += start
            values = pixels[np.where(inside, y, outside)].astype(np.float32).reshape(-1)
            first, second, thresh = self._first[level], self._second[level], self._thresh[level]
            node = np.zeros((n, trees), np.int64)
            for _ in range(self._depth):  # complete trees: all reach their leaves together
                k = node_base + node
                diff = values[face_base + first[k]] - values[face_base + second[k]]
                node = 2 * node + 1 + (diff <= thresh[k])
            leaves, picked = self._leaves[level], leaf_base + node
            for first_face in range(0, n, group):
                faces = slice(first_face, first_face + group)
                count = len(picked[faces])
                sums = buffer[: (trees + 1) * count * coords].reshape(trees + 1, count, coords)
                sums[0] = current[faces]
                tree_major = picked[faces].T.reshape(-1)
                np.take(leaves, tree_major, axis=0, out=sums[1:].reshape(-1, coords), mode="clip")
                np.add.reduce(sums, axis=0, out=current[faces])
        shape = current.reshape(n, -1, 2).astype(np.float64)
        scale, origin = np.hstack([wide, tall])[:, None], box[:, None, :2]
        return np.floor(shape * scale + origin + 0.5).astype(np.int64)


def _similarity(source: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(N, 2, 2) float32: the linear part of the least-squares similarity taking point set
    ``source`` (P, 2) to each of ``targets`` (N, P, 2), as dlib's ``find_similarity_transform``
    (Umeyama 1991, in float64). Where the cross-covariance has a positive determinant, the SVD's
    ``c R`` is ``[[p, -q], [q, p]] / sigma``, ``p`` its trace and ``q`` its antisymmetric part;
    otherwise the SVD is taken, as dlib does."""
    to = targets.astype(np.float64)
    a, b = source - source.mean(0), to - to.mean(1, keepdims=True)
    count = len(source)
    sigma = float(np.einsum("ij,ij->", a, a)) / count
    cov = np.einsum("npi,pj->nij", b, a) / count
    det = cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] * cov[:, 1, 0]
    p, q = cov[:, 0, 0] + cov[:, 1, 1], cov[:, 1, 0] - cov[:, 0, 1]
    out = np.stack([np.stack([p, -q], -1), np.stack([q, p], -1)], 1) / (sigma or 1.0)
    for i in np.flatnonzero(~(det > 0) | (sigma == 0)):
        u, d, vt = np.linalg.svd(cov[i])
        s = np.ones(2)
        if det[i] < 0 or (det[i] == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
            s[1 if d[1] < d[0] else 0] = -1
        c = (d * s).sum() / sigma if sigma != 0 else 1.0
        out[i] = c * (u @ np.diag(s) @ vt)
    return out.astype(np.float32)
