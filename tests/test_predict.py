"""``fer predict`` / ``fer.Predictor`` on real faces (skimage's astronaut, FER2013 and CK+48 from
../shared/data, a video written from frames, a folder mixing good, corrupt and non-image files):
rows, columns, statuses and reasons, probabilities, the fusion, the output formats, the annotated
copies; and the equality of its predictions with ``fer prepare`` + ``fer evaluate``'s.

The models here are real networks at the demo's small sizes with seeded weights: what is checked is
the path, not the accuracy (the demo workflow's trained pair is tested in test_predict_workflow).
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fer.cli import main as fer_main
from fer.errors import FerError
from fer.fusion import Fusion
from fer.labels import SEVEN
from fer.predict import Predictor
from fer.predict.core import columns, softmax
from fer.predict.models import load_models, write_fusion
from tests.fakes import PRE, make_pair

PRE_SIDES = {"face": PRE["chip_size"], **dict.fromkeys(("eye", "nose", "mouth"), PRE["crop_size"])}

pytest.importorskip("dlib")
av = pytest.importorskip("av")
skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    return make_pair(tmp_path_factory.mktemp("models") / "demo")


def write_video(path: Path, n: int = 12, rate: int = 10) -> Path:
    """An H.264 clip of ``n`` frames panning across the astronaut's face."""
    from PIL import Image

    face = skdata.astronaut()
    out = av.open(str(path), "w")
    stream = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=rate)
    stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p"
    for k in range(n):
        im = np.asarray(Image.fromarray(face).crop((90 + 2 * k, 0, 346 + 2 * k, 256)))
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(im))):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, shared_data) -> dict:
    """A mixed folder (two real faces, a truncated PNG, a text file, a nested video) and a few
    single files."""
    root = tmp_path_factory.mktemp("inputs")
    mixed = root / "mixed"
    (mixed / "clips").mkdir(parents=True)
    happy = sorted((shared_data / "fer2013" / "test" / "happy").iterdir())[:2]
    for src in happy:
        shutil.copy(src, mixed / src.name)
    good = (shared_data / "ckplus48" / "surprise").iterdir().__next__()
    (mixed / "broken.png").write_bytes(good.read_bytes()[:200])
    (mixed / "notes.txt").write_text("not a picture\n")
    write_video(mixed / "clips" / "pan.mp4")
    return {"mixed": mixed, "ckplus": good, "happy": happy}


def test_rows_columns_statuses_and_fusion(pair, inputs):
    predictor = Predictor.from_dir(pair, device="cpu", batch_size=4, progress=False)
    astronaut = skdata.astronaut()
    table = predictor.predict([astronaut, inputs["mixed"], inputs["ckplus"], "missing.jpg"])
    assert list(table.columns) == columns(["global", "roi", "fused"], list(SEVEN))
    # 1 array + (2 faces + broken + notes + 12 video frames) + 1 CK+48 + 1 missing
    assert len(table) == 1 + 16 + 1 + 1
    by_file = table.groupby("file").size()
    video = table[table.file.str.endswith("pan.mp4")]
    assert len(video) == 12 and list(video.frame) == list(range(12))
    assert np.allclose(video.time_s, np.arange(12) / 10)
    bad = table.set_index(table.file.map(lambda f: Path(f).name))
    assert bad.loc["broken.png", "status"] == "unreadable"
    assert "corrupt or truncated" in bad.loc["broken.png", "reason"]
    assert bad.loc["notes.txt", "reason"] == "neither an image nor a video fer can decode"
    assert bad.loc["missing.jpg", "reason"] == "file not found"
    assert (by_file == 1).sum() == len(by_file) - 1  # every still is one row
    found = table[table.status.isin(["ok", "no_roi", "no_face"])]
    assert len(found) == 16 and (table.status == "ok").sum() >= 14
    assert table.loc[0, "status"] == "ok" and table.loc[0, "score"] > 0.99
    assert table.loc[0, "file"] == "<array 0>"
    x1, y1, x2, y2 = table.loc[0, ["x1", "y1", "x2", "y2"]]
    assert 150 < x1 < 200 and 60 < y1 < 110 and 250 < x2 < 290 and 150 < y2 < 200
    for arch in ("global", "fused"):
        p = found[[f"{arch}_p_{c}" for c in SEVEN]].to_numpy()
        assert np.allclose(p.sum(1), 1.0)
        assert (found[f"{arch}_label"] == np.array(SEVEN)[p.argmax(1)]).all()
    ok = found[found.status == "ok"]
    p_g, p_r, p_f = (
        ok[[f"{a}_p_{c}" for c in SEVEN]].to_numpy() for a in ("global", "roi", "fused")
    )
    # log-probabilities are logits up to a per-row constant, which softmax ignores
    assert np.allclose(p_f, softmax(0.55 * np.log(p_r) + 0.45 * np.log(p_g)), atol=1e-6)
    rest = found[found.status != "ok"]
    assert rest.roi_label.eq("").all() and (rest.fused_label == rest.global_label).all()
    unreadable = table[table.status == "unreadable"]
    assert unreadable.fused_label.eq("").all() and unreadable.global_p_happy.isna().all()


