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

from fer.atomic import StagedFile, write_json
from fer.contracts import BACKENDS
from fer.errors import FerError
from fer.paths import CACHE_ENV, cache_dir
from fer.provenance import file_digest, usable_cores

AUTO_BATCH = 16  # ``auto`` picks onnx for batches of this many frames or more
CALL_BYTES = 128 << 20  # the largest intermediate tensor one onnxruntime call may compute
ROW_BYTES = "fer.row_bytes"  # graph metadata: its largest intermediate tensor for one image
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
    made = _open(path, threads)
    if ROW_BYTES not in made.get_modelmeta().custom_metadata_map:  # new, or from an older fer
        try:
            mark_row_bytes(path)
            made = _open(path, threads)
        except FerError:  # a read-only cache: this graph runs whole batches, as it did
            pass
        except Exception as exc:  # the graph runs; only its measure failed: as it did, and said
            print(f"{path}: not measured ({exc}); it scores whole batches", file=sys.stderr)
    _SESSIONS[key] = made
    return made


def _open(path: Path, threads: int | None):
    """An onnxruntime session of the graph file ``path`` on ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.log_severity_level = 3  # errors only
    # no busy-waiting between calls: the cores go to the preprocessing workers meanwhile
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own error types: a damaged cache entry
        raise FerError(f"{path}: not a graph onnxruntime can run ({exc}); delete it") from None


def row_bytes(model) -> int:
    """The bytes of the largest tensor the ONNX ``model`` (an ``onnx.ModelProto``, left as it
    is) computes for one image: a copy runs once on a batch of zeros, every intermediate made an
    output. For the Global-ROI Net at 224 / 90 px that is the attention scores after layer2
    (3 crops × 8 heads × 529² tokens in float32: 27 MB); for the Global Net, its first feature
    map (3.2 MB)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    named = {o.name for o in probe.graph.output}
    for node in probe.graph.node:
        for name in node.output:
            if name and name not in named:
                probe.graph.output.append(onnx.ValueInfoProto(name=name))
                named.add(name)
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {
        i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
        for i in sess.get_inputs()
    }
    return max(a.nbytes for a in sess.run(None, feed))


def mark_row_bytes(path: Path) -> None:
    """Record :func:`row_bytes` in the graph file's metadata (:data:`ROW_BYTES`), atomically."""
    import onnx

    model = onnx.load(str(path))
    size = row_bytes(model)
    kept = [p for p in model.metadata_props if p.key != ROW_BYTES]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=ROW_BYTES, value=str(size))
    with StagedFile(path) as staged:
        onnx.save(model, str(staged.tmp))


def rows_per_call(sess) -> int | None:
    """Images per onnxruntime call for the session ``sess``: as many as keep the graph's
    largest intermediate within :data:`CALL_BYTES`, at least 2 (a call of one image rounds
    differently, by about 1e-7); None where the graph does not record :data:`ROW_BYTES`.

    Why: onnxruntime holds every intermediate of a call, and its memory arena keeps the peak
    for the session's life. At 224 / 90 px and batch 32, ``fer predict`` on 64 pictures peaked
    at 4.46 GB resident with the Global-ROI Net's batch in one call and at 1.06 GB in calls of
    4, with a byte-identical table; that graph alone scored 14.3 and 15.3 images/s (2 cores of
    an AMD EPYC), and ``fer predict``'s batched rate beside a busy worker rose 1.13-1.35x
    (``benchmarks/bench_predict.py``). The Global Net's 32 images stay one call. At the demo's
    48 / 24 px a call takes the whole batch: smaller calls there were up to 1.5x slower."""
    given = sess.get_modelmeta().custom_metadata_map.get(ROW_BYTES, "")
    if not given.isdigit() or int(given) < 1:
        return None
    return max(2, CALL_BYTES // int(given))


def run(sess, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The graph's logits (float32) on ``inputs`` (float32 NCHW arrays, normalised), in calls
    of near-equal size: at most :func:`rows_per_call` images each, or a few more where that
    would leave one image alone."""
    feed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
    n = len(next(iter(feed.values())))
    rows = rows_per_call(sess) or n
    if n <= rows:
        return sess.run(None, feed)[0]
    calls = max(1, min(-(-n // rows), n // 2))  # no call of one image
    bounds = np.linspace(0, n, calls + 1).round().astype(int)
    parts = zip(bounds[:-1], bounds[1:], strict=True)
    out = [sess.run(None, {k: v[a:b] for k, v in feed.items()})[0] for a, b in parts]
    return np.concatenate(out)
