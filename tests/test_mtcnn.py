"""fer's MTCNN (fer/preprocess/mtcnn.py) against facenet-pytorch's, piece by piece and on real
faces: the batched area crops equal ``F.interpolate(..., mode="area")`` bit for bit, the NMS equal
torchvision's and facenet-pytorch's, and the boxes facenet-pytorch's ``MTCNN.detect`` finds."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fer.cli import main as fer_main
from fer.data.io import load_image
from fer.errors import FerError
from fer.preprocess import mtcnn
from fer.preprocess.mtcnn import min_face_for, parse_min_face


def test_area_resampling_equals_interpolate_bit_for_bit():
    gen = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (3, 70, 90, 3), generator=gen, dtype=torch.uint8)
    images = raw.permute(0, 3, 1, 2).float()
    table = mtcnn.summed_area(raw.numpy())
    spans = [(0, 70, 0, 90), (5, 6, 7, 8), (3, 40, 10, 11), (10, 69, 2, 88), (0, 17, 30, 33)]
    image = np.array([0, 1, 2, 1, 0])
    box = tuple(np.array(v) for v in zip(*spans, strict=True))
    for size in (24, 48):
        ours = mtcnn.area_crops(table, image, box, size)
        for k, (y0, y1, x0, x1) in enumerate(spans):
            crop = images[image[k] : image[k] + 1, :, y0:y1, x0:x1]
            ref = (F.interpolate(crop, size=(size, size), mode="area") - 127.5) * 0.0078125
            assert np.array_equal(ours[k], ref[0].permute(1, 2, 0).numpy()), (size, spans[k])
    levels = [(int(70 * s + 1), int(90 * s + 1)) for s in mtcnn.pyramid(70, 90, 12)]
    for size in levels + [(70, 90), (12, 15), (69, 13)]:
        ref = (F.interpolate(images, size=size, mode="area") - 127.5) * 0.0078125
        assert np.array_equal(mtcnn.area_level(table, *size), ref.permute(0, 2, 3, 1).numpy())


def test_numpy_nets_compute_the_torch_nets():
    """The weights read without torch are torch.load's; the NumPy nets give the torch modules'
    outputs to float32 rounding, on odd sizes (ceil-mode pooling overhangs) and a large frame
    (row-blocked convolutions)."""
    from fer.preprocess.mtcnn_nets import NET_NAMES, NumpyNets, load_weights, weights_folder
    from fer.preprocess.mtcnn_torch import TorchNets

    weights = load_weights()
    for name in NET_NAMES:
        ref = torch.load(weights_folder() / f"{name}.pt", weights_only=True)
        assert sorted(ref) == sorted(weights[name])
        assert all(np.array_equal(ref[k].numpy(), weights[name][k]) for k in ref)
    ours, theirs = NumpyNets(weights), TorchNets("cpu", weights)
    rng = np.random.default_rng(0)
    cases = [("pnet", (3, 31, 47)), ("pnet", (1, 600, 20)), ("rnet", (9, 24, 24))]
    for name, shape in cases + [("onet", (5, 48, 48))]:
        x = rng.uniform(-1, 1, (*shape, 3)).astype(np.float32)
        arg = torch.from_numpy(x).permute(0, 3, 1, 2) if name == "pnet" else x
        for got, want in zip(getattr(ours, name)(x), getattr(theirs, name)(arg), strict=True):
            assert got.shape == want.shape, name
            np.testing.assert_allclose(got, want, rtol=0, atol=2e-6, err_msg=name)


def test_nms_equals_torchvision_and_facenet():
    torchvision = pytest.importorskip("torchvision")
    detect_face = pytest.importorskip("facenet_pytorch.models.utils.detect_face")
    rng = np.random.default_rng(1)
    for trial in range(20):
        n = int(rng.integers(1, 60))
        xy = rng.uniform(0, 80, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (n, 2))], 1).astype(np.float32)
        scores = rng.uniform(0, 1, n).astype(np.float32)
        if trial % 2:  # saturated scores: ties, as the nets give on clear faces
            scores[: n // 2] = 1.0
        ref = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.5)
        assert mtcnn.nms(boxes, scores, 0.5).tolist() == ref.tolist()
        image = rng.integers(0, 3, n)
        both = np.concatenate([boxes, scores[:, None]], 1)
        ref = detect_face.batched_nms_numpy(
            torch.from_numpy(both[:, :4]),
            torch.from_numpy(both[:, 4]),
            torch.from_numpy(image),
            0.7,
            "Min",
        )
        assert mtcnn.batched_nms(both, image, 0.7, "min").tolist() == ref.tolist()


def test_min_face_settings():
    assert [min_face_for("auto", s, s) for s in (48, 256)] == [20, 26]
    assert min_face_for("auto", 576, 720) == 58 and min_face_for(0.15, 576, 720) == 86
    assert min_face_for(30, 48, 48) == 30
    assert mtcnn.pyramid(256, 256, 26)[0] == pytest.approx(12 / 26)
    assert len(mtcnn.pyramid(256, 256, 26)) < len(mtcnn.pyramid(256, 256, 20))
    assert parse_min_face("0.2") == 0.2 and parse_min_face("auto") == "auto"
    for bad in ("5", "1.5", "big", "0"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected 'auto'"):
            parse_min_face(bad)
    for bad in (0, 5, 12.5, "big", None):
        with pytest.raises(FerError, match="expected 'auto'"):
            min_face_for(bad, 10, 10)


def test_fer_prepare_refuses_a_bad_min_face(capsys):
    with pytest.raises(SystemExit):
        fer_main(["prepare", "--manifest", "m.csv", "--root", ".", "--out", "o", "--min-face", "5"])
    assert (
        "argument --min-face: expected 'auto', a whole number of pixels" in capsys.readouterr().err
    )


def test_detecting_on_the_cpu_imports_no_torch():
    """Importing torch costs a second per run: the CPU detector needs none of it."""
    code = (
        "import sys, numpy as np; from fer.preprocess.mtcnn import FastMTCNN;"
        "FastMTCNN().detect(np.zeros((2, 64, 64, 3), np.uint8));"
        "print(sorted(m for m in ('torch', 'torchvision', 'facenet_pytorch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def portraits(shared: Path, n: int, tmp: Path) -> np.ndarray:
    """JAFFE-like 256² portraits (as benchmarks/bench_preprocess.py --portraits makes them)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_preprocess import list_images, make_portraits

    folder = make_portraits(shared / "ckplus48", tmp / "portraits", n)
    return np.stack([load_image(folder, f) for f in list_images(folder, n)])