def test_all_faces_and_the_largest_first(pair, tmp_path):
    from PIL import Image

    face = Image.fromarray(skdata.astronaut()).crop((120, 30, 330, 240))
    both = Image.new("RGB", (520, 260), (200, 200, 200))
    both.paste(face, (10, 25))
    both.paste(face.resize((150, 150)), (330, 55))
    predictor = Predictor.from_dir(pair, device="cpu", all_faces=True, progress=False)
    every = predictor.predict(np.asarray(both))
    assert list(every.face) == [0, 1] and (every.n_faces == 2).all()
    assert every.x1[0] < 260 < every.x1[1]  # the larger face first
    largest = Predictor.from_dir(pair, device="cpu", progress=False).predict(np.asarray(both))
    assert len(largest) == 1
    pd.testing.assert_frame_equal(largest, every.iloc[:1])
    from fer.predict.sources import in_memory_name

    both.save(tmp_path / "both.png")  # a PIL image is named by its file, or as one
    assert in_memory_name(Image.open(tmp_path / "both.png"), 3) == str(tmp_path / "both.png")
    assert (
        in_memory_name(both, 3) == "<PIL image 3>" and in_memory_name(np.zeros(2), 3) == "<array 3>"
    )


def test_worker_processes_give_the_one_process_table(pair, inputs):
    """Faces found in spawned workers, ahead of the networks, give the table found in one
    process: the same rows in the same order, statuses, boxes and probabilities, every face of
    a picture included; workers that wait on a batch never reorder it."""
    pictures = [skdata.astronaut(), inputs["mixed"], inputs["ckplus"], "missing.jpg"]
    tables = []
    for workers in (0, 2):
        with Predictor.from_dir(
            pair, device="cpu", batch_size=3, all_faces=True, progress=False, workers=workers
        ) as predictor:
            assert predictor.finder.workers == workers
            tables.append(predictor.predict(pictures))
    pd.testing.assert_frame_equal(*tables)
    assert len(tables[0]) == 19 and set(tables[0].status) >= {"ok", "unreadable"}


def test_workers_started_outside_a_main_guard_are_named_as_the_cause(pair, tmp_path):
    """A Python script that starts workers at import time (no ``if __name__ == "__main__":``)
    makes each spawned worker start them again, which multiprocessing refuses: one line says
    so, not that a worker was killed."""
    import subprocess
    import sys

    from PIL import Image

    Image.fromarray(skdata.astronaut()).save(tmp_path / "astronaut.png")
    script = tmp_path / "label.py"
    script.write_text(
        "from fer import Predictor\n"
        "from fer.errors import FerError\n"
        f"predictor = Predictor.from_dir({str(pair)!r}, device='cpu', workers=1, progress=False)\n"
        "try:\n"
        f"    predictor.predict([{str(tmp_path / 'astronaut.png')!r}])\n"
        "except FerError as exc:\n"
        "    print('ERROR', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert "ERROR the preprocessing workers could not start" in done.stdout, done.stderr[-2000:]
    assert 'under `if __name__ == "__main__":`' in done.stdout


def test_auto_workers_one_per_core_up_to_four_and_none_with_nothing_to_overlap():
    """--workers auto: one per core (at the demo's sizes two workers on 2 cores scored 1.49x
    one worker's images/s; bench_predict.py), at most four; none without a detector, with MTCNN
    on a GPU, or on one core."""
    from fer.predict.pool import auto_workers
    from fer.preprocess.pipeline import Settings

    cpu = Settings(root=".")
    assert [auto_workers(cpu, n) for n in (1, 2, 3, 4, 8, 64)] == [0, 2, 3, 4, 4, 4]
    assert auto_workers(Settings(root=".", detector="none"), 8) == 0
    assert auto_workers(Settings(root=".", device="cuda"), 8) == 0


def test_a_worker_that_dies_ends_the_run_in_one_line_without_a_table(
    pair, inputs, tmp_path, monkeypatch, capsys
):
    import os
    import signal

    from fer.predict.core import Predictor as Core

    scored = Core._batch

    def kill_workers_first(self, *args):  # the networks score a batch; the workers are killed
        for pid in list(self.finder.pool._processes):
            os.kill(pid, signal.SIGKILL)
        return scored(self, *args)

    monkeypatch.setattr(Core, "_batch", kill_workers_first)
    out = tmp_path / "out" / "t.csv"
    out.parent.mkdir()
    video = inputs["mixed"] / "clips" / "pan.mp4"
    argv = ["predict", str(video), "--models", str(pair), "--device", "cpu", "--no-progress"]
    argv += ["--workers", "1", "--batch-size", "2", "--out", str(out)]
    assert fer_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "error: a preprocessing worker died (killed, or out of memory); the table was not "
        "written: run again, or with --workers 0"
    )
    assert list(out.parent.iterdir()) == []  # no table, no staged leftover
    capsys.readouterr()
    with pytest.raises(SystemExit):
        fer_main([*argv[:-4], "--workers", "-1"])
    assert "argument --workers: expected 'auto' or an integer >= 0" in capsys.readouterr().err


