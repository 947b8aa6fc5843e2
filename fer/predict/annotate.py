"""``fer predict --annotate DIR``: a copy of each picture with every face's box, its 68 landmarks
and the fused (else the only) label drawn; a video input gets an annotated video (H.264 where
PyAV's FFmpeg has it, else MPEG-4) of the frames that were read. Pictures (and videos) with a
side under :data:`MIN_DRAW_SIDE` pixels are drawn enlarged by a whole factor, so that a 48-pixel
face's label can be read.

Names: a picture given as a file, ``…/c.jpg``, becomes ``DIR/c.png``; one found in a folder
input ``…/photos`` becomes ``DIR/photos/<its path under photos>.png``; a video ``DIR/clip.mp4``
(or ``DIR/photos/…/clip.mp4``); an array ``DIR/array-<n>.png``. A name already written in this
run gets ``-2``, ``-3``… before its suffix.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fer.atomic import StagedFile, atomic_write
from fer.errors import FerError
from fer.paths import real

COLOURS = {"ok": (40, 220, 90), "no_roi": (255, 190, 0)}
MIN_DRAW_SIDE = 256  # pictures with a shorter side are drawn enlarged, by a whole factor


def scale_for(shape: tuple[int, ...]) -> int:
    """The whole factor a picture of ``shape`` (H×W…) is enlarged by before drawing, so that its
    shorter side reaches :data:`MIN_DRAW_SIDE` (1 for pictures that already do)."""
    side = max(min(shape[:2]), 1)
    return max(1, math.ceil(MIN_DRAW_SIDE / side))


def _fit(box: tuple, size: tuple[int, int]) -> tuple[float, float]:
    """The shift that keeps a ``box`` (left, top, right, bottom; inclusive pixel coordinates)
    inside a ``size`` (width, height) image."""
    left, top, right, bottom = box
    dx = min(0.0, size[0] - 1 - right) if left >= 0 else -left
    dy = min(0.0, size[1] - 1 - bottom) if top >= 0 else -top
    return dx, dy


def draw(image: np.ndarray, result, arch: str) -> np.ndarray:
    """``image`` with the faces and labels of ``result`` (a fer.predict.core.Result) drawn.

    A picture with a side under :data:`MIN_DRAW_SIDE` is enlarged first (by :func:`scale_for`),
    so that labels stay legible; labels are moved inside the picture, never cut off; landmarks
    are small dots that leave the face visible."""
    k = scale_for(image.shape)
    im = Image.fromarray(image)
    if k > 1:
        im = im.resize((im.width * k, im.height * k), Image.Resampling.BICUBIC)
    pen = ImageDraw.Draw(im)
    side = max(min(im.size), 1)
    width = max(1, round(side / 250))
    font = ImageFont.load_default(size=max(12, round(side / 24)))
    for face, row in zip(result.faces, result.rows, strict=False):
        label, p = row.get(f"{arch}_label") or "", row.get(f"{arch}_p_{row.get(f'{arch}_label')}")
        text = f"{label} {p:.2f}" if label and p == p else label or row["status"]
        colour = COLOURS.get(row["status"], (230, 60, 60))
        if face.box is not None:
            x1, y1, x2, y2 = (k * float(v) for v in face.box)
            pen.rectangle((x1, y1, x2, y2), outline=colour, width=width)
            anchor = (x1, y1 - font.size - 2 * width)  # above the box, moved in below if need be
        else:
            anchor = (2 * width, 2 * width)
        if face.image_landmarks is not None:
            points = k * np.asarray(face.image_landmarks, dtype=float)
            r = max(0.75, np.ptp(points[:, 0]) / 200)
            for x, y in points:
                pen.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        left, top, right, bottom = pen.textbbox(anchor, text, font=font)
        dx, dy = _fit((left - 1, top - 1, right + 1, bottom + 1), im.size)  # with its background
        anchor = (anchor[0] + dx, anchor[1] + dy)
        left, top, right, bottom = pen.textbbox(anchor, text, font=font)
        pen.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=(0, 0, 0))
        pen.text(anchor, text, fill=colour, font=font)
    return np.asarray(im)


class Annotator:
    """Writes the annotated copies into ``folder`` as results arrive (one video open at a time)."""

    def __init__(self, folder: Path, arch: str):
        self.folder, self.arch = Path(folder), arch
        self.written: list[Path] = []
        self._taken: set[Path] = set()
        self._video = None  # (source, VideoOut)

    def _name(self, name: str, suffix: str, source: str) -> Path:
        rel = Path(*(p for p in Path(name or "picture").parts if p not in ("..", ".", "/")))
        base, n = self.folder / rel.with_suffix(suffix), 1
        out = base
        while out in self._taken:
            n += 1
            out = base.with_name(f"{base.stem}-{n}{suffix}")
        if os.path.exists(source) and real(out).parent == real(source).parent:  # a file, in DIR
            what = (
                "is the input itself; not overwritten"
                if real(out) == real(source)
                else f"would land beside its input {source}, among the inputs"
            )
            raise FerError(f"--annotate {self.folder}: {out} {what}; annotate elsewhere")
        self._taken.add(out)
        return out

    def add(self, result) -> None:
        """Draw one frame's result: a picture file, or the next frame of the current video."""
        frame = result.frame
        if frame.image is None:
            return
        picture = draw(frame.image, result, self.arch)
        if not frame.is_video:
            self.close_video()
            out = self._name(frame.name, ".png", frame.source)
            with atomic_write(out, "wb") as fh:
                Image.fromarray(picture).save(fh, format="PNG")
            self.written.append(out)
            return
        if self._video is None or self._video[0] != frame.source:
            self.close_video()
            out = self._name(frame.name, ".mp4", frame.source)
            self._video = (frame.source, VideoOut(out, frame.fps))
        self._video[1].add(picture, frame.time)

    def close_video(self) -> None:
        """Finish the video being written, if any."""
        if self._video is not None:
            self.written.append(self._video[1].close())
            self._video = None

    def discard(self) -> None:
        """After a failure: remove the partial video being written, if any."""
        if self._video is not None:
            self._video[1].discard()
            self._video = None


