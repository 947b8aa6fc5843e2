"""Per-image preprocessing: decode once → detect → align → ROI crops, for a chunk of manifest rows.

:class:`Processor` holds the detector and the landmark predictors (loaded once per process);
:func:`process_into` is what the multiprocessing pool runs: it processes a chunk and writes it
straight into the memory-mapped :class:`Outputs`, returning only one small record per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from fer.atomic import reserve
from fer.data.io import MAX_PIXELS, UnreadableImage, load_image
from fer.preprocess.align import Aligner
from fer.preprocess.detect import make_detector
from fer.preprocess.rois import crop_rois, format_boxes, roi_boxes


@dataclass(frozen=True)
class Settings:
    """What one prepare run computes and where (params.json records the content-defining ones)."""

    root: str
    detector: str = "mtcnn"
    chip_size: int = 224  # the stored face chip's side
    crop_size: int = 90  # the stored ROI crops' side
    padding: float = 0.25
    device: str = "cpu"
    keep_original: bool = False
    max_pixels: int = MAX_PIXELS  # larger images are `unreadable` (their size in the reason)
    # BLAS threads for MTCNN's NumPy nets on the CPU: 1 (parallelism comes from worker processes;
    # several threads per process oversubscribed a busy 2-core machine: MTCNN ran 3-5x slower);
    # 0 leaves the BLAS library's default (fer predict: one process)
    blas_threads: int = 1
    # MTCNN's smallest face: auto (a tenth of the frame's short side, at least 20 px), pixels, or
    # a share of the short side (fer.preprocess.mtcnn.min_face_for)
    min_face: str | int | float = "auto"


@dataclass
class Chunk:
    """The results of a chunk of rows, row-aligned."""

    faces: np.ndarray
    rois: list[np.ndarray]  # eye, nose, mouth
    landmarks: np.ndarray
    original: np.ndarray | None
    records: list[dict] = field(default_factory=list)


def resize_frame(image: np.ndarray, size: int) -> np.ndarray:
    """The whole frame squashed to ``size``² (area filter down, bilinear up, like INTER_AREA)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    down = size < h or size < w
    resample = Image.Resampling.BOX if down else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(image).resize((size, size), resample))


@dataclass
class Face:
    """One face of one image, as preprocessing leaves it: ``status`` (ok / no_face /
    landmarks_failed / roi_empty), the chip (the aligned face, or the whole frame resized where
    there is none), the three ROI crops (None without ROIs), chip and image landmarks, the detector
    box (x1, y1, x2, y2 in the image) and its score, and how many faces the image showed."""

    status: str
    chip: np.ndarray
    rois: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    landmarks: np.ndarray | None = None
    image_landmarks: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    score: float = float("nan")
    n_faces: int = 0
    disagreement: float = float("nan")
    roi_boxes: str = ""


