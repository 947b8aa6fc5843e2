"""The predictor: frames → faces (``fer prepare``'s :class:`~fer.preprocess.pipeline.Processor`)
→ logits (the inference core ``fer infer`` runs too, :mod:`fer.models.inference`) → one row per
face.

Frames are taken in batches of ``batch_size`` (images and video frames alike); each batch is
detected, aligned and cropped (in worker processes, ahead of the networks, with ``workers``:
:mod:`fer.predict.pool`), and all its faces go through each model in one forward pass: on the
GPU when there is one, else (``backend``) by onnxruntime (:mod:`fer.models.graphs`) or by torch.
At most ``workers + 2`` batches are in memory at a time, whatever the length of the input.

Rows (:func:`columns`): ``file``, ``frame``, ``time_s``, ``face`` (0 = the largest, most central),
the detector box ``x1 y1 x2 y2`` and its ``score`` (NaN for detectors without one), ``n_faces``,
``status`` and ``reason``, ``model_data`` (``real``, or ``synthetic`` for models trained on the
demo's drawn faces, whose labels of real faces mean nothing: :meth:`ModelSet.model_data`), then
per arch (``global``, ``roi``, ``fused``, those the models give)
the predicted ``{arch}_label`` and a probability per class, ``{arch}_p_{class}``. Statuses:

* ``ok``: a face with its three ROIs; every arch is predicted;
* ``no_roi``: a face whose landmarks or ROI boxes failed (``reason`` says which): ``global`` on the
  chip, ``roi`` empty, ``fused`` = ``global``, as evaluation scores such images;
* ``no_face``: no face found: ``global`` (and ``fused``) on the whole frame resized, as evaluation
  scores such images; filter on ``status`` to drop them;
* ``unreadable``: not decoded (``reason`` says why): no prediction;
* ``rejected``: decoded but refused by the picture rules (docs/safety.md: too small, too
  elongated, constant; ``reason`` says which): no prediction.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer.contracts import ROI_NAMES
from fer.errors import FerError, FerWarning
from fer.fusion import Fusion
from fer.predict.models import ModelSet, load_models
from fer.predict.sources import Frame, Sampling, frames

if TYPE_CHECKING:  # imported where a table is made: fer predict's CSV path never needs it
    import pandas as pd

STATUS = {"ok": "ok", "no_face": "no_face", "landmarks_failed": "no_roi", "roi_empty": "no_roi"}
STATUSES = ("ok", "no_roi", "no_face", "unreadable", "rejected")  # a row's, in this order
FACE_COLUMNS = ("file", "frame", "time_s", "face", "x1", "y1", "x2", "y2", "score", "n_faces")
# then per arch: label and probabilities
FIXED_COLUMNS = (*FACE_COLUMNS, "status", "reason", "model_data")


def columns(archs: Iterable[str], classes: list[str]) -> list[str]:
    """The table's columns for the ``archs`` predicted and the model ``classes``."""
    out = list(FIXED_COLUMNS)
    for arch in archs:
        out += [f"{arch}_label", *(f"{arch}_p_{c}" for c in classes)]
    return out


def _heap_trimmer() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or None off glibc.

    MTCNN on frames that differ allocates tensors of changing shapes; glibc keeps the freed pieces
    and a process grew ~60 % over 2,000 video frames, by fragmentation, not by a leak. Giving the
    free memory back after each batch keeps the peak flat (measured in bench_predict.py)."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _heap_trimmer()


def _listed(inputs) -> Iterable:
    """One input (a path, a picture) as a list of one; a list or other iterable as it is."""
    if isinstance(inputs, str | Path) or not isinstance(inputs, Iterable):
        return [inputs]
    if isinstance(inputs, np.ndarray) and inputs.ndim in (2, 3):
        return [inputs]
    return inputs


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits, in float64."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Timing:
    """Where a prediction's time went: decoding, preprocessing (detect, align, crop), the models."""

    frames: int = 0
    faces: int = 0
    decode_s: float = 0.0
    preprocess_s: float = 0.0
    inference_s: float = 0.0


