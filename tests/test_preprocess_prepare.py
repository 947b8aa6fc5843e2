"""``fer prepare`` end to end on synthetic edge cases: MTCNN on skimage's astronaut, grey /
palette / RGBA / 16-bit copies, two faces, no face, a truncated and a non-image file; the
prepared layout of docs/design.md, idempotency, the pool path, and raw data left untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fer.cli import main as fer_main
from fer.data.manifest import read_manifest
from fer.errors import FerError
from fer.preprocess import prepare
from tests.fakes import write_manifest

skdata = pytest.importorskip("skimage.data")
pytest.importorskip("dlib")

FACE, ROI = 112, 32
EXPECTED = {  # file -> expected status
    "face.png": "ok",
    "grey.png": "ok",
    "palette.png": "ok",
    "rgba.png": "ok",
    "deep16.png": "ok",
    "two.png": "ok",
    "blank.png": "no_face",
    "trunc.jpg": "unreadable",
    "notes.png": "unreadable",
}


def digest(folder: Path) -> str:
    """Names, sizes, mtimes and bytes of every file under ``folder``."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        st = p.stat()
        h.update(f"{p.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """The edge-case image folder."""
    root = tmp_path_factory.mktemp("raw")
    astro = skdata.astronaut()
    Image.fromarray(astro).save(root / "face.png")
    crop = Image.fromarray(astro[0:300, 80:380])
    grey = crop.convert("L")
    grey.save(root / "grey.png")
    crop.quantize(64).save(root / "palette.png")
    crop.convert("RGBA").save(root / "rgba.png")
    Image.fromarray(np.asarray(grey).astype(np.uint16) * 257).save(root / "deep16.png")
    canvas = Image.new("RGB", (520, 360), (90, 110, 100))
    head = Image.fromarray(astro[30:230, 130:320])  # one face, 190x200
    canvas.paste(head, (60, 80))
    canvas.paste(head.resize((95, 100)), (400, 20))  # a second, smaller, off-centre face
    canvas.save(root / "two.png")
    noise = np.random.default_rng(0).normal(128, 3, (200, 200)).clip(0, 255).astype(np.uint8)
    Image.fromarray(noise).save(root / "blank.png")
    Image.new("L", (48, 48), 128).save(root / "flat.png")  # constant: rejected
    plain = np.full((48, 48), 128, np.uint8)
    plain[0, 0] = 129  # featureless but not constant: for `none`/`given`, no landmarks
    Image.fromarray(plain).save(root / "plain.png")
    Image.fromarray(astro).save(root / "trunc.jpg", quality=90)
    data = (root / "trunc.jpg").read_bytes()
    (root / "trunc.jpg").write_bytes(data[: len(data) // 3])
    (root / "notes.png").write_text("not an image\n")
    return root


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory):
    """`fer prepare --detector mtcnn` on the edge cases; returns (out, raw digest before)."""
    before = digest(raw)
    work = tmp_path_factory.mktemp("work")
    manifest = write_manifest(work / "edge", list(EXPECTED))
    out = work / "edge" / "prepared"
    argv = [
        "prepare",
        "--manifest",
        str(manifest),
        "--root",
        str(raw),
        "--out",
        str(out),
        "--detector",
        "mtcnn",
        "--device",
        "cpu",
        "--workers",
        "1",
        "--chip-size",
        str(FACE),
        "--crop-size",
        str(ROI),
        "--contact-sheet-n",
        "9",
    ]
    assert fer_main(argv) == 0
    return out, before, argv


def test_statuses_and_face_counts(prepared):
    out, _, _ = prepared
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    assert dict(zip(index["path"], index["status"], strict=True)) == EXPECTED
    by_path = index.set_index("path")
    assert by_path.loc["two.png", "n_faces"] == 2
    assert by_path.loc["face.png", "n_faces"] == 1
    assert (index["has_roi"] == (index["status"] == "ok").astype(int)).all()
    boxes = by_path.loc["two.png", "roi_boxes"].split(";")
    assert len(boxes) == 3
    chip_eye = [int(v) for v in boxes[0].split(",")]
    assert 0 <= chip_eye[0] < chip_eye[2] <= FACE and 0 <= chip_eye[1] < chip_eye[3] <= FACE


def test_layout_and_arrays(prepared):
    from fer.prepared import open_prepared

    out, _, _ = prepared
    data = open_prepared(out)
    n = len(EXPECTED)
    assert data.faces.shape == (n, FACE, FACE, 3) and data.faces.dtype == np.uint8
    assert all(a.shape == (n, ROI, ROI, 3) for a in data.rois.values())
    assert data.landmarks.shape == (n, 68, 2) and data.landmarks.dtype == np.float32
    status = data.index["status"].to_numpy()
    ok, unreadable = status == "ok", status == "unreadable"
    assert np.isfinite(data.landmarks[ok]).all() and np.isnan(data.landmarks[~ok]).all()
    assert (data.landmarks[ok] >= -FACE * 0.1).all() and (data.landmarks[ok] < FACE * 1.1).all()
    assert data.faces[unreadable].max() == 0 and data.faces[~unreadable].std() > 10
    assert all(a[ok].std() > 5 and a[~ok].max() == 0 for a in data.rois.values())
    assert data.params["chip_size"] == FACE and data.params["detector"] == "mtcnn"
    # grey, palette, rgba and 16-bit copies of one picture give nearly the same chip
    rows = {p: i for i, p in enumerate(data.index["path"])}
    grey, deep = data.faces[rows["grey.png"]].astype(int), data.faces[rows["deep16.png"]]
    assert np.abs(grey - deep).mean() < 2
    assert Image.open(out / "contact_sheet.png").format == "PNG"


def test_summary_counts(prepared):
    out, _, _ = prepared
    summary = json.loads((out / "summary.json").read_text())
    assert summary["classes"] == ["happy", "sad"] and summary["dataset"] == "edge"
    assert summary["synthetic"] is True
    assert summary["counts_by_status"] == {
        "ok": 6,
        "no_face": 1,
        "landmarks_failed": 0,
        "roi_empty": 0,
        "unreadable": 2,
        "rejected": 0,
    }
    total = sum(sum(v.values()) for v in summary["counts_by_status_class"].values())
    assert total == len(EXPECTED)
    assert summary["counts_by_split"]["test"]["ok"] == 6
    assert summary["roi_coverage"] == pytest.approx(6 / 7)
    assert summary["n_multi_face"] == 1 and summary["faces_per_s"] > 0


def test_raw_data_untouched_and_rerun_is_a_no_op(prepared, raw, capsys):
    out, before, argv = prepared
    assert digest(raw) == before
    stamp = (out / "faces.npy").stat().st_mtime_ns
    assert fer_main(argv) == 0
    assert "up to date" in capsys.readouterr().err
    assert (out / "faces.npy").stat().st_mtime_ns == stamp
    assert not list(out.parent.glob(".prepared.*"))  # no temp folder left behind


def test_pool_matches_single_process_and_given_boxes(raw, tmp_path):
    files = ["face.png", "grey.png", "rgba.png", "plain.png", "flat.png", "notes.png"]
    manifest = write_manifest(tmp_path / "m", files)
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    table.loc[table["path"] == "face.png", "box"] = "175,76,90,90"  # dlib's astronaut box
    table.to_csv(manifest, index=False)
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"p{workers}"
        argv = [
            "prepare",
            "--manifest",
            str(manifest),
            "--root",
            str(raw),
            "--out",
            str(out),
            "--detector",
            "given",
            "--workers",
            str(workers),
            "--batch-size",
            "2",
            "--chip-size",
            str(FACE),
            "--crop-size",
            str(ROI),
            "--keep-original",
        ]
        assert fer_main(argv) == 0
        outs.append(out)
    a, b = (pd.read_csv(o / "index.csv", keep_default_na=False) for o in outs)
    pd.testing.assert_frame_equal(a, b)
    statuses = ["ok", "ok", "ok", "landmarks_failed", "rejected", "unreadable"]
    assert a["status"].tolist() == statuses  # flat.png is constant: refused, never a model input
    original = np.load(outs[0] / "original.npy")
    assert original.shape == (6, FACE, FACE, 3) and (original[4] == 0).all()
    assert original[4].max() == 0 and original[0].std() > 10  # unreadable -> zeros
    for name in ("faces", "eye", "landmarks", "original"):
        assert np.array_equal(
            np.load(outs[0] / f"{name}.npy"), np.load(outs[1] / f"{name}.npy"), equal_nan=True
        )


def test_bad_manifests_are_fer_errors(tmp_path, raw):
    manifest = write_manifest(tmp_path / "m", ["face.png"])
    (tmp_path / "m" / "manifest.summary.json").unlink()
    with pytest.raises(FerError, match="manifest.summary.json"):
        read_manifest(manifest)
    (tmp_path / "bad.csv").write_text("file,label\nx.png,1\n")
    (tmp_path / "manifest.summary.json").write_text('{"classes": ["happy"]}')
    with pytest.raises(FerError, match="bad.csv: missing columns"):
        read_manifest(tmp_path / "bad.csv")
    assert (
        fer_main(
            [
                "prepare",
                "--manifest",
                str(tmp_path / "nope.csv"),
                "--root",
                str(raw),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )


def test_manifest_csv_reading(tmp_path):
    """The manifest is read as pandas read it (strings kept as written, a BOM, blank lines and
    quoted commas), each bad value named with its csv line, and a malformed csv refused whole."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "manifest.summary.json").write_text('{"classes": ["happy", "sad"]}')
    manifest = folder / "manifest.csv"
    header = "path,label,label_name,split,fold,extra\n"
    manifest.write_text(
        "\ufeff" + header + '"a,b.png",1,happy,train,07,x\n\n' + "c.png,2,sad,test,-1,\n",
        encoding="utf-8",
    )
    rows, summary, digest = read_manifest(manifest)
    assert [r["path"] for r in rows] == ["a,b.png", "c.png"]
    assert rows[0]["fold"] == "07" and rows[0]["extra"] == "x" and rows[1]["extra"] == ""
    assert rows[0]["group"] == "" and rows[0]["box"] == ""  # optional columns, their defaults
    assert list(rows[0])[:6] == ["path", "label", "label_name", "split", "fold", "extra"]
    assert summary["classes"] == ["happy", "sad"]
    assert digest == hashlib.sha256(manifest.read_bytes()).hexdigest()
    wrong = {
        "c.png,2,sad,test,-1,\n\nd.png,5,sad,test,-1,\n": r"line 4: label '5'; expected the canon",
        "c.png,2,sad,tset,-1,\n": r"line 2: split 'tset'; expected one of train, val, test",
        "c.png,2,sad,test,1000,\n": r"line 2: fold '1000'; expected -1 or a fold number",
        "c.png,2,sad,test,-1\n": r"unreadable manifest \(line 2: 5 fields, expected 6\)",
        "c.png,2,sad,test,-1,,\n": r"unreadable manifest \(line 2: 7 fields, expected 6\)",
    }
    for body, message in wrong.items():
        manifest.write_text(header + body)
        with pytest.raises(FerError, match=r"manifest\.csv(, |: )" + message):
            read_manifest(manifest)
    manifest.write_text("path,label,label_name,split,path\nc.png,2,sad,test,d.png\n")
    with pytest.raises(FerError, match=r"unreadable manifest \(a column named twice"):
        read_manifest(manifest)
    manifest.write_bytes(header.encode() + b"\xff\xfe,4,sad,test,-1,\n")
    with pytest.raises(FerError, match=r"manifest\.csv: unreadable manifest \(.utf-8"):
        read_manifest(manifest)


def test_prepare_starts_without_pandas_or_torch():
    """`fer prepare`'s modules import neither (pandas took 0.3 s of its start, torch 1.5 s)."""
    import subprocess
    import sys

    code = (
        "import sys, fer.cli, fer.preprocess.prepare;"
        "print(sorted(m for m in ('pandas', 'torch', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_given_landmarks_and_dlib_detector(raw):
    """Publisher landmarks skip the first pass and land where the predictor's would; the dlib
    detector (upsample 0, then 1) finds the astronaut once."""
    from fer.preprocess.align import Aligner
    from fer.preprocess.detect import DlibDetector, GivenDetector
    from fer.preprocess.pipeline import Processor, Settings

    astro = skdata.astronaut()
    found = DlibDetector().detect([astro], [{}])[0]
    assert found.n_faces == 1 and 170 <= found.rect[0] <= 185 and 75 <= found.rect[1] <= 90
    aligner = Aligner(FACE, 0.25)
    own = aligner.align(astro, found.rect)
    assert own.status == "ok" and own.disagreement < 0.1
    rows = [{"path": "face.png", "box": "175,76,90,90"}]
    rows[0]["landmarks"] = ";".join(
        f"{v:.1f}" for v in aligner.landmarks(astro, _rect(found)).ravel()
    )
    given = GivenDetector().detect([astro], rows)[0]
    assert given.points.shape == (68, 2)
    chunk = Processor(Settings(str(raw), "given", FACE, ROI)).run(rows)
    assert chunk.records[0]["status"] == "ok"
    assert np.abs(chunk.landmarks[0] - own.landmarks).mean() < 2.0
    rows[0]["landmarks"] = "1;2;3"  # malformed publisher landmarks: the predictor runs instead
    assert Processor(Settings(str(raw), "given", FACE, ROI)).run(rows).records[0]["status"] == "ok"


def _rect(found):
    import dlib

    return dlib.rectangle(*(int(round(v)) for v in found.rect))


def test_chunks_keep_every_worker_busy():
    """At least 4 tasks per worker when the batch size would give fewer (213 rows in chunks of
    32 left one of 2 workers a third more work); one process keeps the batch size."""
    assert prepare.chunk_size(213, 2, 32) == 27
    assert prepare.chunk_size(10_000, 2, 32) == 32
    assert prepare.chunk_size(213, 1, 32) == 32
    assert prepare.chunk_size(3, 8, 32) == 1 and prepare.chunk_size(0, 2, 32) == 1
