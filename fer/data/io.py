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

CSV_PREFIX = "csv:"
# The most pixels an image may have (100 MP: 300 MB decoded); larger ones are `unreadable`.
MAX_PIXELS = 100_000_000


class UnreadableImage(FerError):
    """An image file that exists in the manifest but cannot be decoded (``reason`` says why)."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: unreadable image ({reason})")
        self.path = str(path)
        self.reason = reason


def load_image(root: str | Path, rel_path: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode ``root/rel_path`` (or a ``csv:<file>#<row>`` picture) to an HxWx3 uint8 RGB array.

    Raises :class:`UnreadableImage` (a :class:`FerError`) for missing, unreadable, truncated or
    non-image files and for images of more than ``max_pixels`` pixels (read from the header,
    before anything is decoded), naming the file and the reason.
    """
    if rel_path.startswith(CSV_PREFIX):
        return _load_csv_pixels(Path(root), rel_path)
    path = Path(root) / rel_path
    if not path.is_file():
        raise UnreadableImage(path, "file not found")
    Image.MAX_IMAGE_PIXELS = None  # ours below replaces PIL's check, naming the size and limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. PIL's DecompressionBombWarning, bad EXIF
            with Image.open(path) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise UnreadableImage(path, _too_big(width, height, max_pixels))
                im.load()
                return to_rgb_array(im)
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
    pixels = _csv_pixel_column(str(root / csv_rel))
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

    if not Path(csv_path).is_file():
        raise UnreadableImage(csv_path, "csv file not found")
    try:
        frame = pd.read_csv(csv_path, usecols=["pixels"], dtype=str, keep_default_na=False)
    except ValueError as exc:
        raise UnreadableImage(csv_path, f"expected a 'pixels' column ({exc})") from None
    return frame["pixels"].tolist()