def test_the_onnx_backend_scores_as_eager_mode_and_exports_each_graph_once(
    pair, inputs, tmp_path, monkeypatch, capsys
):
    from fer.models import exporter, graphs
    from fer.models.inference import Inference, model_logits

    monkeypatch.setenv("FER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(graphs, "_SESSIONS", {})
    pictures = [skdata.astronaut(), *inputs["happy"], inputs["mixed"] / "clips" / "pan.mp4"]
    tables = {}
    for backend in ("eager", "onnx"):
        predictor = Predictor.from_dir(pair, device="cpu", progress=False, backend=backend)
        assert predictor.backend == backend
        tables[backend] = predictor.predict(pictures)
    made = sorted((tmp_path / "cache" / "graphs").glob("*.onnx"))
    assert [p.name[64:] for p in made] == ["-none.onnx"] * 2  # <sha256>-<tta>.onnx, one each
    metas = sorted((tmp_path / "cache" / "graphs").glob("*.meta.json"))  # <sha256>.meta.json
    assert [p.name[:64] for p in metas] == [p.name[:64] for p in made]
    assert len(list((tmp_path / "cache" / "graphs").iterdir())) == 4
    assert capsys.readouterr().err.count("exporting its graph for onnxruntime once") == 2
    eager, onnx = tables["eager"], tables["onnx"]
    probs = [c for c in eager.columns if "_p_" in c]
    text = [c for c in eager.columns if c not in probs]
    pd.testing.assert_frame_equal(eager[text], onnx[text])
    assert np.nanmax(np.abs(eager[probs].to_numpy(float) - onnx[probs].to_numpy(float))) < 1e-5
    models = load_models(pair)  # the logits themselves, on random pictures of the stored sizes
    rng = np.random.default_rng(0)
    for ck in models.checkpoints.values():
        arrays = {k: rng.integers(0, 256, (5, s, s, 3), np.uint8) for k, s in PRE_SIDES.items()}
        arrays = {k: v for k, v in arrays.items() if k in exporter.input_names(ck)}
        z = [
            model_logits(
                ck, arrays, np.arange(5), Inference(torch.device("cpu"), 2, False, False, b)
            )
            for b in ("eager", "onnx")
        ]
        assert np.abs(z[0] - z[1]).max() < exporter.TOLERANCE
    for ck in models.checkpoints.values():  # the cached meta is the checkpoint's
        assert json.loads(graphs.meta_path(ck.path).read_text()) == json.loads(json.dumps(ck.meta))
    stamps = [p.stat().st_mtime_ns for p in made]
    monkeypatch.setattr(graphs, "_SESSIONS", {})  # a new process: the graphs come from the cache
    again = Predictor.from_dir(pair, device="cpu", progress=False, backend="onnx")
    assert [p.stat().st_mtime_ns for p in made] == stamps
    assert "exporting" not in capsys.readouterr().err
    pd.testing.assert_frame_equal(again.predict(pictures), onnx)
    assert all(ck._model is None for ck in again.models.checkpoints.values())  # weights unread
    ck = again.models.roi_ck  # asked for, they are read
    assert ck.model.uses_rois and ck._model is not None
    with pytest.raises(FerError, match="backend onnx runs on the CPU, not on cuda"):
        graphs.choose("onnx", "cuda")
    with pytest.raises(FerError, match="backend 'tensorrt': expected one of auto, eager, onnx"):
        graphs.choose("tensorrt", "cpu")


def test_the_graphs_run_in_calls_their_memory_allows_and_give_the_same_table(
    pair, inputs, tmp_path, monkeypatch
):
    """Issue 31: onnxruntime keeps every intermediate of a call (the Global-ROI Net's attention
    scores at 224 / 90 px: 27 MB per image), so a batch runs in calls of a few images where they
    are large. Each exported graph records its largest intermediate per image; a graph cached
    by an older fer gets it on first use; the calls change no bit of the table."""
    import onnx

    from fer.models import graphs

    monkeypatch.setenv("FER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(graphs, "_SESSIONS", {})
    pictures = [skdata.astronaut(), *inputs["happy"], inputs["mixed"] / "clips" / "pan.mp4"]
    predictor = Predictor.from_dir(pair, device="cpu", progress=False, backend="onnx")
    whole = predictor.predict(pictures)
    sessions = {ck.kind: graphs.session(ck) for ck in predictor.models.checkpoints.values()}
    marked = {
        k: int(s.get_modelmeta().custom_metadata_map[graphs.ROW_BYTES]) for k, s in sessions.items()
    }
    assert marked["global"] == 64 * (48 // 2) ** 2 * 4  # the Global Net's first feature map
    for kind, ck in ((ck.kind, ck) for ck in predictor.models.checkpoints.values()):
        assert marked[kind] == graphs.row_bytes(onnx.load(str(graphs.graph_path(ck))))
        assert graphs.rows_per_call(sessions[kind]) >= 32  # at 48 / 24 px a batch is one call

    calls = []
    for kind, sess in sessions.items():

        def counted(names, feed, *rest, _run=sess.run, _kind=kind):
            calls.append((_kind, len(next(iter(feed.values())))))
            return _run(names, feed, *rest)

        monkeypatch.setattr(sess, "run", counted)
    monkeypatch.setattr(graphs, "CALL_BYTES", 3 * max(marked.values()))
    pd.testing.assert_frame_equal(predictor.predict(pictures), whole)
    n = int((whole.status == "ok").sum())
    for kind in ("global", "roi"):
        sizes = [k for who, k in calls if who == kind]
        rows = graphs.CALL_BYTES // marked[kind]  # 3 for the larger graph
        assert sum(sizes) == n and len(sizes) > 1, (kind, sizes)
        assert max(sizes) <= rows and min(sizes) >= 2, (kind, sizes)

    # a graph cached before graphs recorded their sizes: marked on first use, table unchanged
    path = graphs.graph_path(predictor.models.roi_ck)
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))
    monkeypatch.setattr(graphs, "_SESSIONS", {})
    monkeypatch.setattr(graphs, "CALL_BYTES", 128 << 20)
    again = Predictor.from_dir(pair, device="cpu", progress=False, backend="onnx")
    pd.testing.assert_frame_equal(again.predict(pictures), whole)
    kept = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert kept[graphs.ROW_BYTES] == str(marked["roi"])

    # where the cache cannot be written, such a graph runs whole batches, as it did
    del model.metadata_props[:]
    onnx.save(model, str(path))

    def refused(where):
        raise FerError(f"{where}: could not write (Read-only file system)")

    monkeypatch.setattr(graphs, "mark_row_bytes", refused)
    monkeypatch.setattr(graphs, "_SESSIONS", {})
    third = Predictor.from_dir(pair, device="cpu", progress=False, backend="onnx")
    pd.testing.assert_frame_equal(third.predict(pictures), whole)
    assert graphs.rows_per_call(graphs.session(third.models.roi_ck)) is None


def test_graph_calls_split_a_batch_in_order_and_never_leave_one_image_alone():
    """graphs.run's split: near-equal calls of at most rows_per_call images (one more where two
    per call is the limit and the batch is odd), none of one image unless the batch is one."""
    from fer.models import graphs

    class Meta:
        custom_metadata_map: dict

    class Fake:
        def __init__(self, row_bytes: int):
            self.meta, self.sizes = Meta(), []
            self.meta.custom_metadata_map = {graphs.ROW_BYTES: str(row_bytes)}

        def get_modelmeta(self):
            return self.meta

        def run(self, names, feed):
            self.sizes.append(len(feed["face"]))
            return [feed["face"][:, 0, 0, :1].copy()]

    for rows in (2, 3, 4, 7):
        for n in range(1, 30):
            fake = Fake(graphs.CALL_BYTES // rows)
            assert graphs.rows_per_call(fake) == rows
            face = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1)
            out = graphs.run(fake, {"face": face})
            assert out[:, 0].tolist() == list(range(n))  # every row once, in order
            assert sum(fake.sizes) == n
            assert max(fake.sizes) - min(fake.sizes) <= 1
            assert max(fake.sizes) <= max(rows, min(n, 3) if rows == 2 else rows)
            assert min(fake.sizes) >= 2 or n == 1
    big = Fake(graphs.CALL_BYTES * 4)  # an image whose intermediates alone exceed the budget
    assert graphs.rows_per_call(big) == 2
    unmarked = Fake(1)
    unmarked.meta.custom_metadata_map = {}  # a graph from elsewhere: the whole batch at once
    assert graphs.rows_per_call(unmarked) is None
    graphs.run(unmarked, {"face": np.zeros((40, 1, 1, 1), np.float32)})
    assert unmarked.sizes == [40]


def test_cached_graphs_predict_without_torch_in_a_fresh_process(pair, inputs, tmp_path):
    """fer predict's start-up (issue 31): once a pair's graphs are cached, a new process scores
    with onnxruntime alone; torch, torchvision and pandas are never imported."""
    import os
    import subprocess
    import sys

    from PIL import Image

    env = {**os.environ, "FER_CACHE": str(tmp_path / "cache")}
    (tmp_path / "run.py").write_text(
        "import sys\n"
        "from fer.cli import main\n"
        "if __name__ == '__main__':\n"
        "    rc = main(sys.argv[1:])\n"
        "    heavy = ('torch', 'torchvision', 'pandas')\n"
        "    print('LOADED', *[m for m in heavy if m in sys.modules])\n"
        "    sys.exit(rc)\n"
    )
    Image.fromarray(skdata.astronaut()).save(tmp_path / "astronaut.png")
    pictures = [str(tmp_path / "astronaut.png"), str(inputs["happy"][0])]
    out = {}
    for run in ("first", "second"):
        argv = [sys.executable, str(tmp_path / "run.py"), "predict", *pictures, "--models"]
        argv += [str(pair), "--no-progress", "--out", str(tmp_path / f"{run}.csv")]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        out[run] = done
    assert "exporting its graph" in out["first"].stderr  # the first run needs torch for that
    assert "LOADED torch" in out["first"].stdout
    assert "exporting" not in out["second"].stderr
    assert out["second"].stdout.split("LOADED")[-1].strip() == ""
    first, second = (pd.read_csv(tmp_path / f"{run}.csv") for run in ("first", "second"))
    pd.testing.assert_frame_equal(first, second)
    assert len(second) == 2 and second["status"][0] == "ok"


def test_fusion_json_weights_and_the_one_model_case(pair, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(pair, folder)
    write_fusion(folder, Fusion(0.9, 0.1), "test")
    models = load_models(folder)
    assert models.fusion == Fusion(0.9, 0.1) and models.fusion_source == "test"
    face = skdata.astronaut()
    row = Predictor(models, device="cpu", progress=False).predict(face).iloc[0]
    p = {a: np.array([row[f"{a}_p_{c}"] for c in SEVEN]) for a in ("global", "roi", "fused")}
    expected = softmax((0.9 * np.log(p["roi"]) + 0.1 * np.log(p["global"]))[None])[0]
    assert np.allclose(p["fused"], expected, atol=1e-6)
    (folder / "roi.pt").unlink()
    (folder / "fusion.json").unlink()
    alone = Predictor.from_dir(folder, device="cpu", progress=False).predict(face)
    assert list(alone.columns) == columns(["global"], list(SEVEN))
    assert np.isclose(alone.loc[0, "global_p_happy"], row["global_p_happy"])


def test_older_checkpoints_name_the_stored_sizes_face_size_and_read_alike(pair, tmp_path):
    """Checkpoints written before the stored sides had names of their own record them as
    face_size / roi_size in meta["preprocess"]: they predict exactly as today's."""
    legacy = {k: v for k, v in PRE.items() if k not in ("chip_size", "crop_size")}
    old = make_pair(tmp_path / "old", pre=legacy | {"face_size": 112, "roi_size": 48})
    models = load_models(old)
    assert models.preprocess["chip_size"] == 112 and "chips 112 px, ROIs 48 px" in models.describe()
    face = skdata.astronaut()
    now = Predictor.from_dir(pair, device="cpu", progress=False).predict(face)
    then = Predictor(models, device="cpu", progress=False).predict(face)
    pd.testing.assert_frame_equal(now, then)


def test_models_folder_errors(pair, tmp_path):
    from fer.models import create_model, save_checkpoint

    with pytest.raises(FerError, match="models folder not found"):
        load_models(tmp_path / "nope")
    old = tmp_path / "old"
    old.mkdir()
    save_checkpoint(old / "global.pt", create_model("global", 7, 48, 24), {"classes": list(SEVEN)})
    with pytest.raises(FerError, match=r"old/global.pt: the checkpoint records no preprocessing"):
        Predictor.from_dir(old)
    stale = tmp_path / "stale"
    shutil.copytree(pair, stale)
    write_fusion(stale, Fusion(0.5, 0.5), "test")
    make_pair(stale, seed=1)  # retrained, fusion.json not rewritten
    with pytest.raises(FerError, match="fusion.json: written for another global.pt"):
        load_models(stale)
    folds = tmp_path / "ck"
    folds.mkdir()
    for k in (0, 1):
        shutil.copy(pair / "global.pt", folds / f"global.fold{k}.pt")
    with pytest.raises(FerError, match=r"k-fold models \(folds 0, 1\); choose one with --fold"):
        load_models(folds)
    assert list(load_models(folds, fold=1).checkpoints) == ["global"]
    other = tmp_path / "other"
    make_pair(other, pre={**PRE, "detector": "dlib"})
    (other / "global.pt").replace(tmp_path / "dlib_global.pt")
    with pytest.raises(FerError, match="preprocess .* differ"):
        load_models(global_ckpt=tmp_path / "dlib_global.pt", roi_ckpt=pair / "roi.pt")
    given = tmp_path / "given"
    make_pair(given, pre={**PRE, "detector": "given"})
    with pytest.raises(FerError, match="publisher's face boxes"):
        Predictor.from_dir(given)
    assert Predictor.from_dir(given, detector="mtcnn", device="cpu").detector == "mtcnn"


def test_cli_formats_stdin_and_annotations(pair, inputs, tmp_path, monkeypatch, capsys):
    import io

    write_fusion(pair, Fusion(0.55, 0.45), "test")
    files = [*inputs["happy"], inputs["mixed"] / "clips" / "pan.mp4", inputs["mixed"] / "notes.txt"]
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"{f}\n" for f in files)))
    common = ["--models", str(pair), "--device", "cpu", "--no-progress", "--every", "4"]
    out = tmp_path / "t.csv"
    assert (
        fer_main(["predict", "-", *common, "--out", str(out), "--annotate", str(tmp_path / "a")])
        == 0
    )
    err = capsys.readouterr().err
    tally = "(ok 5, no_roi 0, no_face 0, unreadable 1, rejected 0)"
    assert f"6 rows from 6 frames of 4 inputs {tally}" in err
    table = pd.read_csv(out, keep_default_na=False)
    numbers = re.findall(r"(?<![\w.])\d+\.\d+", out.read_text())
    digits = [len(n.replace(".", "").lstrip("0")) for n in numbers]
    assert numbers and max(digits) <= 7  # 7 significant digits, not 17
    assert list(table.frame) == [0, 0, 0, 4, 8, 0] and len(table.columns) == 13 + 3 * 8
    assert set(table.model_data) == {"real"} and "warning" not in err
    for suffix in (".jsonl", ".parquet"):
        other = tmp_path / f"t{suffix}"
        assert fer_main(["predict", *map(str, files), *common, "--out", str(other)]) == 0
        back = pd.read_parquet(other) if suffix == ".parquet" else pd.read_json(other, lines=True)
        assert list(back.columns) == list(table.columns) and len(back) == len(table)
        assert np.allclose(
            back.fused_p_happy.astype(float),
            table.fused_p_happy.replace("", "nan").astype(float),
            equal_nan=True,
        )
    drawn = tmp_path / "a"
    from PIL import Image

    for src in inputs["happy"]:
        copy = np.asarray(Image.open(drawn / (src.stem + ".png")).convert("RGB"))
        original = np.asarray(Image.open(src).convert("RGB"))  # 48 px: drawn 6x as large
        assert copy.shape == (288, 288, 3) and original.shape == (48, 48, 3)
    with av.open(str(drawn / "pan.mp4")) as video:  # every 4th of 12 frames at 10 frames/s
        times = [float(frame.time) for frame in video.decode(video=0)]
        duration = video.duration / 1e6
    assert np.allclose(times, [0.0, 0.4, 0.8])  # each frame at its time in the source, so the
    assert abs(duration - 1.2) <= 0.4  # copy plays as long as its source, within a sampled frame
    capsys.readouterr()
    assert fer_main(["predict", str(files[0]), *common, "--out", "t.xlsx"]) == 2
    assert (
        "error: --out t.xlsx: expected a .csv, .jsonl or .parquet file" in capsys.readouterr().err
    )


