"""MTCNN's three nets in NumPy, with facenet-pytorch's bundled weights read without torch.

On the CPU, ``fer prepare`` runs these instead of torch modules: importing torch costs more than a
second per run (about as long as a 2-core machine takes to detect faces in 100 portraits), and for
nets this small NumPy's BLAS is as fast when the convolutions are cache-blocked. The values are
the torch nets' to float32 rounding (``tests/test_mtcnn.py``).

Arrays are channels-last throughout: a batch is (N, H, W, C) float32, already normalised as the
nets expect (``(x - 127.5) / 128``). Layer names are facenet-pytorch's (its state-dict keys).
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

from fer.errors import FerError

NET_NAMES = ("pnet", "rnet", "onet")
# im2col block: rows of the unfolded input per GEMM, so that block stays in the L2 cache
BLOCK_BYTES = 1 << 20
# layers with at most this many input channels (the nets' first, RGB) unfold planar
PLANAR_CHANNELS = 4


def weights_folder() -> Path:
    """facenet-pytorch's ``data`` folder (the bundled P/R/O-net weights), found without importing
    the package (which imports torch and torchvision)."""
    spec = importlib.util.find_spec("facenet_pytorch")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" if spec else None
    if folder is None or not (folder / "pnet.pt").is_file():
        raise FerError(
            "the mtcnn detector needs facenet-pytorch's bundled weights (facenet_pytorch/data/"
            "pnet.pt …): pip install 'facenet-pytorch>=2.5.3,<2.6'"
        )
    return folder


# ---- torch's legacy (pre-zip) checkpoint format, as facenet-pytorch ships its weights ------------
_STORAGES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


class _Tensor:
    """A tensor named in the pickle, materialised once its storage's bytes are read."""

    def __init__(self, storage, offset, size, stride, *_):
        self.key, self.offset, self.size, self.stride = storage, offset, tuple(size), stride


class _StateDict(dict):
    """The pickled OrderedDict (it carries a ``_metadata`` attribute, set by BUILD)."""


class _Unpickler(pickle.Unpickler):
    """Builds nothing but plain values and an OrderedDict of :class:`_Tensor` (any other class
    is refused: the file cannot run code)."""

    def __init__(self, file):
        super().__init__(file)
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return _StateDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _Tensor
        if module == "torch" and name in _STORAGES:
            return _STORAGES[name]
        raise pickle.UnpicklingError(f"unexpected {module}.{name}")

    def persistent_load(self, pid):
        kind, dtype, key, _location, numel, _view = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        self.storages[key] = (np.dtype(dtype), numel)
        return key


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a state dict saved by ``torch.save`` in its legacy format (torch < 1.6, as
    facenet-pytorch's ``{p,r,o}net.pt``), as NumPy arrays; torch is not imported."""
    try:
        with open(path, "rb") as f:
            magic, protocol, info = (_Unpickler(f).load() for _ in range(3))
            if magic != 0x1950A86A20F9469CFC6C or protocol != 1001 or not info["little_endian"]:
                raise ValueError("not a little-endian legacy torch checkpoint")
            unpickler = _Unpickler(f)
            tensors = unpickler.load()
            data = {}
            for key in _Unpickler(f).load():
                dtype, numel = unpickler.storages[key]
                if int(np.frombuffer(f.read(8), "<i8")[0]) != numel:
                    raise ValueError(f"storage {key}: unexpected size")
                raw = f.read(numel * dtype.itemsize)
                if len(raw) != numel * dtype.itemsize:
                    raise ValueError(f"storage {key}: truncated")
                data[key] = np.frombuffer(raw, dtype.newbyteorder("<"))
        out = {}
        for name, t in tensors.items():
            flat = data[t.key]
            last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride, strict=True))
            if min(t.size, default=1) > 0 and not 0 <= t.offset <= last < len(flat):
                raise ValueError(f"{name} overruns its storage")
            strides = tuple(s * flat.itemsize for s in t.stride)
            view = as_strided(flat[t.offset :], t.size, strides)
            out[name] = np.array(view, flat.dtype.newbyteorder("="))
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, LookupError, TypeError) as exc:
        raise FerError(f"{path}: unreadable MTCNN weights ({exc})") from None
    except AttributeError as exc:  # a pickle of other values than a state dict of tensors
        raise FerError(f"{path}: unreadable MTCNN weights (not a state dict: {exc})") from None
    return out


def load_weights(folder: Path | None = None) -> dict[str, dict[str, np.ndarray]]:
    """``{"pnet": state dict, "rnet": …, "onet": …}`` of facenet-pytorch's bundled weights."""
    folder = folder or weights_folder()
    return {name: read_state_dict(folder / f"{name}.pt") for name in NET_NAMES}