class Processor:
    """Detector + aligner for one process: :meth:`faces` turns decoded images into :class:`Face`
    results (``fer prepare`` and ``fer predict`` both call it); :meth:`run` handles a list of
    manifest rows for prepare."""

    def __init__(self, settings: Settings):
        self.settings = settings
        if settings.blas_threads and settings.detector == "mtcnn" and settings.device == "cpu":
            from threadpoolctl import threadpool_limits

            threadpool_limits(settings.blas_threads, user_api="blas")
        self.detector = make_detector(settings.detector, settings.device, settings.min_face)
        self.aligner = Aligner(settings.chip_size, settings.padding)

    def faces(
        self, images: list[np.ndarray], rows: list[dict] | None = None, all_faces: bool = False
    ) -> list[list[Face]]:
        """The faces of each decoded RGB image: the kept face only (one :class:`Face`, status
        ``no_face`` when none was found), or with ``all_faces`` every face the detector saw (the
        kept one first). ``rows``: the manifest rows, for the ``given`` detector."""
        rows = rows if rows is not None else [{} for _ in images]
        detections = self.detector.detect(images, rows) if images else []
        jobs = []  # (image number, rect, given points, score)
        for k, found in enumerate(detections):
            if found.rect is None:
                continue
            rects = found.rects if all_faces else found.rects[:1]
            for j, rect in enumerate(rects):
                points = found.points if j == 0 else None
                jobs.append((k, rect, points, found.scores[j]))
        aligned = self.aligner.align_many(
            [images[k] for k, *_ in jobs], [j[1] for j in jobs], [j[2] for j in jobs]
        )
        out: list[list[Face]] = [[] for _ in images]
        for (k, rect, _, score), result in zip(jobs, aligned, strict=True):
            face = self._face(images[k], result)
            face.box, face.score, face.n_faces = tuple(rect), score, detections[k].n_faces
            out[k].append(face)
        for k, faces in enumerate(out):
            if not faces:
                frame = resize_frame(images[k], self.settings.chip_size)
                faces.append(Face("no_face", frame, n_faces=detections[k].n_faces))
        return out

    def _face(self, image: np.ndarray, aligned) -> Face:
        s = self.settings
        if aligned.status != "ok":
            return Face(
                aligned.status,
                resize_frame(image, s.chip_size),
                None,
                None,
                None,
                disagreement=aligned.disagreement,
            )
        face = Face(
            "ok",
            aligned.chip,
            None,
            aligned.landmarks,
            aligned.image_landmarks,
            disagreement=aligned.disagreement,
        )
        boxes = roi_boxes(aligned.landmarks, s.chip_size)
        if boxes is None:
            face.status = "roi_empty"
            return face
        face.rois = tuple(crop_rois(aligned.chip, boxes, s.crop_size))
        face.roi_boxes = format_boxes(boxes)
        return face

    def run(self, rows: list[dict]) -> Chunk:
        """Process ``rows`` (manifest dicts with at least ``path``) into a :class:`Chunk`."""
        s = self.settings
        n, f, r = len(rows), s.chip_size, s.crop_size
        chunk = Chunk(
            faces=np.zeros((n, f, f, 3), np.uint8),
            rois=[np.zeros((n, r, r, 3), np.uint8) for _ in range(3)],
            landmarks=np.full((n, 68, 2), np.nan, np.float32),
            original=np.zeros((n, f, f, 3), np.uint8) if s.keep_original else None,
            records=[_record("unreadable") for _ in rows],
        )
        images, readable = [], []
        for i, row in enumerate(rows):
            try:
                images.append(load_image(s.root, row["path"], s.max_pixels))
                readable.append(i)
            except UnreadableImage as exc:  # or RejectedImage: its own status
                chunk.records[i].update(status=exc.status, reason=exc.reason)
        found = self.faces(images, [rows[i] for i in readable])
        for i, image, (face,) in zip(readable, images, found, strict=True):
            record = chunk.records[i]
            record.update(status=face.status, n_faces=face.n_faces, disagreement=face.disagreement)
            chunk.faces[i] = face.chip
            if chunk.original is not None:
                chunk.original[i] = resize_frame(image, s.chip_size)
            if face.landmarks is not None:
                chunk.landmarks[i] = face.landmarks
            if face.rois is not None:
                for target, crop in zip(chunk.rois, face.rois, strict=True):
                    target[i] = crop
                record.update(has_roi=1, roi_boxes=face.roi_boxes)
        return chunk


def _record(status: str) -> dict:
    return {
        "status": status,
        "has_roi": 0,
        "n_faces": 0,
        "roi_boxes": "",
        "reason": "",
        "disagreement": float("nan"),
    }