@dataclass
class Result:
    """One processed frame: the frame, its faces (Processor Face) and their rows."""

    frame: Frame
    faces: list
    rows: list[dict]


class Predictor:
    """Predict facial expressions on pictures with a trained pair of models (or one model).

    >>> predictor = Predictor.from_dir("models/rafdb")          # doctest: +SKIP
    >>> table = predictor.predict(["photo.jpg", "clips/", pil_image, numpy_array])  # +SKIP

    ``device``: ``auto`` (cuda when visible), ``cpu``, ``cuda``…; ``batch_size``: frames per
    batch; ``all_faces``: a row per face found rather than the largest only; ``detector``:
    replaces the recorded one (e.g. for models trained on publisher boxes); ``sampling``: video
    frames read (:class:`~fer.predict.sources.Sampling`); ``progress``: a bar on stderr (None:
    on a terminal only); ``workers``: processes that detect, align and crop the next batches
    while the networks score this one (:mod:`fer.predict.pool`; 0: here, ``auto``: as
    ``fer predict``; close them with :meth:`close` or a ``with`` block); ``backend``: ``eager``
    (torch), ``onnx`` (onnxruntime: :mod:`fer.models.graphs`, same logits within 1e-4) or
    ``auto`` (onnx on the CPU for batches of 16 frames or more where the ``export`` extra is
    installed, else eager); ``threads``: the networks' threads (None: torch's or onnxruntime's
    default). With onnx on a CPU and graphs already cached, torch is never loaded.
    """

    def __init__(
        self,
        models: ModelSet,
        *,
        device: str = "auto",
        batch_size: int = 32,
        all_faces: bool = False,
        detector: str | None = None,
        sampling: Sampling | None = None,
        progress: bool | None = None,
        workers: int | str = 0,
        backend: str = "auto",
        threads: int | None = None,
    ):
        from fer.models import graphs
        from fer.models.inference import Inference
        from fer.predict.pool import auto_workers, face_finder
        from fer.preprocess.pipeline import Settings
        from fer.provenance import cpu_only, resolve_device

        if batch_size < 1:
            raise FerError(f"batch size {batch_size}: expected >= 1")
        if (warning := models.data_warning()) is not None:
            warnings.warn(warning, FerWarning, stacklevel=2)
        self.models, self.all_faces, self.progress = models, all_faces, progress
        pre = models.preprocess
        self.detector = detector or pre["detector"]
        if self.detector == "given":
            raise FerError(
                "these models were trained on the publisher's face boxes (detector 'given'), "
                "which new pictures do not have: choose a detector (--detector mtcnn)"
            )
        self.sampling = sampling or Sampling(max_pixels=int(pre.get("max_pixels", 100_000_000)))
        # "cpu" or "cuda:0"…: a name, so that the CPU is known without importing torch
        self.device = "cpu" if cpu_only(device) else str(resolve_device(device))
        self.batch_size = batch_size
        self.settings = Settings(
            root="",
            detector=self.detector,
            chip_size=int(pre["chip_size"]),
            crop_size=int(pre["crop_size"]),
            padding=float(pre["padding"]),
            device=self.device,
            max_pixels=self.sampling.max_pixels,
            # as its training data (models prepared before min_face was recorded used 20 px)
            min_face=pre.get("min_face", 20) if self.detector == pre["detector"] else "auto",
            blas_threads=0,  # one process: the models want every thread
        )
        if workers == "auto":
            workers = auto_workers(self.settings)
        if not isinstance(workers, int) or workers < 0:
            raise FerError(f"workers {workers!r}: expected 'auto' or a whole number >= 0")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise FerError(f"threads {threads!r}: expected a whole number >= 1")
        self.backend = graphs.choose(backend, self.device, batch_size)
        if threads and self.backend == "eager":
            import torch

            torch.set_num_threads(threads)
        self.finder = face_finder(self.settings, workers, all_faces)  # they start loading now
        if self.backend == "onnx":  # exported (once, cached) and loaded now, not mid-table
            try:
                for ck in models.checkpoints.values():
                    graphs.session(ck, threads)
            except BaseException:
                self.finder.close()
                raise
        # every face of a batch in one forward pass (up to 256), no per-call bar or line
        self.run = Inference(self.device, 256, False, False, self.backend, threads)
        self.archs = [*models.checkpoints, *(["fused"] if len(models.checkpoints) == 2 else [])]
        self.classes = models.classes
        self.columns = columns(self.archs, self.classes)
        self.timing = Timing()

    @classmethod
    def from_dir(
        cls,
        folder: str | Path,
        *,
        fold: int | None = None,
        fusion: Fusion | None = None,
        **options,
    ) -> Predictor:
        """The predictor of a models folder (``models/<dataset>/``: global.pt, roi.pt and
        fusion.json; ``fold`` picks ``*.fold<k>.pt``); ``fusion`` (a :class:`fer.fusion.Fusion`)
        replaces fusion.json's weights; ``options`` as for :class:`Predictor`."""
        return cls(load_models(Path(folder), fold=fold, fusion=fusion), **options)

    def predict(self, inputs) -> pd.DataFrame:
        """One row per face of every input (a path, folder, PIL image or array, or a list of
        them); see the module docstring for the columns."""
        import pandas as pd

        rows = [row for result in self.results(_listed(inputs)) for row in result.rows]
        return pd.DataFrame(rows, columns=self.columns)

    def crops(self, inputs) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """What the graph of ``fer export`` takes, for every face of ``inputs`` that has its
        three ROIs (status ``ok``): their rows (as :meth:`predict` gives them) and
        ``{"face", "eye", "nose", "mouth"}`` (``face`` alone for a Global Net alone): float32
        N×3×S×S RGB in [0, 1] at the checkpoints' input sizes, resized exactly as the models
        here see them (normalisation is inside the graph). ``session.run(None, crops)`` of the
        exported ONNX file then gives these rows' logits."""
        import pandas as pd

        from fer.models.transforms import float_array

        kept = [
            (row, face)
            for result in self.results(_listed(inputs))
            for row, face in zip(result.rows, result.faces, strict=False)
            if face.rois is not None
        ]
        meta = next(iter(self.models.checkpoints.values())).meta
        sides = {"face": int(meta["face_size"]), **dict.fromkeys(ROI_NAMES, int(meta["roi_size"]))}
        names = ["face", *(ROI_NAMES if self.models.roi_ck is not None else ())]

        def batch(name: str) -> np.ndarray:
            k = ROI_NAMES.index(name) if name in ROI_NAMES else None
            arrays = [face.chip if k is None else face.rois[k] for _, face in kept]
            if not arrays:
                return np.zeros((0, 3, sides[name], sides[name]), np.float32)
            return float_array(np.stack(arrays), sides[name])

        rows = pd.DataFrame([row for row, _ in kept], columns=self.columns)
        return rows, {name: batch(name) for name in names}

    def results(self, inputs: Iterable, on_frame: Callable | None = None) -> Iterator[Result]:
        """A :class:`Result` per frame of ``inputs``, in input order, batch by batch."""
        from tqdm import tqdm

        quiet = None if self.progress is None else not self.progress
        bar = tqdm(desc="predict", unit="frame", disable=quiet, file=sys.stderr, leave=False)
        with bar:
            for batch, per_frame, seconds in self.finder.map(self._batches(inputs)):
                results = self._batch(batch, per_frame, seconds)
                del batch, per_frame
                if _TRIM is not None:
                    _TRIM(0)
                for result in results:
                    bar.update(1)
                    yield result

    def _batches(self, inputs: Iterable) -> Iterator[list[Frame]]:
        """The frames of ``inputs``, ``batch_size`` at a time (decoding timed)."""
        stream = iter(frames(inputs, self.sampling))
        while True:
            start = time.perf_counter()
            batch = [f for _, f in zip(range(self.batch_size), stream, strict=False)]
            self.timing.decode_s += time.perf_counter() - start
            if not batch:
                return
            yield batch

    def close(self) -> None:
        """Stop the preprocessing workers (:mod:`fer.predict.pool`), if any."""
        self.finder.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _batch(self, batch: list[Frame], per_frame: list[list], seconds: float) -> list[Result]:
        flat = [(i, face) for i, faces in enumerate(per_frame) for face in faces]
        start = time.perf_counter()
        probs = self._infer(batch, flat)
        t = self.timing
        t.preprocess_s += seconds
        t.inference_s += time.perf_counter() - start
        t.frames, t.faces = t.frames + len(batch), t.faces + len(flat)
        out = [Result(f, faces, []) for f, faces in zip(batch, per_frame, strict=True)]
        for n, (i, face) in enumerate(flat):
            row = self._face_row(batch[i], face, len(out[i].rows))
            for arch, p in probs.items():
                self._fill(row, arch, p[n])
            out[i].rows.append(row)
        for result in out:
            if result.frame.image is None:
                frame = result.frame
                result.rows.append(self._empty_row(frame, frame.status, frame.reason))
        return out

    def _infer(self, batch: list[Frame], flat: list) -> dict[str, np.ndarray]:
        """Probabilities per arch for every face of the batch (NaN rows where an arch has none)."""
        from fer.models.inference import global_logits, roi_logits
        from fer.preprocess.pipeline import resize_frame

        n = len(flat)
        if n == 0:
            return {}
        rows = np.arange(n)
        has_roi = np.array([face.rois is not None for _, face in flat], dtype=bool)
        chips = np.stack([face.chip for _, face in flat])

        def view(name: str) -> np.ndarray:  # the Global Net's views of the faces
            if name == "aligned":
                return chips
            size = self.settings.chip_size  # as evaluation: the whole frame, stored size
            return np.stack([resize_frame(batch[i].image, size) for i, _ in flat])

        out, z = {}, {}
        g, r = self.models.global_ck, self.models.roi_ck
        if g is not None:
            z = global_logits(g, view, rows, self.run)
            out["global"] = softmax(z[g.global_input])
        if r is not None:
            arrays = {"face": chips}
            empty = np.zeros((self.settings.crop_size,) * 2 + (3,), np.uint8)  # no ROIs: unread
            for k, name in enumerate(ROI_NAMES):
                arrays[name] = np.stack([empty if f.rois is None else f.rois[k] for _, f in flat])
            z_roi = roi_logits(r, arrays, rows, has_roi, self.run)
            out["roi"] = softmax(np.nan_to_num(z_roi, nan=0.0))
            out["roi"][~has_roi] = np.nan
            if g is not None:
                fused = self.models.fusion.apply(z_roi, z["aligned"], has_roi)
                out["fused"] = softmax(fused)
        return out

    def _face_row(self, frame: Frame, face, index: int) -> dict:
        status = STATUS[face.status]
        reason = face.status if status == "no_roi" else ""
        row = self._empty_row(frame, status, reason)
        box = face.box if face.box is not None else (math.nan,) * 4
        row.update(face=index, score=face.score, n_faces=face.n_faces)
        row.update(dict(zip(("x1", "y1", "x2", "y2"), map(float, box), strict=True)))
        return row

    def _empty_row(self, frame: Frame, status: str, reason: str) -> dict:
        row = dict.fromkeys(self.columns, math.nan)
        row.update(file=frame.source, frame=frame.frame, time_s=frame.time, face=0, n_faces=0)
        row.update(status=status, reason=reason, model_data=self.models.model_data)
        for arch in self.archs:
            row[f"{arch}_label"] = ""
        return row

    def _fill(self, row: dict, arch: str, p: np.ndarray) -> None:
        if np.isnan(p).any():
            return
        row[f"{arch}_label"] = self.classes[int(np.argmax(p))]
        for name, value in zip(self.classes, p, strict=True):
            row[f"{arch}_p_{name}"] = float(value)
