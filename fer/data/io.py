"""Image decoding: every data set's pictures become one HxWx3 uint8 RGB array, read once.

Grey, palette, grey+alpha, RGBA, CMYK, 16-bit and float images are converted the way OpenCV's
``cv2.imread(path, IMREAD_COLOR)`` (what the reference used) would see them: alpha dropped,
16-bit scaled to 8-bit, EXIF orientation applied. A file that cannot be decoded raises
:class:`UnreadableImage` with the reason, so the caller can count it and move on.

``csv:<csv relative path>#<0-based data row>`` paths address a 48x48 grey picture stored as 2304
space-separated ints in the ``pixels`` column of a csv (Kaggle's ``fer2013.csv``); the csv is
parsed once per process and kept.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fer.errors import FerError
from fer.paths import OUTSIDE_ROOT, OutsideRoot, confined, file_problem

CSV_PREFIX = "csv:"
# The most pixels an image may have (100 MP: 300 MB decoded); larger ones are `unreadable`.
MAX_PIXELS = 100_000_000
# The picture rules (docs/safety.md, rule 3), the one place they are decided: a picture whose
# shorter side is under MIN_PICTURE_SIDE pixels (a 16-px picture is already a thumbnail of a
# face; below it a chip is interpolation), whose sides differ more than MAX_ASPECT times (a
# strip, not a photo) or whose pixels are all one colour (no face to see) is `rejected`: decoded
# but never given to a model, counted with its reason.
MIN_PICTURE_SIDE = 16
MAX_ASPECT = 5.0


class UnreadableImage(FerError):
    """An image file that exists in the manifest but cannot be decoded (``reason`` says why);
    its row's status is :attr:`status`."""

    status = "unreadable"

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {self.status} image ({reason})")
        self.path = str(path)
        self.reason = reason


class RejectedImage(UnreadableImage):
    """A picture refused by the picture rules or the path rules: status ``rejected``, the
    ``reason`` led by its code (too_small, extreme_aspect, constant, outside_root), e.g.
    ``too_small: 1x1 px ...``."""

    status = "rejected"


def reason_code(reason: str) -> str:
    """The rule a rejection's reason names: ``too_small`` of ``too_small: 1x1 px ...``."""
    return reason.split(":", 1)[0]


def shape_problem(width: int, height: int) -> str | None:
    """The picture rule a ``width`` × ``height`` picture breaks (its reason), or None."""
    if min(width, height) < MIN_PICTURE_SIDE:
        return (
            f"too_small: {width}x{height} px; a picture needs both sides >= {MIN_PICTURE_SIDE} px"
        )
    if max(width, height) > MAX_ASPECT * min(width, height):
        return (
            f"extreme_aspect: {width}x{height} px; the longer side may be at most "
            f"{MAX_ASPECT:g} times the shorter"
        )
    return None


def picture_problem(image: np.ndarray) -> str | None:
    """The picture rule a decoded H×W(×C) picture breaks (its reason, led by its code), or
    None: too small, too elongated, or constant (every pixel one colour)."""
    if image.ndim < 2:
        return f"too_small: an array of shape {image.shape}, not a picture"
    problem = shape_problem(int(image.shape[1]), int(image.shape[0]))
    if problem is None:
        pixels = image.reshape(image.shape[0] * image.shape[1], -1)
        first = pixels[0]
        # the first row settles almost every picture; the whole frame only where it is constant
        # (a per-channel min and max over the frame took 1.8 ms for 256x256 RGB)
        if (pixels[: image.shape[1]] == first).all() and (pixels == first).all():
            colour = pixels[0].tolist()
            colour = colour[0] if len(set(colour)) == 1 else tuple(colour)
            problem = f"constant: every pixel is {colour}; no face to see"
    return problem


def check_picture(image: np.ndarray, path: str | Path) -> np.ndarray:
    """``image`` if it passes :func:`picture_problem`; else :class:`RejectedImage`."""
    problem = picture_problem(image)
    if problem:
        raise RejectedImage(path, problem)
    return image