def test_prediction_equals_prepare_then_evaluate(pair, shared_data, tmp_path):
    """The same faces through `fer prepare` + the evaluation's inference and through the
    predictor: the same statuses, chips and probabilities."""
    from fer.fusion import REFERENCE
    from fer.models.inference import Inference, load_checkpoints, model_logits
    from fer.prepared import open_prepared
    from tests.test_preprocess_real import run_prepare

    test = shared_data / "fer2013" / "test"
    files = [
        f"{c}/{p.name}"
        for c in ("happy", "sad", "angry")
        for p in sorted((test / c).iterdir())[:12]
    ]
    prepared = run_prepare(
        test,
        files,
        tmp_path,
        "--detector",
        "mtcnn",
        "--chip-size",
        "112",
        "--crop-size",
        "48",
        "--workers",
        "1",
    )
    data = open_prepared(prepared)
    rows = np.arange(len(files))
    run = Inference(torch.device("cpu"), 64, False, False)
    g, r = (load_checkpoints([pair / f"{k}.pt"], k)[0] for k in ("global", "roi"))
    z_g = model_logits(g, {"face": data.faces}, rows, run)
    has = data.index["has_roi"].to_numpy() == 1
    z_r = np.zeros_like(z_g)
    z_r[has] = model_logits(r, {"face": data.faces, **data.rois}, rows[has], run)
    z_f = REFERENCE.apply(z_r, z_g, has)
    predictor = Predictor.from_dir(pair, device="cpu", batch_size=32, progress=False)
    table = predictor.predict([test / f for f in files])
    status = {"ok": "ok", "no_face": "no_face", "landmarks_failed": "no_roi", "roi_empty": "no_roi"}
    assert list(table.status) == [status[s] for s in data.index["status"]]
    assert has.sum() >= 30
    for arch, z in (("global", z_g), ("fused", z_f)):
        p = table[[f"{arch}_p_{c}" for c in SEVEN]].to_numpy()
        assert np.abs(p - softmax(z)).max() < 1e-5, arch
    p_r = table[[f"roi_p_{c}" for c in SEVEN]].to_numpy()[has]
    assert np.abs(p_r - softmax(z_r[has])).max() < 1e-5


