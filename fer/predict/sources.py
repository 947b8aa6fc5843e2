"""What ``fer predict`` reads, as one stream of :class:`Frame` s: image files, folders (every file
under them, recursively, in sorted order), videos (every Nth frame, or frames at a rate; decoded
with PyAV, whose wheels carry FFmpeg), ``-`` (a list of paths on stdin) and, from Python, PIL
images and numpy arrays.

Nothing here stops on a bad input: a missing, corrupt, oversized or non-image file (or a FIFO,
folder or device where a file should be: never opened) is one frame with ``image=None`` and the
reason, which becomes a row with status ``unreadable``; a picture the picture rules refuse
(:func:`fer.data.io.picture_problem`: too small, too elongated, constant) one with status
``rejected``. Frames are produced lazily, one at a time, so a long video is never held in memory.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer.data.io import (
    MAX_PIXELS,
    UnreadableImage,
    load_image,
    picture_problem,
    shape_problem,
    to_rgb_array,
)
from fer.data.listing import is_image
from fer.errors import FerError
from fer.paths import file_problem

VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .wmv .flv .3gp .ts .mts .ogv".split()
)


@dataclass
class Frame:
    """One picture to predict on: its ``source`` (the path, or :func:`in_memory_name`), frame number
    (0 for a still) and time in seconds (NaN for a still), the RGB ``image`` or None and why."""

    source: str
    frame: int
    time: float
    image: np.ndarray | None
    reason: str = ""
    is_video: bool = False
    fps: float = float("nan")  # the video's frame rate (for an annotated copy)
    name: str = ""  # a relative name for derived files: under a folder input, folder/…/file
    status: str = "unreadable"  # without an image: unreadable, or rejected (the picture rules)


@dataclass(frozen=True)
class Sampling:
    """Which video frames are read: every ``every``-th, or (``fps``) the first frame at or after
    each multiple of 1/fps seconds; pictures of more than ``max_pixels`` are unreadable."""

    every: int = 1
    fps: float | None = None
    max_pixels: int = MAX_PIXELS

    def __post_init__(self):
        if self.every < 1:
            raise FerError(f"every {self.every}: expected a whole number >= 1")
        if self.fps is not None and not self.fps > 0:
            raise FerError(f"fps {self.fps}: expected a number > 0")


def expand(inputs: Iterable) -> Iterator[tuple]:
    """``(input, name)`` for each input as it will be read: folders become their files
    (recursive, sorted; named ``folder/…/file``), ``-`` the paths listed on stdin (one per
    line); pictures and other paths pass through (a file is named by its file name)."""
    for item in inputs:
        if isinstance(item, str | Path) and str(item) == "-":
            yield from expand(line.strip() for line in sys.stdin if line.strip())
        elif isinstance(item, str | Path) and Path(item).is_dir():
            top = Path(item).resolve().name or "root"
            for p in sorted(p for p in Path(item).rglob("*") if not p.is_dir()):
                yield str(p), str(Path(top) / p.relative_to(item))
        elif isinstance(item, str | Path):
            yield str(item), Path(item).name
        else:
            yield item, ""


def frames(inputs: Iterable, sampling: Sampling = Sampling()) -> Iterator[Frame]:
    """Every :class:`Frame` of ``inputs`` (paths, folders, ``-``, PIL images, numpy arrays)."""
    for n, (item, name) in enumerate(expand(inputs)):
        if isinstance(item, str):
            for frame in _file_frames(Path(item), sampling):
                frame.name = name
                yield frame
        else:
            yield _picture(item, in_memory_name(item, n), sampling)


def in_memory_name(item, n: int) -> str:
    """The ``file`` of a picture given in memory: a PIL image's own file where it was opened
    from one, else ``<PIL image N>`` or ``<array N>`` (N: its place among the inputs, from 0)."""
    name = getattr(item, "filename", "")  # PIL records the file an image was opened from
    if isinstance(name, str) and name:
        return name
    return f"<{'PIL image' if hasattr(item, 'getbands') else 'array'} {n}>"


def _picture(item, name: str, sampling: Sampling) -> Frame:
    """A PIL image or an H×W / H×W×3 / H×W×4 array (uint8, or floats in [0, 1]) as a frame."""
    try:
        from PIL import Image

        if isinstance(item, Image.Image):
            return Frame(name, 0, math.nan, to_rgb_array(item), name=name[1:-1].replace(" ", "-"))
        arr = np.asarray(item)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            return Frame(name, 0, math.nan, None, f"array of shape {arr.shape}: expected H×W×3")
        problem = shape_problem(arr.shape[1], arr.shape[0])  # before any pixel is looked at
        if problem:
            return Frame(name, 0, math.nan, None, problem, status="rejected")
        if arr.shape[0] * arr.shape[1] > sampling.max_pixels:
            return Frame(name, 0, math.nan, None, f"over the limit of {sampling.max_pixels:,} px")
        if arr.dtype.kind == "f":
            if not np.isfinite(arr).all():
                return Frame(name, 0, math.nan, None, "array holds NaN or infinite values")
            arr = np.clip(arr * (255 if arr.max(initial=0) <= 1 else 1), 0, 255)
        elif arr.dtype.kind not in "biu":
            return Frame(name, 0, math.nan, None, f"array of dtype {arr.dtype}: expected numbers")
        elif arr.size and (arr.min() < 0 or arr.max() > 255):
            return Frame(name, 0, math.nan, None, "integer array outside 0..255")
        if arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        arr = np.ascontiguousarray(arr[..., :3], dtype=np.uint8)
        return _checked(Frame(name, 0, math.nan, arr, name=name[1:-1].replace(" ", "-")))
    except (TypeError, ValueError) as exc:
        return Frame(name, 0, math.nan, None, f"not a picture ({type(item).__name__}: {exc})")


def _checked(frame: Frame) -> Frame:
    """``frame``, or its ``rejected`` twin without the image when the picture rules refuse it."""
    problem = picture_problem(frame.image) if frame.image is not None else None
    if problem:
        frame.image, frame.reason, frame.status = None, problem, "rejected"
    return frame


def _file_frames(path: Path, sampling: Sampling) -> Iterator[Frame]:
    problem = file_problem(path)
    if problem:  # never opened: a FIFO would block, a folder or a loop has nothing to decode
        yield Frame(str(path), 0, math.nan, None, problem)
        return
    if path.suffix.lower() in VIDEO_SUFFIXES:
        yield from video_frames(path, sampling)
        return
    try:
        yield Frame(str(path), 0, math.nan, load_image("", str(path), sampling.max_pixels))
    except UnreadableImage as exc:  # or RejectedImage, with its own status
        undecoded = "PIL can identify" in exc.reason  # a video without a video suffix?
        if not undecoded or is_image(path.name) or not _is_video(path):
            reason = exc.reason
            if undecoded:
                reason = "neither an image nor a video fer can decode"
                if is_image(path.name):  # never handed to FFmpeg, whose guess is misleading
                    reason = f"not an image, though named {path.suffix}; fer cannot decode it"
            yield Frame(str(path), 0, math.nan, None, reason, status=exc.status)
            return
        yield from video_frames(path, sampling)


def _is_video(path: Path) -> bool:
    """Whether FFmpeg sees a video stream in ``path`` (for a video without a video suffix)."""
    import av

    try:
        with av.open(str(path)) as container:
            return bool(container.streams.video)
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        return False


def video_frames(path: Path, sampling: Sampling) -> Iterator[Frame]:
    """The sampled frames of the video at ``path``, decoded one at a time; a file FFmpeg cannot
    open, a stream without frames and a decoding error midway are each one unreadable frame."""
    import av

    name = str(path)
    try:
        container = av.open(name)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        yield Frame(name, 0, math.nan, None, f"not a readable video: {exc}", True)
        return
    with container:
        if not container.streams.video:
            yield Frame(name, 0, math.nan, None, "no video stream in the file", True)
            return
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 0) or math.nan
        k, due = -1, 0.0
        try:
            for decoded in container.decode(stream):
                k += 1
                t = float(decoded.time) if decoded.time is not None else k / rate
                if sampling.fps is not None:
                    if t + 1e-6 < due:
                        continue
                    due = (math.floor(t * sampling.fps + 1e-6) + 1) / sampling.fps
                elif k % sampling.every:
                    continue
                if decoded.width * decoded.height > sampling.max_pixels:
                    reason = f"frame of {decoded.width}x{decoded.height} over the pixel limit"
                    yield Frame(name, k, t, None, reason, True, rate)
                    continue
                image = decoded.to_ndarray(format="rgb24")
                yield _checked(Frame(name, k, t, image, "", True, rate))
        except (av.FFmpegError, OSError) as exc:
            yield Frame(name, k + 1, math.nan, None, f"decoding stopped: {exc}", True, rate)
            return
        if k < 0:
            yield Frame(name, 0, math.nan, None, "no frame could be decoded", True, rate)
