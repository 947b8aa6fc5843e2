"""A checkpoint as an ONNX graph under onnxruntime: the CPU backend ``fer predict`` picks for
batches where the ``export`` extra is installed (:func:`choose`).

Why, measured on 2 cores of an AMD EPYC with AVX-512 (``benchmarks/bench_predict.py``, one
preprocessing worker beside): at the reference's 224 / 90 px and batch 32, ``fer predict`` scores
8.6 faces/s with onnxruntime's CPU provider against 6.6 with torch's eager fp32 forward pass
(the networks alone, no worker: 1.3x), 29 against 28 at the demo's 48 / 24 px; at batch 1 eager
mode was faster (5.7 against 4.3), hence ``auto``'s batch threshold. The logits agree within
:data:`TOLERANCE`. Not chosen: torch's channels_last (slower at small sizes and at batch 1),
bf16 (not exact: its logits differ in the second decimal), ``torch.compile`` (its compilation
is paid in every process).

A checkpoint's graph is exported once, checked against eager mode on random inputs, and kept in
the cache (:func:`cache_dir`) as ``graphs/<sha256 of the checkpoint file>-<tta>.onnx``: a
retrained checkpoint gets a graph of its own, and an unchanged one is never exported again. The
graph takes what ``forward()`` takes (normalised float32 ``N×3×S×S`` inputs at the checkpoint's
sizes) and returns the main logits under the checkpoint's test-time views
(:func:`fer.models.tta.logits`), so only the network itself changes hands.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from fer.atomic import StagedFile
from fer.contracts import BACKENDS, ROI_NAMES
from fer.errors import FerError
from fer.models.tta import logits

TOLERANCE = 1e-4  # the largest |logit| difference from eager mode a graph may show
CACHE_ENV = "FER_CACHE"
AUTO_BATCH = 16  # ``auto`` picks onnx for batches of this many frames or more
NEEDS = ("onnx", "onnxscript", "onnxruntime")
_SESSIONS: dict[tuple[str, str], object] = {}  # this process's sessions by (graph, threads)
_DIGESTS: dict[tuple, str] = {}  # checkpoint sha256 by (path, size, mtime): read once


def cache_dir() -> Path:
    """Where fer keeps what it derives once: ``$FER_CACHE``, else ``$XDG_CACHE_HOME/fer``, else
    ``~/.cache/fer``."""
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "fer"


def available() -> bool:
    """Whether the ``export`` extra (onnx, onnxscript, onnxruntime) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in NEEDS)


def choose(backend: str, device, batch_size: int = AUTO_BATCH) -> str:
    """``eager`` or ``onnx``: ``auto`` is onnx on the CPU for batches of at least
    :data:`AUTO_BATCH` frames where the extra is installed (at batch 1 eager mode was faster)."""
    if backend not in BACKENDS:
        raise FerError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "auto":
        cpu = torch.device(device).type == "cpu"
        return "onnx" if cpu and batch_size >= AUTO_BATCH and available() else "eager"
    if backend == "onnx":
        if torch.device(device).type != "cpu":
            raise FerError(f"backend onnx runs on the CPU, not on {device}: use eager")
        if not available():
            raise FerError("backend onnx needs: pip install 'fer-roi-fusion[export]'")
    return backend


class Network(nn.Module):
    """One checkpoint's network as the graph runs it: its inputs → main logits under ``tta``."""

    def __init__(self, model: nn.Module, names: tuple[str, ...], tta: str):
        super().__init__()
        self.model, self.names, self.tta = model, names, tta
        self.eval()  # the graph is traced in eval mode: batch-norm's running statistics

    def forward(self, face, eye=None, nose=None, mouth=None):
        given = dict(zip(("face", *ROI_NAMES), (face, eye, nose, mouth), strict=True))
        return logits(self.model, {k: given[k] for k in self.names}, self.tta)


def input_names(ck) -> tuple[str, ...]:
    """``forward()``'s arguments: the face, and for a Global-ROI Net the three ROI crops."""
    return ("face", *ROI_NAMES) if ck.kind == "roi" else ("face",)


