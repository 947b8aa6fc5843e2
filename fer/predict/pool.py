"""Where ``fer predict`` finds its faces: in its own process, or in worker processes that detect,
align and crop the next batches while the networks score the current one.

Both give :meth:`map`: ``(batch, faces per frame, seconds)`` for each batch of frames, in input
order, from the same :class:`~fer.preprocess.pipeline.Processor` (the one ``fer prepare`` runs), so
the two tables are the same. Decoding stays in the calling process (a video is read in order); a
batch's decoded pictures go to a worker, its :class:`~fer.preprocess.pipeline.Face` s come back.
At most ``workers + 1`` batches are in flight, so memory stays flat over a long video.

Workers are spawned, not forked: the calling process holds thread pools (torch's,
onnxruntime's) that a forked child must not inherit, and a spawned worker imports neither torch
nor the models (its detector and landmark model load while the parent loads the networks). A
worker that dies (killed, out of memory) ends the run with one line
(:class:`~fer.errors.FerError`), never a hang.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

from fer.errors import FerError
from fer.preprocess.align import cache_predictors
from fer.preprocess.pipeline import Processor, Settings, start_worker, worker_processor
from fer.provenance import usable_cores


def auto_workers(settings: Settings, cpus: int | None = None) -> int:
    """Worker processes ``--workers auto`` starts: none where there is little to overlap (no
    detector, MTCNN on a GPU, one core), else one per core, at most four. A worker sleeps while
    no batch waits for it, and so do the networks' threads, so the cores go to whichever side
    has work: where the networks are cheap, preprocessing is what a run waits on.

    Measured with ``benchmarks/bench_predict.py`` (batch 32) on 2 cores of an AMD EPYC: at the
    demo's 48 / 24 px, 2 workers scored 50.5 images/s on 256 pictures against one worker's 34.0
    (1.49x; 43.6-48.3 against 31.2-33.2 on 64 in three runs each); at 224 / 90 px, where the
    networks take most of the time, the same within noise (medians of three: 8.85 and 8.98).
    Start-up on one picture: 0.99-1.09 s against 0.91-1.01 s with one worker (both workers
    load while the networks do; starting the second only when a second batch waits saved that
    but cost about 0.6 s of a 256-picture run). Until then auto started one per two cores.
    Machines of more cores are unmeasured."""
    cpus = usable_cores() if cpus is None else cpus
    if settings.detector == "none" or settings.device != "cpu" or cpus < 2:
        return 0
    return min(4, cpus)


def _faces(processor: Processor, images: list, all_faces: bool) -> tuple[list, float]:
    start = time.perf_counter()
    found = processor.faces(images, None, all_faces)
    return found, time.perf_counter() - start


def _work(images: list, all_faces: bool) -> tuple[list, float]:
    return _faces(worker_processor(), images, all_faces)


def _split(batch: list) -> tuple[list, list]:
    """The decoded pictures of ``batch`` and where they sit in it."""
    where = [i for i, frame in enumerate(batch) if frame.image is not None]
    return [batch[i].image for i in where], where


def _spread(batch: list, where: list, found: list) -> list[list]:
    """Faces per frame of ``batch``: ``found`` for the decoded ones, none for the others."""
    out: list[list] = [[] for _ in batch]
    for i, faces in zip(where, found, strict=True):
        out[i] = faces
    return out


class InProcess:
    """Faces found here, one batch after the other."""

    workers = 0

    def __init__(self, settings: Settings, all_faces: bool = False):
        self.processor = Processor(settings)
        self.all_faces = all_faces

    def map(self, batches: Iterable[list]) -> Iterator[tuple[list, list[list], float]]:
        for batch in batches:
            images, where = _split(batch)
            found, seconds = _faces(self.processor, images, self.all_faces)
            yield batch, _spread(batch, where, found), seconds

    def close(self) -> None:
        pass


class WorkerPool:
    """Faces found by ``workers`` spawned processes, ahead of the caller."""

    def __init__(self, settings: Settings, workers: int, all_faces: bool = False):
        if workers < 1:
            raise FerError(f"{workers} preprocessing workers: expected at least 1")
        self.workers, self.all_faces = workers, all_faces
        settings = replace(settings, blas_threads=1)  # one core each: the networks keep the rest
        cache_predictors()  # decoded once here, not in each worker
        spawn = mp.get_context("spawn")
        self.pool = ProcessPoolExecutor(
            workers, mp_context=spawn, initializer=start_worker, initargs=(settings,)
        )
        # start them now: they load while the networks do
        self.started = [self.pool.submit(int) for _ in range(workers)]

    def map(self, batches: Iterable[list]) -> Iterator[tuple[list, list[list], float]]:
        window: deque[tuple[list, list, Future]] = deque()
        try:
            for batch in batches:
                images, where = _split(batch)
                window.append((batch, where, self.pool.submit(_work, images, self.all_faces)))
                if len(window) > self.workers:
                    yield self._done(*window.popleft())
            while window:
                yield self._done(*window.popleft())
        except BrokenProcessPool:
            self.close()
            if any(f.cancelled() or f.exception() for f in self.started):
                raise FerError(
                    "the preprocessing workers could not start (from a Python script: create "
                    'the Predictor under `if __name__ == "__main__":`, which spawned '
                    "processes need); the table was not written: run with --workers 0 "
                    "(workers=0)"
                ) from None
            raise FerError(
                "a preprocessing worker died (killed, or out of memory); the table was not "
                "written: run again, or with --workers 0"
            ) from None
        finally:
            for *_, future in window:
                future.cancel()

    @staticmethod
    def _done(batch: list, where: list, future: Future) -> tuple[list, list[list], float]:
        found, seconds = future.result()
        return batch, _spread(batch, where, found), seconds

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def face_finder(settings: Settings, workers: int, all_faces: bool = False):
    """:class:`WorkerPool` of ``workers`` processes, or :class:`InProcess` for 0."""
    if workers == 0:
        return InProcess(settings, all_faces)
    return WorkerPool(settings, workers, all_faces)
