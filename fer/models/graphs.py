"""A checkpoint as an ONNX graph under onnxruntime: the CPU backend ``fer predict`` picks for
batches where the ``export`` extra is installed (:func:`choose`).

Why, measured on 2 cores of an AMD EPYC with AVX-512 (``benchmarks/bench_predict.py``, one
preprocessing worker beside): at the reference's 224 / 90 px and batch 32, ``fer predict`` scores
8.6 faces/s with onnxruntime's CPU provider against 6.6 with torch's eager fp32 forward pass
(the networks alone, no worker: 1.3x), 29 against 28 at the demo's 48 / 24 px; at batch 1 eager
mode was faster (5.7 against 4.3), hence ``auto``'s batch threshold. The logits agree within
:data:`fer.models.exporter.TOLERANCE`. Not chosen: torch's channels_last (slower at small sizes
and at batch 1), bf16 (not exact: its logits differ in the second decimal), ``torch.compile``
(its compilation is paid in every process).

A checkpoint's graph is exported once, checked against eager mode on random inputs, and kept in
the cache (:func:`cache_dir`) as ``graphs/<sha256 of the checkpoint file>-<tta>.onnx``: a
retrained checkpoint gets a graph of its own, and an unchanged one is never exported again. The
graph takes what ``forward()`` takes (normalised float32 ``N×3×S×S`` inputs at the checkpoint's
sizes) and returns the main logits under the checkpoint's test-time views
(:func:`fer.models.tta.logits`), so only the network itself changes hands.

Beside each graph, ``graphs/<sha256>.meta.json`` holds the checkpoint's metadata. Together they
let ``fer predict`` score a checkpoint it has seen before without torch: nothing here imports it
(:mod:`fer.models.exporter`, which exports, does), the inputs are prepared in NumPy
(:func:`fer.models.transforms.eval_array`) and the checkpoint's weights are read only where
something asks for them (:class:`fer.models.inference.Checkpoint`). That saves the two seconds
that importing torch and torchvision takes on 2 cores.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np

from fer.atomic import write_json
from fer.contracts import BACKENDS
from fer.errors import FerError
from fer.paths import CACHE_ENV, cache_dir
from fer.provenance import file_digest, usable_cores

AUTO_BATCH = 16  # ``auto`` picks onnx for batches of this many frames or more
NEEDS = ("onnx", "onnxscript", "onnxruntime")
_SESSIONS: dict[tuple[str, str], object] = {}  # this process's sessions by (graph, threads)


def available() -> bool:
    """Whether the ``export`` extra (onnx, onnxscript, onnxruntime) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in NEEDS)


def choose(backend: str, device, batch_size: int = AUTO_BATCH) -> str:
    """``eager`` or ``onnx``: ``auto`` is onnx on the CPU for batches of at least
    :data:`AUTO_BATCH` frames where the extra is installed (at batch 1 eager mode was faster).
    ``device``: a torch device or its name."""
    if backend not in BACKENDS:
        raise FerError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    cpu = str(device).split(":")[0] == "cpu"
    if backend == "auto":
        return "onnx" if cpu and batch_size >= AUTO_BATCH and available() else "eager"
    if backend == "onnx":
        if not cpu:
            raise FerError(f"backend onnx runs on the CPU, not on {device}: use eager")
        if not available():
            raise FerError("backend onnx needs: pip install 'fer-roi-fusion[export]'")
    return backend


def graph_path(ck) -> Path:
    """Where ``ck``'s graph is cached (:func:`cache_dir`)."""
    return cache_dir() / "graphs" / f"{file_digest(ck.path)}-{ck.tta}.onnx"


def meta_path(checkpoint: Path) -> Path:
    """Where the metadata of the checkpoint file ``checkpoint`` is cached beside its graph."""
    return cache_dir() / "graphs" / f"{file_digest(checkpoint)}.meta.json"


def cached_meta(checkpoint: Path) -> dict | None:
    """The metadata of the checkpoint file ``checkpoint`` where the cache holds it and its graph
    (the file's sha256 finds them), else None: then only the checkpoint can tell."""
    path = meta_path(checkpoint)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or "model" not in meta or "classes" not in meta:
        return None
    tta = str(meta.get("tta", "none"))
    graph = path.with_name(path.name.replace(".meta.json", f"-{tta}.onnx"))
    return meta if graph.is_file() else None


def default_threads() -> int:
    """The networks' threads where none are given: torch's count where torch is loaded, else
    the cores this process may use (``OMP_NUM_THREADS`` where set), as torch would choose.
    Not onnxruntime's own default: with it the preprocessing workers beside the networks ran
    about a third slower on 2 cores, and the whole no faster (bench_predict.py)."""
    if "torch" in sys.modules:
        return sys.modules["torch"].get_num_threads()
    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    return usable_cores()


def session(ck, threads: int | None = None):
    """An onnxruntime session of ``ck``'s graph, exported into the cache first where it is
    not there yet (one line on stderr says so: it takes seconds; that needs torch, loaded then).
    ``threads``: onnxruntime's intra-op threads (None: :func:`default_threads`)."""
    import onnxruntime as ort

    path = graph_path(ck)
    key = (str(path), str(threads))
    if key in _SESSIONS:
        return _SESSIONS[key]
    if not path.is_file():
        from fer.models.exporter import export_checkpoint

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FerError(
                f"{path.parent}: cannot create the graph cache ({exc}); set {CACHE_ENV}"
            ) from None
        export_checkpoint(ck, path)
    if not meta_path(ck.path).is_file():  # what a later run reads instead of the checkpoint
        write_json(meta_path(ck.path), ck.meta, indent=1, allow_nan=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.log_severity_level = 3  # errors only
    # no busy-waiting between calls: the cores go to the preprocessing workers meanwhile
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        made = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own error types: a damaged cache entry
        raise FerError(f"{path}: not a graph onnxruntime can run ({exc}); delete it") from None
    _SESSIONS[key] = made
    return made


def run(sess, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The graph's logits (float32) on ``inputs`` (float32 NCHW arrays, normalised)."""
    feed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
    return sess.run(None, feed)[0]