class Outputs:
    """The memory-mapped output arrays of a prepared folder (``faces``, ``eye``, ``nose``,
    ``mouth``, ``landmarks``, optional ``original``), row-aligned with index.csv."""

    NAMES = ("faces", "eye", "nose", "mouth", "landmarks", "original")

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    @classmethod
    def create(cls, folder: Path, n: int, settings: Settings) -> Outputs:
        """Create the ``.npy`` files for ``n`` rows (zero-filled) in ``folder``, their disk
        reserved up front."""
        shapes, kinds = cls.layout(n, settings)
        arrays = {}
        for name, kind in kinds.items():
            path = Path(folder) / f"{name}.npy"
            arrays[name] = np.lib.format.open_memmap(path, "w+", kind, shapes[name])
            reserve(path, path.stat().st_size)  # no SIGBUS from a disk that fills later
        arrays["landmarks"][:] = np.nan
        outputs = cls(arrays)
        outputs.flush()
        _OUTPUTS[str(folder)] = outputs
        return outputs

    @classmethod
    def layout(cls, n: int, settings: Settings) -> tuple[dict, dict]:
        """The shape and dtype of every array for ``n`` rows."""
        f, r = settings.chip_size, settings.crop_size
        names = cls.NAMES if settings.keep_original else cls.NAMES[:-1]
        big = {"faces": (n, f, f, 3), "landmarks": (n, 68, 2), "original": (n, f, f, 3)}
        shapes = {name: big.get(name, (n, r, r, 3)) for name in names}
        kinds = {name: np.float32 if name == "landmarks" else np.uint8 for name in names}
        return shapes, kinds

    @classmethod
    def nbytes(cls, n: int, settings: Settings) -> int:
        """Disk the prepared folder of ``n`` rows takes: arrays, index, summaries, contact sheet
        (bounded by its uncompressed size)."""
        shapes, kinds = cls.layout(n, settings)
        arrays = sum(int(np.prod(shapes[k])) * np.dtype(kinds[k]).itemsize for k in shapes)
        return arrays + 400 * n + 48 * (settings.chip_size + 8) ** 2 * 3

    @classmethod
    def open(cls, folder: str) -> Outputs:
        """Open the existing files of ``folder`` for writing (once per process)."""
        if folder not in _OUTPUTS:
            paths = {n: Path(folder) / f"{n}.npy" for n in cls.NAMES}
            arrays = {n: np.load(p, mmap_mode="r+") for n, p in paths.items() if p.is_file()}
            _OUTPUTS[folder] = cls(arrays)
        return _OUTPUTS[folder]

    def write(self, start: int, chunk: Chunk) -> None:
        """Copy ``chunk`` into rows ``start…``."""
        stop = start + len(chunk.records)
        values = dict(zip(("eye", "nose", "mouth"), chunk.rois, strict=True))
        values.update(faces=chunk.faces, landmarks=chunk.landmarks, original=chunk.original)
        for name, target in self.arrays.items():
            target[start:stop] = values[name]

    def flush(self) -> None:
        """Flush every memmap to disk."""
        for arr in self.arrays.values():
            arr.flush()

    @property
    def faces(self) -> np.ndarray:
        return self.arrays["faces"]


# ---- multiprocessing: one Processor per worker, built by the pool initializer -------------------
_PROCESSOR: Processor | None = None
_OUTPUTS: dict[str, Outputs] = {}


def init_worker(settings: Settings) -> None:
    """Build this process's detector and predictor once (in the parent on the CPU, whose forked
    workers inherit it; in each spawned worker with CUDA)."""
    global _PROCESSOR
    _PROCESSOR = Processor(settings)


def start_worker(settings: Settings | None) -> None:
    """Pool initializer of ``fer prepare``'s and ``fer predict``'s workers: only the parent
    reports Ctrl-C (:func:`fer.cli.quiet_worker`); a spawned worker builds its own processor
    (``settings``), a forked one inherited it (None)."""
    from fer.cli import quiet_worker

    quiet_worker()
    if settings is not None:
        init_worker(settings)


def worker_processor() -> Processor:
    """This worker's :class:`Processor` (:func:`init_worker`)."""
    assert _PROCESSOR is not None, "init_worker was not run"
    return _PROCESSOR


def close_outputs(folder: str | Path) -> None:
    """Forget this process's handles on ``folder``'s outputs (after a run)."""
    _OUTPUTS.pop(str(folder), None)


def process_into(task: tuple[str, int, list[dict]]) -> list[dict]:
    """Pool task ``(folder, start, rows)``: process ``rows`` with this worker's
    :class:`Processor`, write them at row ``start`` of ``folder``'s outputs; return the records."""
    folder, start, rows = task
    chunk = worker_processor().run(rows)
    Outputs.open(folder).write(start, chunk)
    return chunk.records