def test_the_readmes_onnxruntime_snippet_scores_faces_as_fer_predict_does(pair, inputs, tmp_path):
    """README "Use the models": the onnxruntime snippet, run as written (paths swapped for this
    test's), gives for every face of Predictor.crops the probabilities fer predict gives."""
    pytest.importorskip("onnxruntime")
    from tests.conftest import REPO

    folder = tmp_path / "m"
    shutil.copytree(pair, folder)
    assert fer_main(["export", "--models", str(folder), "--format", "onnx"]) == 0
    readme = (REPO / "README.md").read_text()
    snippet = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "ort." in b)
    pictures = [str(p) for p in inputs["happy"]] + [str(inputs["ckplus"])]
    code = snippet.replace('"models/demo', f'"{folder}').replace('["photo.jpg"]', repr(pictures))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own snippet
    rows, crops, z_fused = scope["rows"], scope["crops"], scope["z_fused"]
    assert len(rows) >= 2 and set(rows.status) == {"ok"} and len(z_fused) == len(rows)
    assert crops["face"].shape[1:] == (3, 48, 48) and crops["eye"].shape[1:] == (3, 24, 24)
    assert (
        crops["face"].dtype == np.float32 and 0 <= crops["face"].min() <= crops["face"].max() <= 1
    )
    table = rows[[f"fused_p_{c}" for c in SEVEN]].to_numpy(dtype=float)
    assert np.abs(softmax(z_fused) - table).max() < 1e-4
    empty_rows, empty = Predictor.from_dir(folder, device="cpu").crops(
        str(inputs["mixed"] / "notes.txt")
    )
    assert len(empty_rows) == 0 and empty["face"].shape == (0, 3, 48, 48)