def example_inputs(ck, batch: int, seed: int) -> dict[str, torch.Tensor]:
    """Random normalised-range inputs at ``ck``'s sizes."""
    gen = torch.Generator().manual_seed(seed)
    sizes = ck.sizes
    return {k: torch.randn(batch, 3, sizes[k], sizes[k], generator=gen) for k in input_names(ck)}


def export_onnx(module: nn.Module, inputs: dict, names: list[str], path: Path) -> None:
    """Write ``module`` (called with ``inputs`` as keywords) as an ONNX graph with a dynamic
    batch axis to ``path``; ``names``: its outputs."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise FerError("ONNX export needs: pip install 'fer-roi-fusion[export]'") from None
    batch = torch.export.Dim("batch", min=1, max=4096)
    shapes = {k: {0: batch} for k in inputs}
    with torch.no_grad(), warnings.catch_warnings():
        # every input's batch axis is the one Dim "batch"; torch notes that it keeps one name
        warnings.filterwarnings("ignore", "# The axis name: batch will not be used", UserWarning)
        program = torch.onnx.export(
            module,
            (),
            kwargs=inputs,
            input_names=list(inputs),
            output_names=names,
            dynamic_shapes=shapes,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    program.save(str(path))


def graph_path(ck) -> Path:
    """Where ``ck``'s graph is cached (:func:`cache_dir`)."""
    return cache_dir() / "graphs" / f"{_digest(ck.path)}-{ck.tta}.onnx"


def _digest(path: Path) -> str:
    """The sha256 of a checkpoint file, read once per process while its size and mtime hold."""
    from fer.provenance import sha256_file

    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


def session(ck, threads: int | None = None):
    """An onnxruntime session of ``ck``'s graph, exported into the cache first where it is
    not there yet (one line on stderr says so: it takes seconds)."""
    import onnxruntime as ort

    threads = threads or torch.get_num_threads()
    path = graph_path(ck)
    key = (str(path), str(threads))
    if key in _SESSIONS:
        return _SESSIONS[key]
    if not path.is_file():
        _export(ck, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only
    # no busy-waiting between calls: the cores go to the preprocessing workers meanwhile
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        made = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own error types: a damaged cache entry
        raise FerError(f"{path}: not a graph onnxruntime can run ({exc}); delete it") from None
    _SESSIONS[key] = made
    return made


def _export(ck, path: Path) -> None:
    print(f"{ck.path}: exporting its graph for onnxruntime once, into {path}", file=sys.stderr)
    module = Network(ck.model.cpu(), input_names(ck), ck.tta)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FerError(
            f"{path.parent}: cannot create the graph cache ({exc}); set {CACHE_ENV}"
        ) from None
    with StagedFile(path) as staged:
        _export_graph(module, example_inputs(ck, 2, 0), staged.tmp)
        diff = parity(module, staged.tmp, example_inputs(ck, 3, 1))
        if diff > TOLERANCE:
            raise FerError(f"{ck.path}: its ONNX graph differs from eager mode by {diff:.2e}")


def _export_graph(module: nn.Module, inputs: dict, path: Path) -> None:
    """torch's TorchScript-based exporter where it still works (a few seconds; torch deprecates
    it), else :func:`export_onnx` (torch.export's: ten times as long). The parity check after
    either is what vouches for the graph."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module,
                (),
                str(path),
                kwargs=inputs,
                input_names=list(inputs),
                output_names=["logits"],
                dynamic_axes={k: {0: "batch"} for k in inputs},
                dynamo=False,
            )
        return
    except Exception:  # a torch without it, or a model it cannot trace: the other exporter
        pass
    export_onnx(module, inputs, ["logits"], path)


def parity(module: nn.Module, path: Path, inputs: dict) -> float:
    """Largest |logit| difference between ``module`` (eager) and the ONNX file on ``inputs``."""
    import onnxruntime as ort

    with torch.no_grad():
        eager = module(**inputs)
    eager = eager if isinstance(eager, tuple) else (eager,)
    graph = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = graph.run(None, {k: v.numpy() for k, v in inputs.items()})
    return float(max(abs(a.numpy() - b).max() for a, b in zip(eager, got, strict=True)))


def run(sess, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The graph's logits on ``inputs`` (float32 CPU tensors, NCHW)."""
    feed = {k: v.contiguous().numpy() for k, v in inputs.items()}
    return torch.from_numpy(sess.run(None, feed)[0])