class VideoOut:
    """An H.264 (else MPEG-4) video written frame by frame; sizes are cropped to even numbers.

    Each frame keeps its time in the source (``add(picture, time_s)``, in milliseconds), so a
    video sampled with ``--every`` or ``--fps`` plays as long as its source; frames without a
    time follow each other at ``fps``."""

    TIME_BASE = Fraction(1, 1000)

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = Path(path), fps if fps == fps and fps > 0 else 25.0
        self._container = self._stream = None
        self._staged: StagedFile | None = None
        self._pts = -1

    def add(self, picture: np.ndarray, time_s: float = float("nan")) -> None:
        import av

        h, w = (picture.shape[0] // 2) * 2, (picture.shape[1] // 2) * 2
        if self._container is None:
            self._staged = StagedFile(self.path)
            self._container = av.open(str(self._staged.tmp), "w")
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            rate = Fraction(self.fps).limit_denominator(1001)
            self._stream = self._container.add_stream(codec, rate=rate)
            self._stream.width, self._stream.height, self._stream.pix_fmt = w, h, "yuv420p"
            self._stream.codec_context.time_base = self.TIME_BASE
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture[:h, :w]), format="rgb24")
        step = round(1000 / self.fps)
        wanted = round(time_s * 1000) if math.isfinite(time_s) else self._pts + step
        self._pts = frame.pts = max(wanted, self._pts + 1)  # strictly increasing
        frame.time_base = self.TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def discard(self) -> None:
        if self._container is not None:
            self._container.close()
        if self._staged is not None:
            self._staged.discard()

    def close(self) -> Path:
        if self._container is None:
            raise FerError(f"{self.path}: no frame to write")
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        return self._staged.commit()