def test_flip_tta_checkpoints_score_alike_in_predict_and_export(inputs, tmp_path):
    """A pair recorded with ``tta: flip``: the exported graph's logits are the mean of each net's
    logits on the crops and on their mirror images, and fer predict's table is their softmax
    (fer infer scores through the same function, fer.models.inference.model_logits)."""
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from fer.models.transforms import normalize
    from fer.predict.export import TOLERANCE

    plain, flip = make_pair(tmp_path / "plain"), make_pair(tmp_path / "flip", tta="flip")
    assert fer_main(["export", "--models", str(flip), "--format", "onnx"]) == 0
    spec = json.loads((flip / "fused.onnx.json").read_text())
    assert spec["tta"] == {"global": "flip", "roi": "flip"}
    assert spec["max_abs_diff_vs_eager"] <= TOLERANCE
    pictures = [str(p) for p in inputs["happy"]] + [str(inputs["ckplus"])]
    rows, crops = Predictor.from_dir(flip, device="cpu").crops(pictures)
    assert len(rows) >= 2
    z = ort.InferenceSession(str(flip / "fused.onnx")).run(None, crops)
    models = load_models(plain)  # the same weights, no test-time views recorded
    x = {k: normalize(torch.from_numpy(v)) for k, v in crops.items()}
    mirror = {k: v.flip(-1) for k, v in x.items()}
    g, r = models.global_ck.model.eval(), models.roi_ck.model.eval()
    with torch.no_grad():
        z_g = (g(face=x["face"]) + g(face=mirror["face"])) / 2
        z_r = (r(**x)[0] + r(**mirror)[0]) / 2
    z_f = models.fusion.combine(z_r, z_g)
    for got, want in zip(z, (z_g, z_r, z_f), strict=True):
        assert np.abs(got - want.numpy()).max() <= TOLERANCE
    for arch, logits in (("global", z_g), ("roi", z_r), ("fused", z_f)):
        table = rows[[f"{arch}_p_{c}" for c in SEVEN]].to_numpy(dtype=float)
        assert np.abs(softmax(logits.numpy()) - table).max() < 1e-4, arch
    with torch.no_grad():  # the mirror view matters: one view alone gives other logits
        assert (g(face=x["face"]) - z_g).abs().max() > 1e-3


