"""Image decoding (fer.data.io): every mode becomes HxWx3 uint8 RGB; bad files raise
UnreadableImage with a reason; csv pixel rows decode."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fer.data.io import UnreadableImage, load_image, to_rgb_array
from fer.errors import FerError


def _save(tmp_path, name, image, **kw):
    image.save(tmp_path / name, **kw)
    return name


def _decode(tmp_path, name):
    """The file's pixels as load_image converts them, whatever the picture rules (these small
    test pictures are below their minimum side: tests/hostile/ covers the rules)."""
    with Image.open(tmp_path / name) as im:
        im.load()
        return to_rgb_array(im)


def test_grey_png_becomes_three_equal_channels(tmp_path):
    grey = np.arange(48 * 48, dtype=np.uint32).reshape(48, 48) % 256
    name = _save(tmp_path, "g.png", Image.fromarray(grey.astype(np.uint8), "L"))
    out = load_image(tmp_path, name)
    assert out.shape == (48, 48, 3) and out.dtype == np.uint8
    assert np.array_equal(out[..., 0], grey) and np.array_equal(out[..., 2], grey)


def test_palette_png_keeps_palette_colours(tmp_path):
    im = Image.new("P", (8, 6))
    im.putpalette([0, 0, 0, 200, 10, 30] + [0] * 762)
    im.paste(1, (0, 0, 4, 6))
    out = _decode(tmp_path, _save(tmp_path, "p.png", im))
    assert out.shape == (6, 8, 3)
    assert tuple(out[0, 0]) == (200, 10, 30) and tuple(out[0, 7]) == (0, 0, 0)


def test_rgba_alpha_is_dropped_like_imread(tmp_path):
    rgba = np.zeros((5, 7, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 90, 0  # fully transparent red-ish pixels keep their colour
    out = _decode(tmp_path, _save(tmp_path, "a.png", Image.fromarray(rgba, "RGBA")))
    assert out.shape == (5, 7, 3) and out[0, 0, 0] == 90


def test_grey_alpha_and_cmyk(tmp_path):
    la = Image.fromarray(np.full((4, 4, 2), 77, np.uint8), "LA")
    assert tuple(_decode(tmp_path, _save(tmp_path, "la.png", la))[1, 1]) == (77, 77, 77)
    cmyk = Image.new("CMYK", (6, 6), (0, 255, 255, 0))  # pure red in CMYK
    out = _decode(tmp_path, _save(tmp_path, "c.jpg", cmyk, quality=95))
    assert out.shape == (6, 6, 3) and out[3, 3, 0] > 200 and out[3, 3, 1] < 60


def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path):
    deep = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    im = Image.fromarray(deep)
    out = _decode(tmp_path, _save(tmp_path, "d.png", im))
    assert out.dtype == np.uint8 and list(out[0, :, 0]) == [0, 100, 255]


def test_truncated_file_is_unreadable(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "t.jpg")
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableImage, match="t.jpg.*truncated"):
        load_image(tmp_path, "t.jpg")


def test_non_image_and_missing_files_are_unreadable(tmp_path):
    (tmp_path / "notes.png").write_text("this is not a picture\n")
    with pytest.raises(UnreadableImage, match="notes.png.*not an image") as info:
        load_image(tmp_path, "notes.png")
    assert isinstance(info.value, FerError) and info.value.reason
    with pytest.raises(UnreadableImage, match="file not found"):
        load_image(tmp_path, "absent.png")


def test_csv_pixels_rows(tmp_path):
    rows = [np.arange(2304) % 256, (np.arange(2304) * 7) % 256]
    lines = ["emotion,pixels,Usage"] + [f"3,{' '.join(map(str, r))},Training" for r in rows]
    (tmp_path / "fer2013.csv").write_text("\n".join(lines) + "\n")
    out = load_image(tmp_path, "csv:fer2013.csv#1")
    assert out.shape == (48, 48, 3) and np.array_equal(out[..., 1].ravel(), rows[1])
    with pytest.raises(UnreadableImage, match="row 2 beyond"):
        load_image(tmp_path, "csv:fer2013.csv#2")
    with pytest.raises(UnreadableImage, match="csv:<csv relative path>"):
        load_image(tmp_path, "csv:fer2013.csv")
