"""dlib's landmark predictors in NumPy (fer/preprocess/shapes.py): the same integer points as
``dlib.shape_predictor`` on real faces, boxes partly outside the image included, for both models
fer uses, one face at a time or batched; the decoded model cached and re-decoded where the
cache entry is damaged; malformed model files refused with their name."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from fer.data.io import load_image
from fer.errors import FerError
from fer.preprocess import shapes
from fer.preprocess.align import FIVE_POINT_MODEL, predictor_path

dlib = pytest.importorskip("dlib")


def _faces(shared_data):
    """Grey real faces of several sizes with face boxes of several placements: CK+48 faces
    enlarged to 192 px and FER2013 test faces enlarged to 150 x 120 (non-square)."""
    rng = np.random.default_rng(0)
    images = []
    ck = sorted((shared_data / "ckplus48").rglob("*.png"))[::25]
    fer = sorted((shared_data / "fer2013" / "test").rglob("*.jpg"))[::200][: len(ck)]
    for path, size in [(p, (192, 192)) for p in ck] + [(p, (120, 150)) for p in fer]:
        rgb = load_image(path.parent, path.name)
        grey = np.asarray(Image.fromarray(rgb).convert("L").resize(size, Image.BILINEAR))
        h, w = grey.shape
        for _ in range(2):
            x, y = rng.integers(-15, w // 4), rng.integers(-15, h // 4)
            side = int(rng.integers(w // 2, w + 20))
            images.append((grey, (int(x), int(y), int(x) + side, int(y) + side)))
    return images


@pytest.mark.parametrize("model", [None, FIVE_POINT_MODEL], ids=["68", "5"])
def test_points_equal_dlibs_on_real_faces(shared_data, model):
    path = predictor_path(model) if model else predictor_path()
    theirs = dlib.shape_predictor(str(path))
    ours = shapes.load(path)
    faces = _faces(shared_data)
    assert len(faces) >= 60
    expected = np.array(
        [[(p.x, p.y) for p in theirs(g, dlib.rectangle(*box)).parts()] for g, box in faces]
    )
    batched = ours.many([g for g, _ in faces], [box for _, box in faces])
    assert batched.dtype == np.int64 and batched.shape == expected.shape
    assert np.array_equal(batched, expected)
    # in chunks too: the leaves are summed in groups of faces, split differently then
    chunked = [
        ours.many([g for g, _ in faces[i : i + 16]], [b for _, b in faces[i : i + 16]])
        for i in range(0, len(faces), 16)
    ]
    assert np.array_equal(np.concatenate(chunked), expected)
    for (grey, box), points in list(zip(faces, expected, strict=True))[:8]:
        assert np.array_equal(ours(grey, box), points)
    # some feature pixels fell outside the image (read as 0, as dlib does)
    assert any(box[0] < 0 or box[2] >= g.shape[1] for g, box in faces)
    assert ours.many([], []).shape == (0, ours.points, 2)
    with pytest.raises(ValueError, match="uint8"):
        ours(faces[0][0].astype(float), faces[0][1])


def test_decoded_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "five.dat"
    shutil.copy(predictor_path(FIVE_POINT_MODEL), model)
    first = shapes.load(model)
    entry = shapes._cache_folder(model)
    assert sorted(p.name for p in entry.iterdir()) == sorted(
        [f"{n}.npy" for n in shapes.NAMES] + ["source.json"]
    )
    again = shapes.load(model)
    assert isinstance(again.leaves, np.memmap)  # read back, not decoded again
    for name in shapes.NAMES:
        assert np.array_equal(getattr(first, name), getattr(again, name))
    grey = np.asarray(Image.new("L", (64, 64), 90))
    # a damaged entry (a truncated array) is decoded again and replaced
    leaves = entry / "leaves.npy"
    size = leaves.stat().st_size
    os.truncate(leaves, size // 2)
    repaired = shapes.load(model)
    assert leaves.stat().st_size == size
    assert np.array_equal(repaired(grey, (5, 5, 60, 60)), first(grey, (5, 5, 60, 60)))
    # an entry whose arrays are whole but wrong (an index past the shape, another dtype) too
    anchor = np.load(entry / "anchor.npy")
    np.save(entry / "anchor.npy", anchor + 100)
    np.save(entry / "thresh.npy", np.load(entry / "thresh.npy").astype(np.float64))
    shapes.load(model)
    assert np.array_equal(np.load(entry / "anchor.npy"), anchor)
    assert np.load(entry / "thresh.npy").dtype == np.float32
    # a new model file at the same path is a new entry, and the old one (stale) is removed;
    # another path's entry (another environment sharing the cache) stays
    other = tmp_path / "other" / "five.dat"
    other.parent.mkdir()
    shutil.copy(model, other)
    shapes.load(other)
    os.utime(model, ns=(1, 1))
    shapes.load(model)
    assert shapes._cache_folder(model) != entry and shapes._cache_folder(model).is_dir()
    assert not entry.exists() and shapes._cache_folder(other).is_dir()
    assert not list((tmp_path / "cache" / "landmarks").glob(".*"))  # no partial folder left


def test_unwritable_cache_still_predicts_and_says_so(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FER_CACHE", str(blocker))
    predictor = shapes.load(predictor_path(FIVE_POINT_MODEL))
    assert predictor.points == 5
    line = capsys.readouterr().err.strip()
    assert "cannot keep the decoded landmark model" in line and "FER_CACHE" in line
    assert str(blocker) in line and len(line.splitlines()) == 1


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[: len(b) // 2], "file ends early"),
        (lambda b: b + b"\x01\x00", "trailing bytes"),
        (lambda b: b"\x01\x02" + b[2:], "version other than 1"),
        (lambda b: b"", "file ends early"),
        (lambda b: b"\x7f" * 64, "bad integer"),
    ],
    ids=["truncated", "trailing", "version", "empty", "garbage"],
)
def test_malformed_model_files_named(tmp_path, monkeypatch, damage, message):
    monkeypatch.setenv("FER_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "model.dat"
    bad.write_bytes(damage(predictor_path(FIVE_POINT_MODEL).read_bytes()))
    with pytest.raises(FerError, match=message) as caught:
        shapes.load(bad)
    assert str(bad) in str(caught.value)
    assert not (tmp_path / "cache" / "landmarks").exists() or not any(
        (tmp_path / "cache" / "landmarks").iterdir()
    )
    with pytest.raises(FerError, match="cannot read"):
        shapes.load(tmp_path / "missing.dat")