def test_models_trained_on_synthetic_pictures_warn_once_and_say_so_in_the_table(
    inputs, tmp_path, capsys
):
    """A pair trained on the demo (meta synthetic, or an older checkpoint's demo adapter) warns
    in one line in `fer predict`, `fer.Predictor` and `fer export`, and the table and the
    export's description carry model_data synthetic."""
    from fer.errors import FerWarning

    faces = [str(p) for p in inputs["happy"][:1]]
    for name, meta in (("new", {"synthetic": True}), ("older", {"adapter": "demo"})):
        folder = make_pair(tmp_path / name, **meta)
        out = tmp_path / f"{name}.csv"
        args = ["predict", *faces, "--models", str(folder), "--no-progress", "--out", str(out)]
        assert fer_main(args) == 0
        warned = [ln for ln in capsys.readouterr().err.splitlines() if "warning" in ln]
        assert len(warned) == 1 and warned[0].startswith("warning: "), warned
        assert "trained on synthetic pictures" in warned[0] and str(folder / "roi.pt") in warned[0]
        assert set(pd.read_csv(out).model_data) == {"synthetic"}
    with pytest.warns(FerWarning, match="at chance level"):
        Predictor.from_dir(folder, device="cpu")
    pytest.importorskip("onnxruntime")
    assert fer_main(["export", "--models", str(folder), "--format", "torchscript"]) == 0
    assert capsys.readouterr().err.count("warning: ") == 1
    assert json.loads((folder / "fused.torchscript.pt.json").read_text())["model_data"] == (
        "synthetic"
    )