def fer2013(shared, n: int) -> np.ndarray:
    root = shared / "fer2013" / "test"
    every = sorted(str(p.relative_to(root)) for p in root.glob("*/*.jpg"))
    picks = np.linspace(0, len(every) - 1, n).round().astype(int)
    return np.stack([load_image(root, every[i]) for i in picks])


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def agreement(found_per_image, reference_per_image) -> tuple[int, int, float]:
    """(images whose boxes are equal to 1e-3 px, images with faces, worst IoU of a box with its
    best match); the face count must be equal in every image."""
    exact = with_faces = 0
    worst = 1.0
    for found, ref in zip(found_per_image, reference_per_image, strict=True):
        found = np.zeros((0, 4)) if found is None else np.asarray(found, float)[:, :4]
        ref = np.zeros((0, 4)) if ref is None else np.asarray(ref, float)[:, :4]
        assert len(found) == len(ref)
        if len(found):
            with_faces += 1
            exact += bool(np.abs(np.sort(found, 0) - np.sort(ref, 0)).max() < 1e-3)
            worst = min(worst, min(max(iou(a, b) for b in ref) for a in found))
    return exact, with_faces, worst


@pytest.mark.parametrize("which", ["fer2013", "portraits"])
def test_boxes_agree_with_facenet_pytorch_on_real_faces(shared_data, which, tmp_path):
    """The same number of faces in every image, and boxes as close to facenet-pytorch's as
    facenet-pytorch's are to themselves when only the batch size changes: saturated scores (1.0)
    tie, and which of two near-equal boxes is kept then depends on float noise of the batch."""
    facenet = pytest.importorskip("facenet_pytorch")
    images = (
        fer2013(shared_data, 96) if which == "fer2013" else portraits(shared_data, 48, tmp_path)
    )
    ours = mtcnn.FastMTCNN(min_face=20)
    theirs = facenet.MTCNN(keep_all=True, min_face_size=20)

    def run(detect, batch):
        return [f for k in range(0, len(images), batch) for f in detect(images[k : k + batch])]

    reference = run(lambda b: theirs.detect(b)[0], 16)
    exact, with_faces, worst = agreement(run(ours.detect, 16), reference)
    self_exact, _, self_worst = agreement(run(lambda b: theirs.detect(b)[0], 5), reference)
    assert with_faces >= 0.8 * len(images)
    assert exact >= min(self_exact, 0.95 * with_faces) - 0.05 * with_faces, (exact, self_exact)
    assert worst >= min(self_worst, 0.9) - 0.1, (worst, self_worst)


def test_the_weights_reader_runs_no_code_and_names_a_bad_file(tmp_path):
    """facenet-pytorch's .pt files are read by a restricted unpickler: a pickle naming any other
    callable (here os.system) is refused with the file named, as is a truncated file."""
    import os
    import pickle

    from fer.preprocess.mtcnn_nets import read_state_dict, weights_folder

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    bad = tmp_path / "evil.pt"
    with open(bad, "wb") as f:
        for value in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}, Evil()):
            pickle.dump(value, f, protocol=2)
    refused = r"evil\.pt: unreadable MTCNN weights \(unexpected (posix|os|nt)\.system"
    with pytest.raises(FerError, match=refused):
        read_state_dict(bad)
    cut = tmp_path / "cut.pt"
    cut.write_bytes((weights_folder() / "pnet.pt").read_bytes()[:-100])
    with pytest.raises(FerError, match=r"cut\.pt: unreadable MTCNN weights"):
        read_state_dict(cut)


def test_numpy_prelu_is_torchs_bit_for_bit():
    from fer.preprocess.mtcnn_nets import prelu

    gen = torch.Generator().manual_seed(1)
    for shape in [(2, 7, 9, 10), (5, 128)]:  # a conv map (channels last), a dense layer
        x = torch.randn(shape, generator=gen)
        x[0, ..., :4] = 0.0
        alpha = torch.rand(shape[-1], generator=gen) * 3 - 1  # slopes below 0, 0..1 and over 1
        alpha[:3] = torch.tensor([1.0, 0.0, -0.0])
        want = F.prelu(x.movedim(-1, 1), alpha).movedim(1, -1).numpy()
        assert np.array_equal(prelu(x.numpy().copy(), alpha.numpy()), want)
