"""The inference core both consumers share: ``fer infer`` (a prepared target, :mod:`fer.evaluate`)
and ``fer predict`` (new pictures, :mod:`fer.predict`).

* :func:`load_checkpoints` reads checkpoints (``load_checkpoint``: ``weights_only``, meta checked)
  into :class:`Checkpoint`\\ s, each checked to be the model expected; with ``lazy``, a
  checkpoint whose graph is cached gets its metadata from the cache and its weights only when
  something asks for them (:mod:`fer.models.graphs`: no torch where the graphs do the work);
* :func:`model_logits` runs one model over rows of uint8 arrays in batches, through the
  checkpoint's own input contract (its input sides and normalisation:
  :func:`fer.models.transforms.eval_transform`);
* :func:`global_logits` and :func:`roi_logits` are the reference's rules for the two networks: the
  Global Net scored on its ``global_input`` view while the fusion always takes it on the aligned
  chip (reference §5.1); the Global-ROI Net only on faces with all three ROI crops (NaN rows
  elsewhere).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer.contracts import ROI_NAMES
from fer.errors import FerError
from fer.models.transforms import Normalisation

VIEWS = ("aligned", "original")  # what the Global Net may see: the aligned chip, the whole frame


class Checkpoint:
    """One model with its metadata and where it came from. ``model`` (a torch ``nn.Module``) is
    read from ``path`` on first use where it was not given (:func:`load_checkpoints` ``lazy``)."""

    def __init__(self, path: Path, model, meta: dict):
        self.path, self._model, self.meta = Path(path), model, meta

    def __repr__(self) -> str:
        state = "loaded" if self._model is not None else "not loaded"
        return f"Checkpoint({str(self.path)!r}, {self.kind}, weights {state})"

    @property
    def model(self):
        """The network, its weights read from :attr:`path` on first use where needed."""
        if self._model is None:
            from fer.models import load_checkpoint

            self._model = load_checkpoint(self.path)[0]
        return self._model

    @property
    def kind(self) -> str:
        """``global`` or ``roi``."""
        return str(self.meta.get("model"))

    @property
    def fold(self) -> int | None:
        fold = self.meta.get("fold")
        return None if fold is None or int(fold) < 0 else int(fold)

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def sizes(self) -> dict[str, int]:
        """The input side of each ``forward()`` argument: ``face`` and the three ROIs."""
        roi = int(self.meta["roi_size"])
        return {"face": int(self.meta["face_size"])} | dict.fromkeys(ROI_NAMES, roi)

    @property
    def normalisation(self) -> Normalisation:
        return Normalisation.from_meta(self.meta)

    @property
    def tta(self) -> str:
        """The test-time views its logits are taken on (:mod:`fer.models.tta`)."""
        from fer.models.tta import of

        return of(self.meta, str(self.path))

    @property
    def global_input(self) -> str:
        """The view the Global Net is scored on: ``aligned`` (the chip) or ``original``."""
        return str(self.meta.get("global_input", "aligned"))


def load_checkpoints(paths, expect: str, lazy: bool = False) -> list[Checkpoint]:
    """Load checkpoints through :func:`fer.models.load_checkpoint`; each must be an ``expect``
    model (``global`` / ``roi``), else a FerError naming the file. ``lazy``: where the graph
    cache holds a checkpoint file's metadata (:func:`fer.models.graphs.cached_meta`, found by
    the file's sha256), take it from there and leave the weights until :attr:`Checkpoint.model`
    is asked for."""
    out = []
    for path in paths:
        if not Path(path).is_file():
            raise FerError(f"{path}: checkpoint not found")
        model, meta = None, None
        if lazy:
            from fer.models.graphs import cached_meta

            meta = cached_meta(Path(path))
        if meta is None:
            from fer.models import load_checkpoint

            model, meta = load_checkpoint(path)
        if meta.get("model") != expect:
            raise FerError(f"{path}: a {meta.get('model')!r} checkpoint where {expect!r} expected")
        out.append(Checkpoint(Path(path), model, dict(meta)))
    return out


@dataclass(frozen=True)
class Inference:
    """How the models run: the torch device, images per forward pass, a progress bar (None: on
    a terminal only), and whether each call prints its images and seconds (``fer predict``
    calls it once per batch and reports the whole run instead)."""

    device: object  # torch.device, or its name
    batch_size: int = 64
    progress: bool | None = None
    announce: bool = True
    backend: str = "eager"  # or onnx: the checkpoint's graph under onnxruntime (fer.models.graphs)
    threads: int | None = None  # onnxruntime's (None: graphs.default_threads); torch keeps its own


def model_logits(ck: Checkpoint, arrays: dict, rows: np.ndarray, run: Inference) -> np.ndarray:
    """Logits (n, C) float32 of ``ck`` on ``rows``; ``arrays`` maps forward() argument names to
    uint8 N×S×S×3 arrays. A Global-ROI Net's prediction head ``x`` is used, under the
    checkpoint's test-time views (meta ``tta``), by torch (``run.backend`` eager) or by
    onnxruntime (onnx: :mod:`fer.models.graphs`, the inputs prepared in NumPy, torch not
    loaded)."""
    from tqdm import tqdm

    if run.backend == "onnx":
        from fer.models import graphs
        from fer.models.transforms import eval_array

        graph = graphs.session(ck, run.threads)

        def score(take: np.ndarray) -> np.ndarray:
            inputs = {
                k: eval_array(a[take], ck.sizes[k], ck.normalisation) for k, a in arrays.items()
            }
            return graphs.run(graph, inputs)

    else:
        score = _eager(ck, arrays, run)
    out = []
    desc, start = f"{ck.kind} {ck.path.name}", time.perf_counter()
    quiet = None if run.progress is None else not run.progress
    starts = range(0, len(rows), run.batch_size)
    for s in tqdm(starts, desc=desc, disable=quiet, file=sys.stderr, leave=False):
        take = np.sort(rows[s : s + run.batch_size])
        order = np.argsort(np.argsort(rows[s : s + run.batch_size]))  # sorted → given order
        out.append(score(take)[order])
    if run.announce:
        seconds = time.perf_counter() - start
        print(f"{desc}: {len(rows)} images in {seconds:.1f} s", file=sys.stderr)
    if not out:
        return np.zeros((0, len(ck.classes)), np.float32)
    return np.concatenate(out).astype(np.float32)


def _eager(ck: Checkpoint, arrays: dict, run: Inference) -> Callable[[np.ndarray], np.ndarray]:
    """Torch's scoring of ``ck`` on the rows ``take`` of ``arrays``: logits as float32 NumPy."""
    import torch

    from fer.models.transforms import eval_transform
    from fer.models.tta import logits

    device = torch.device(run.device)
    model = ck.model.eval().to(device)
    sizes, norm, tta = ck.sizes, ck.normalisation, ck.tta

    def score(take: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            inputs = {
                k: eval_transform(
                    torch.from_numpy(np.ascontiguousarray(a[take])).to(device),
                    sizes[k],
                    norm,
                    channels_last=device.type == "cuda",
                )
                for k, a in arrays.items()
            }
            return logits(model, inputs, tta).float().cpu().numpy()

    return score


def global_views(ck: Checkpoint) -> tuple[str, ...]:
    """The views the Global Net runs on, its own score's first: ``("aligned",)``, or
    ``("original", "aligned")`` for a checkpoint trained on whole frames, whose fused score still
    takes the Global Net on the aligned chip, as the reference's ``re`` listing does (§5.1)."""
    own = ck.global_input
    if own not in VIEWS:
        raise FerError(f"{ck.path}: global_input {own!r}; expected one of {list(VIEWS)}")
    return tuple(dict.fromkeys((own, "aligned")))


def global_logits(
    ck: Checkpoint, view: Callable[[str], np.ndarray], rows: np.ndarray, run: Inference
) -> dict[str, np.ndarray]:
    """The Global Net's logits on ``rows`` of each of its :func:`global_views`: ``{view:
    logits}``; ``view(name)`` gives the uint8 array of that view (it raises where it has none)."""
    return {v: model_logits(ck, {"face": view(v)}, rows, run) for v in global_views(ck)}


def roi_logits(
    ck: Checkpoint, arrays: dict, rows: np.ndarray, has_roi: np.ndarray, run: Inference
) -> np.ndarray:
    """The Global-ROI Net's logits on ``rows``, NaN on the rows without ROIs (``has_roi``)."""
    z = np.full((len(rows), len(ck.classes)), np.nan, np.float32)
    if has_roi.any():
        z[has_roi] = model_logits(ck, arrays, rows[has_roi], run)
    return z