def test_small_pictures_are_drawn_enlarged_with_the_label_inside():
    """A 48-px face is drawn 6x as large (a side of at least MIN_DRAW_SIDE) with its label
    moved inside the picture, never cut off; a large picture is drawn at its own size."""
    from fer.predict.annotate import MIN_DRAW_SIDE, _fit, draw, scale_for
    from fer.predict.core import Result
    from fer.predict.sources import Frame
    from fer.preprocess.pipeline import Face

    assert scale_for((48, 48, 3)) == 6 and scale_for((48, 300)) == 6
    assert scale_for((MIN_DRAW_SIDE, 900, 3)) == 1
    assert _fit((-5, -3, 40, 10), (100, 100)) == (5, 3)  # off the top-left: moved in
    assert _fit((80, 95, 120, 110), (100, 100)) == (-21, -11)  # off the bottom-right
    assert _fit((10, 10, 20, 20), (100, 100)) == (0, 0)
    picture = np.full((48, 48, 3), 128, np.uint8)  # grey: only the label's background is black
    ring = np.stack(
        [24 + 14 * np.cos(np.linspace(0, 6.2, 68)), 24 + 14 * np.sin(np.linspace(0, 6.2, 68))], 1
    )
    face = Face("ok", picture, box=(20.0, 0.0, 48.0, 30.0), image_landmarks=ring)
    row = {"status": "ok", "fused_label": "surprise", "fused_p_surprise": 0.43}
    frame = Frame("x.png", 0, float("nan"), picture)
    drawn = draw(picture, Result(frame, [face], [row]), "fused")
    assert drawn.shape == (288, 288, 3)
    black = np.all(drawn == 0, axis=-1)  # the label's background: a black rectangle, whole
    rows, cols = np.nonzero(black)
    assert len(rows) > 500 and cols.max() < 287  # a face at the top-right corner: moved in
    assert black[rows.min(), cols.min() : cols.max() + 1].all()  # its top edge is in view
    assert black[rows.max(), cols.min() : cols.max() + 1].all()  # and its bottom edge
    big = np.zeros((300, 400, 3), np.uint8) + 128
    assert draw(big, Result(Frame("b.png", 0, float("nan"), big), [], []), "fused").shape == (
        300,
        400,
        3,
    )


def test_no_face_on_small_pictures_suggests_detector_none(pair, tmp_path, capsys):
    """48-px pictures where MTCNN finds no face: the run ends with one note pointing at
    --detector none; with it, each whole picture is the face and no note is printed."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(3):
        noise = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        Image.fromarray(noise).save(tmp_path / f"crop{i}.png")
    files = sorted(str(p) for p in tmp_path.glob("crop*.png"))
    common = ["--models", str(pair), "--device", "cpu", "--no-progress", "--out"]
    assert fer_main(["predict", *files, *common, str(tmp_path / "a.csv")]) == 0
    notes = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("note: ")]
    assert len(notes) == 1 and "no face found on 3 pictures" in notes[0]
    assert "--detector none" in notes[0]
    args = [*files, "--detector", "none", *common, str(tmp_path / "b.csv")]
    assert fer_main(["predict", *args]) == 0
    assert "note: " not in capsys.readouterr().err
    assert set(pd.read_csv(tmp_path / "b.csv").status) <= {"ok", "no_roi"}


def test_export_graphs_match_eager_mode(pair, tmp_path):
    pytest.importorskip("onnxruntime")
    from fer.predict.export import TOLERANCE, graph_inputs

    folder = tmp_path / "m"
    shutil.copytree(pair, folder)
    for fmt, name in (("torchscript", "fused.torchscript.pt"), ("onnx", "fused.onnx")):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # export runs without a warning
            assert fer_main(["export", "--models", str(folder), "--format", fmt]) == 0
        spec = json.loads((folder / f"{name}.json").read_text())
        assert spec["outputs"] == ["global", "roi", "fused"] and spec["classes"] == list(SEVEN)
        assert spec["inputs"]["face"] == ["N", 3, 48, 48] and spec["inputs"]["eye"] == [
            "N",
            3,
            24,
            24,
        ]
        assert spec["max_abs_diff_vs_eager"] <= TOLERANCE
    # checked again here, on a batch size the export never saw, against the models themselves
    from fer.models.transforms import normalize

    models = load_models(folder)
    x = graph_inputs(models, batch=5, seed=7)
    n = {k: normalize(v) for k, v in x.items()}
    with torch.no_grad():
        z_g = models.global_ck.model(face=n["face"])
        z_r = models.roi_ck.model(**n)[0]
    eager = [z.numpy() for z in (z_g, z_r, 0.55 * z_r + 0.45 * z_g)]
    import onnxruntime as ort

    got = ort.InferenceSession(str(folder / "fused.onnx")).run(
        None, {k: v.numpy() for k, v in x.items()}
    )
    for a, b in zip(eager, got, strict=True):
        assert np.abs(a - b).max() <= TOLERANCE
    assert np.allclose(eager[2], 0.55 * eager[1] + 0.45 * eager[0], atol=1e-5)