# ---- layers -----------------------------------------------------------------------------------
def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, alpha=None, pool=None):
    """Valid, stride-1 convolution of (N, H, W, C) ``x`` with a torch-layout (O, C, kh, kw)
    ``weight``, then the bias, a PReLU given its ``alpha`` and a :func:`max_pool` given its
    ``(k, s)``: im2col by blocks of whole images (of output rows, for a large image), one GEMM per
    block, each block finished while it is in cache. A first layer (a few input channels: RGB)
    runs planar (:func:`_conv_planar`)."""
    n, h, w, c = x.shape
    if c <= PLANAR_CHANNELS:
        return _conv_planar(x, weight, bias, alpha, pool)
    o, _, kh, kw = weight.shape
    ho, wo = h - kh + 1, w - kw + 1
    mat = np.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(kh * kw * c, o))
    x = np.ascontiguousarray(x)
    sn, sh, sw, sc = x.strides
    rows = max(1, BLOCK_BYTES // (wo * kh * kw * c * 4))  # output rows per block

    # the bias and PReLU slopes repeated along an output row: elementwise passes over rows of
    # wo * o values run 3x faster than over rows of o (10 for the P-net's first layer)
    row_bias = np.tile(bias, wo)
    row_alpha = None if alpha is None else np.tile(alpha, wo)

    def finish(cols, target):
        np.matmul(cols.reshape(-1, kh * kw * c), mat, out=target.reshape(-1, o))
        rows = target.reshape(-1, wo * o)
        rows += row_bias
        if row_alpha is not None:
            prelu(rows, row_alpha)

    if rows < ho:  # a large image: blocks of output rows, pooled at the end
        out = np.empty((n, ho, wo, o), np.float32)
        for i in range(n):
            for y in range(0, ho, rows):
                k = min(rows, ho - y)
                cols = as_strided(x[i, y:], (k, wo, kh, kw * c), (sh, sw, sh, sc))
                finish(cols, out[i, y : y + k])
        return max_pool(out, *pool) if pool else out
    step = rows // ho
    block = np.empty((min(step, n), ho, wo, o), np.float32)
    out = None
    for s in range(0, n, step):
        part = x[s : s + step]
        done = block[: len(part)]
        finish(as_strided(part, (len(part), ho, wo, kh, kw * c), (sn, sh, sw, sh, sc)), done)
        done = max_pool(done, *pool) if pool else done
        if out is None:
            out = np.empty((n, *done.shape[1:]), np.float32)
        out[s : s + step] = done
    return out


def _conv_planar(x: np.ndarray, weight, bias, alpha, pool) -> np.ndarray:
    """:func:`conv` for a few input channels, in planar order inside: the unfolded block is
    (channel, tap, pixel), so each copy moves a row of pixels where channels-last moved one
    pixel's 9 values (the P-net's first layer took twice as long that way); the GEMM writes a row
    per output channel, the bias, PReLU and pooling run on those rows, and the pooled block goes
    back to channels last."""
    n, h, w, c = x.shape
    o, _, kh, kw = weight.shape
    ho, wo, taps = h - kh + 1, w - kw + 1, c * kh * kw
    mat = weight.reshape(o, taps)  # torch's (O, C, kh, kw) order is the block's row order
    sn, sh, sw, sc = x.strides
    step = min(n, max(1, BLOCK_BYTES // (taps * ho * wo * 4)))  # whole images per block
    unfolded = np.empty(taps * step * ho * wo, np.float32)
    result = np.empty(o * step * ho * wo, np.float32)
    out = None
    for s in range(0, n, step):
        part = x[s : s + step]
        m = len(part)
        cols = unfolded[: taps * m * ho * wo].reshape(c, kh, kw, m, ho, wo)
        cols[...] = as_strided(part, (c, kh, kw, m, ho, wo), (sc, sh, sw, sn, sh, sw))
        done = result[: o * m * ho * wo].reshape(o, m * ho * wo)
        np.matmul(mat, cols.reshape(taps, -1), out=done)
        done += bias[:, None]
        if alpha is not None:
            prelu(done.T, alpha)
        maps = done.reshape(o * m, ho, wo)
        maps = max_pool(maps, *pool) if pool else maps
        if out is None:
            out = np.empty((n, *maps.shape[1:], o), np.float32)
        out[s : s + m] = maps.reshape(o, m, *maps.shape[1:]).transpose(1, 2, 3, 0)
    return out


def max_pool(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """``nn.MaxPool2d(k, s, ceil_mode=True)`` over axes 1 and 2 of (N, H, W, …): the last window
    may overhang the input (its missing cells never win) but must start inside it. Separable:
    rows, then columns; an overhanging window takes the maximum of the cells it has."""
    h, w = x.shape[1:3]

    def size(length):
        out = -(-(length - k) // s) + 1
        return out - 1 if (out - 1) * s >= length else out

    ho, wo = size(h), size(w)
    rows = x[:, 0 : s * (ho - 1) + 1 : s].copy()
    for i in range(1, k):
        tap = x[:, i : i + s * (ho - 1) + 1 : s]  # the windows' i-th rows (the last may lack one)
        np.maximum(rows[:, : tap.shape[1]], tap, out=rows[:, : tap.shape[1]])
    out = rows[:, :, 0 : s * (wo - 1) + 1 : s].copy()
    for j in range(1, k):
        tap = rows[:, :, j : j + s * (wo - 1) + 1 : s]
        np.maximum(out[:, :, : tap.shape[2]], tap, out=out[:, :, : tap.shape[2]])
    return out


def prelu(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """PReLU over the last (channel) axis, in place, exactly torch's values (x where x > 0, else
    alpha * x), in two passes: max(x, alpha * x) picks the same value for any slope up to 1;
    min(x, alpha * x) for the channels whose slope is steeper (the P-net's first layer has
    one)."""
    scaled = x * alpha
    steep = np.flatnonzero(alpha > 1)
    if steep.size:
        low = np.minimum(x[..., steep], scaled[..., steep])
        x[..., steep] = scaled[..., steep] = low
    return np.maximum(x, scaled, out=x)


def dense(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``nn.Linear``: (N, in) @ weight.T + bias."""
    return x @ weight.T + bias


def face_probability(logits: np.ndarray) -> np.ndarray:
    """The softmax's second (face) class over the last axis of 2 logits."""
    other, face = logits[..., 0], logits[..., 1]
    top = np.maximum(other, face)  # the values of max, exp and sum over the axis, elementwise
    e_face = np.exp(face - top)
    return e_face / (np.exp(other - top) + e_face)


def flatten_as_torch(x: np.ndarray) -> np.ndarray:
    """(N, H, W, C) flattened in the order the reference nets use, ``permute(0, 3, 2, 1)`` of
    NCHW: width, height, channel."""
    return x.transpose(0, 2, 1, 3).reshape(len(x), -1)


# ---- the nets ---------------------------------------------------------------------------------
class NumpyNets:
    """The P-, R- and O-net on channels-last float32 batches: each returns (box offsets, face
    probability); the P-net's are maps, (N, h, w, 4) and (N, h, w)."""

    def __init__(self, weights: dict[str, dict[str, np.ndarray]] | None = None):
        weights = weights or load_weights()
        self.p, self.r, self.o = (weights[name] for name in NET_NAMES)

    def _block(self, w, x, conv_name, prelu_name, pool=None):
        return conv(x, w[f"{conv_name}.weight"], w[f"{conv_name}.bias"], w[prelu_name], pool)

    @staticmethod
    def _heads(w, x, hidden, hidden_prelu, head):
        """R-/O-net tail: flatten, a dense PReLU layer, then the offset (``head``_2) and face
        (``head``_1) layers."""
        x = prelu(
            dense(flatten_as_torch(x), w[f"{hidden}.weight"], w[f"{hidden}.bias"]),
            w[f"{hidden_prelu}.weight"],
        )
        reg = dense(x, w[f"{head}_2.weight"], w[f"{head}_2.bias"])
        return reg, face_probability(dense(x, w[f"{head}_1.weight"], w[f"{head}_1.bias"]))

    def pnet(self, x: np.ndarray):
        w = self.p
        x = self._block(w, x, "conv1", "prelu1.weight", (2, 2))
        x = self._block(w, x, "conv2", "prelu2.weight")
        x = self._block(w, x, "conv3", "prelu3.weight")
        reg = conv(x, w["conv4_2.weight"], w["conv4_2.bias"])
        return reg, face_probability(conv(x, w["conv4_1.weight"], w["conv4_1.bias"]))

    def rnet(self, x: np.ndarray):
        w = self.r
        x = self._block(w, x, "conv1", "prelu1.weight", (3, 2))
        x = self._block(w, x, "conv2", "prelu2.weight", (3, 2))
        x = self._block(w, x, "conv3", "prelu3.weight")
        return self._heads(w, x, "dense4", "prelu4", "dense5")

    def onet(self, x: np.ndarray):
        w = self.o
        x = self._block(w, x, "conv1", "prelu1.weight", (3, 2))
        x = self._block(w, x, "conv2", "prelu2.weight", (3, 2))
        x = self._block(w, x, "conv3", "prelu3.weight", (2, 2))
        x = self._block(w, x, "conv4", "prelu4.weight")
        return self._heads(w, x, "dense5", "prelu5", "dense6")