def load_image(root: str | Path, rel_path: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode ``root/rel_path`` (or a ``csv:<file>#<row>`` picture) to an HxWx3 uint8 RGB array.

    Raises :class:`UnreadableImage` (a :class:`FerError`) for missing, unreadable, truncated or
    non-image files and for images of more than ``max_pixels`` pixels (read from the header,
    before anything is decoded), naming the file and the reason; :class:`RejectedImage` for a
    path that leaves ``root`` (``outside_root``, :func:`fer.paths.confined`) and a picture the
    picture rules refuse (:func:`picture_problem`; its shape read from the header first). An
    empty ``root`` reads ``rel_path`` as given (a path the user typed).
    """
    if rel_path.startswith(CSV_PREFIX):
        return check_picture(_load_csv_pixels(Path(root), rel_path), rel_path)
    path = _confined(root, rel_path)
    problem = file_problem(path)
    if problem:
        raise UnreadableImage(path, problem)
    Image.MAX_IMAGE_PIXELS = None  # ours below replaces PIL's check, naming the size and limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. PIL's DecompressionBombWarning, bad EXIF
            with Image.open(path) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise UnreadableImage(path, _too_big(width, height, max_pixels))
                problem = shape_problem(width, height)
                if problem:
                    raise RejectedImage(path, problem)
                im.load()
                return check_picture(to_rgb_array(im), path)
    except UnidentifiedImageError:
        raise UnreadableImage(path, "not an image file PIL can identify") from None
    except Image.DecompressionBombError as exc:  # PIL's check fired first (e.g. on a frame)
        raise UnreadableImage(path, f"over the limit of {max_pixels:,} pixels ({exc})") from None
    except PermissionError:
        raise UnreadableImage(path, "permission denied (the file cannot be read)") from None
    except OSError as exc:
        if exc.errno is not None:  # the file system's error, not PIL's "image file is truncated"
            raise UnreadableImage(path, f"cannot be read: {exc.strerror}") from None
        raise UnreadableImage(path, f"corrupt or truncated: {exc}") from None
    except (ValueError, SyntaxError) as exc:  # corrupt data
        raise UnreadableImage(path, f"corrupt or truncated: {exc}") from None


def _confined(root: str | Path, rel_path: str) -> Path:
    """``root / rel_path``, or :class:`RejectedImage` (outside_root) when it leaves ``root``."""
    if not str(root):
        return Path(rel_path)
    try:
        return confined(rel_path, root)
    except OutsideRoot:
        reason = f"{OUTSIDE_ROOT}: the path leaves the data root {root}; not read"
        raise RejectedImage(Path(root) / rel_path, reason) from None


def _too_big(width: int, height: int, limit: int) -> str:
    return (
        f"{width}x{height} = {width * height:,} pixels, over the limit of {limit:,} "
        "(preprocess.max_pixels / fer prepare --max-pixels)"
    )


def to_rgb_array(im: Image.Image) -> np.ndarray:
    """Convert a loaded PIL image of any mode to HxWx3 uint8 RGB (alpha dropped, 16-bit scaled)."""
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the picture
        pass
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _high_depth_to_rgb(np.asarray(im))
    if im.mode == "RGB":
        arr = np.asarray(im)
    else:  # L, 1, P, PA, LA, RGBA, CMYK, YCbCr, LAB, HSV ...
        if im.mode == "P" and "transparency" in im.info:
            im = im.convert("RGBA")
        arr = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _high_depth_to_rgb(arr: np.ndarray) -> np.ndarray:
    """16-bit / 32-bit / float grey to 8-bit RGB: ints scaled by 1/257 (0..65535 -> 0..255),
    floats in [0, 1] by 255, other floats clipped."""
    if arr.dtype.kind == "f":
        scale = 255.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 1.0
        grey = np.clip(np.nan_to_num(arr) * scale, 0, 255)
    else:
        grey = np.clip(arr.astype(np.float64) / 257.0, 0, 255)
    grey = np.rint(grey).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _load_csv_pixels(root: Path, rel_path: str) -> np.ndarray:
    spec = rel_path[len(CSV_PREFIX) :]
    csv_rel, sep, row_text = spec.rpartition("#")
    if not sep or not row_text.isdigit():
        raise UnreadableImage(rel_path, "expected csv:<csv relative path>#<0-based data row>")
    pixels = _csv_pixel_column(str(_confined(root, csv_rel)))
    row = int(row_text)
    if row >= len(pixels):
        raise UnreadableImage(rel_path, f"row {row} beyond the csv's {len(pixels)} data rows")
    try:
        values = np.array(pixels[row].split(), dtype=np.int64)
    except ValueError:
        raise UnreadableImage(rel_path, "pixels are not space-separated integers") from None
    side = int(round(len(values) ** 0.5))
    if side * side != len(values) or side == 0 or values.min() < 0 or values.max() > 255:
        raise UnreadableImage(
            rel_path, f"expected a square of ints 0..255 (2304 for 48x48), got {len(values)}"
        )
    grey = values.astype(np.uint8).reshape(side, side)
    return np.repeat(grey[..., None], 3, axis=2)


@lru_cache(maxsize=4)
def _csv_pixel_column(csv_path: str) -> list[str]:
    """The ``pixels`` column of a csv, parsed once per process."""
    import pandas as pd

    problem = file_problem(csv_path)
    if problem:
        raise UnreadableImage(csv_path, f"the csv file: {problem}")
    try:
        frame = pd.read_csv(csv_path, usecols=["pixels"], dtype=str, keep_default_na=False)
    except ValueError as exc:
        raise UnreadableImage(csv_path, f"expected a 'pixels' column ({exc})") from None
    return frame["pixels"].tolist()
