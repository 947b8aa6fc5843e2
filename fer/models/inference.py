"""The inference core both consumers share: ``fer infer`` (a prepared target, :mod:`fer.evaluate`)
and ``fer predict`` (new pictures, :mod:`fer.predict`).

* :func:`load_checkpoints` reads checkpoints (``load_checkpoint``: ``weights_only``, meta checked)
  into :class:`Checkpoint`\\ s, each checked to be the model expected;
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


@dataclass
class Checkpoint:
    """One loaded model with its metadata and where it came from."""

    path: Path
    model: object  # torch.nn.Module
    meta: dict

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


def load_checkpoints(paths, expect: str) -> list[Checkpoint]:
    """Load checkpoints through :func:`fer.models.load_checkpoint`; each must be an ``expect``
    model (``global`` / ``roi``), else a FerError naming the file."""
    from fer.models import load_checkpoint

    out = []
    for path in paths:
        if not Path(path).is_file():
            raise FerError(f"{path}: checkpoint not found")
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

    device: object  # torch.device
    batch_size: int = 64
    progress: bool | None = None
    announce: bool = True
    backend: str = "eager"  # or onnx: the checkpoint's graph under onnxruntime (fer.models.graphs)


def model_logits(ck: Checkpoint, arrays: dict, rows: np.ndarray, run: Inference) -> np.ndarray:
    """Logits (n, C) float32 of ``ck`` on ``rows``; ``arrays`` maps forward() argument names to
    uint8 N×S×S×3 arrays. A Global-ROI Net's prediction head ``x`` is used, under the
    checkpoint's test-time views (meta ``tta``), by torch (``run.backend`` eager) or by
    onnxruntime (onnx: :mod:`fer.models.graphs`)."""
    import torch
    from tqdm import tqdm

    from fer.models.transforms import eval_transform
    from fer.models.tta import logits

    model, device, bs = ck.model, run.device, run.batch_size
    sizes, norm, tta = ck.sizes, ck.normalisation, ck.tta
    graph = None
    if run.backend == "onnx":
        from fer.models import graphs

        graph = graphs.session(ck)
    else:
        model.eval().to(device)
    out = []
    starts = range(0, len(rows), bs)
    desc, start = f"{ck.kind} {ck.path.name}", time.perf_counter()
    with torch.inference_mode():
        quiet = None if run.progress is None else not run.progress
        for s in tqdm(starts, desc=desc, disable=quiet, file=sys.stderr, leave=False):
            take = np.sort(rows[s : s + bs])
            inputs = {
                k: eval_transform(
                    torch.from_numpy(np.ascontiguousarray(a[take])).to(device),
                    sizes[k],
                    norm,
                    channels_last=device.type == "cuda",
                )
                for k, a in arrays.items()
            }
            z = logits(model, inputs, tta) if graph is None else graphs.run(graph, inputs)
            order = np.argsort(np.argsort(rows[s : s + bs]))  # back from sorted to given order
            out.append(z.float().cpu().numpy()[order])
    if run.announce:
        seconds = time.perf_counter() - start
        print(f"{desc}: {len(rows)} images in {seconds:.1f} s", file=sys.stderr)
    if not out:
        return np.zeros((0, len(ck.classes)), np.float32)
    return np.concatenate(out).astype(np.float32)


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
