"""fer under hostile files, full disks, kills and changed data: every case ends in one line that
names the file (or a counted skip with its reason), no traceback, no hang, nothing left behind.
docs/failure-behaviour.md lists what is promised and which test here backs it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer.cli import main as fer_main
from fer.errors import FerError
from fer.prepared import open_prepared
from fer.synthetic import write_prepared
from tests.conftest import REPO, SHARED_DATA
from tests.fakes import fer, prepare_args, write_manifest
from tests.fakes import refused as one_line_error

QUICK = {"epochs": 1, "batch_size": 8, "samples_per_class": 4, "workers": 0}


def huge_png(path: Path, side: int = 20_000) -> Path:
    """A valid side×side 8-bit grey PNG of zeros, written with zlib (a few hundred KB)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    packer = zlib.compressobj(1)
    row = b"\0" * (side + 1)  # filter byte + pixels
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture
def small_raw(tmp_path) -> Path:
    """Four real CK+48 faces (or drawn grey squares without ../shared) in one folder."""
    raw = tmp_path / "raw"
    raw.mkdir()
    faces = sorted((SHARED_DATA / "ckplus48" / "happy").glob("*.png"))[:4]
    for i in range(4):
        if faces:
            shutil.copy(faces[i], raw / f"f{i}.png")
        else:
            Image.new("L", (48, 48), 60 + 40 * i).save(raw / f"f{i}.png")
    return raw


# ---------------------------------------------------------------- fails 1: a huge image


def test_a_huge_image_is_unreadable_with_its_size_and_the_rest_is_prepared(small_raw, tmp_path):
    pytest.importorskip("dlib")
    huge_png(small_raw / "huge.png")
    files = ["huge.png", "f0.png", "f1.png"]
    manifest = write_manifest(tmp_path / "m", files)
    out = tmp_path / "prepared"
    assert fer_main([str(a) for a in prepare_args(manifest, small_raw, out)]) == 0
    data = open_prepared(out)
    status = dict(zip(data.index["path"], data.index["status"], strict=True))
    assert status["huge.png"] == "unreadable"
    assert {status["f0.png"], status["f1.png"]} <= {"ok", "landmarks_failed", "roi_empty"}
    reasons = json.loads((out / "summary.json").read_text())["unreadable_reasons"]
    (reason,) = reasons
    assert "20000x20000 = 400,000,000 pixels, over the limit of 100,000,000" in reason
    # the limit is a setting: lowered, a 48x48 face is refused by its size alone
    small = tmp_path / "small"
    argv = prepare_args(manifest, small_raw, small, "--max-pixels", 1000)
    assert fer_main([str(a) for a in argv]) == 0
    assert set(open_prepared(small).index["status"]) == {"unreadable"}


# ---------------------------------------------------------------- fails 2: wrong weights


def test_resnet34_weights_are_refused_as_resnet18_naming_what_the_file_holds(tmp_path):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from fer.models import create_model

    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    for arch in ("global", "roi"):
        with pytest.raises(FerError, match=r"resnet34\.pth: holds ResNet-34 weights .*3, 4, 6, 3"):
            create_model(arch, 7, 32, 16, weights=str(path))
    prepared = write_prepared(tmp_path / "p")
    r = fer(
        "train",
        "--prepared",
        prepared,
        "--arch",
        "global",
        "--out",
        tmp_path / "g.pt",
        "--recipe",
        json.dumps({**QUICK, "weights": str(path)}),
    )
    assert "holds ResNet-34 weights" in one_line_error(r)


# ---------------------------------------------------------------- fails 3: changed data


def test_a_run_does_not_resume_from_the_state_of_other_prepared_data(tmp_path, capsys):
    """Same counts, same recipe, other pixels: the saved state is not resumed, and says why."""
    from fer.train import cli as train_cli

    prepared = write_prepared(tmp_path / "p", seed=0)
    out = tmp_path / "m" / "global.pt"
    argv = [
        "--prepared",
        str(prepared),
        "--arch",
        "global",
        "--out",
        str(out),
        "--threads",
        "1",
        "--no-progress",
        "--keep-state",
        "--recipe",
        json.dumps(QUICK),
    ]
    assert train_cli.main(argv) == 0
    assert train_cli.main(argv) == 0  # unchanged data: the finished state is resumed
    assert json.loads(out.with_suffix(".run.json").read_text())["resumed_from_epoch"] == 1
    capsys.readouterr()
    write_prepared(tmp_path / "p", seed=1)  # re-prepared: the same counts, other content
    assert train_cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "was saved for other prepared data (its index or arrays changed since)" in err
    assert json.loads(out.with_suffix(".run.json").read_text())["resumed_from_epoch"] is None


# ---------------------------------------------------------------- fails 4 and writers: full disk


@pytest.mark.parametrize("workers", [1, 2])
def test_prepare_on_a_full_disk_says_what_it_needs_and_leaves_nothing(
    workers, full_disk, small_raw, tmp_path
):
    pytest.importorskip("dlib")
    disk = full_disk(free=64 * 1024)
    files = [f"f{i % 4}.png" for i in range(40)]
    manifest = write_manifest(tmp_path / "m", files)
    out = disk / "prepared"
    args = prepare_args(manifest, small_raw, out, "--chip-size", 224, "--crop-size", 90)
    args[args.index("--workers") + 1] = workers
    line = one_line_error(fer(*args, timeout=120))
    assert f"{out}: needs " in line and "free on its disk" in line
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def _die(task):
    """A pool task that kills its worker, as a SIGBUS or the OOM killer would."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_that_dies_stops_prepare_with_one_line_never_a_hang(
    small_raw, tmp_path, monkeypatch
):
    pytest.importorskip("dlib")
    from fer.preprocess import prepare as prepare_module

    monkeypatch.setattr(prepare_module, "process_into", _die)
    manifest = write_manifest(tmp_path / "m", [f"f{i % 4}.png" for i in range(8)])
    out = tmp_path / "prepared"
    argv = prepare_args(manifest, small_raw, out, "--batch-size", 2)
    argv[argv.index("--workers") + 1] = 2
    with pytest.raises(FerError, match="a preprocessing worker died"):
        prepare_module.main([str(a) for a in argv[1:]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "raw"]


def _tiny_checkpoint(tmp_path) -> Path:
    from fer.train import cli as train_cli

    prepared = write_prepared(tmp_path / "ckpt-data")
    out = tmp_path / "ckpt" / "global.pt"
    argv = [
        "--prepared",
        str(prepared),
        "--arch",
        "global",
        "--out",
        str(out),
        "--threads",
        "1",
        "--no-progress",
        "--recipe",
        json.dumps(QUICK),
    ]
    assert train_cli.main(argv) == 0
    return out


WRITERS = ("demo", "manifest", "train", "infer", "evaluate", "report")


@pytest.mark.parametrize("writer", WRITERS)
def test_every_writer_on_a_full_disk_names_the_file_and_leaves_nothing(writer, full_disk, tmp_path):
    disk = full_disk(free=2048)
    prepared = write_prepared(tmp_path / "p", n_per_class=12)
    if writer == "demo":
        argv = ["demo", "--out", disk / "raw", "--subjects", 3, "--test-subjects", 1]
    elif writer == "manifest":
        raw = tmp_path / "raw"
        for split in ("train", "test"):
            for cls in ("happy", "sad"):
                (raw / split / cls).mkdir(parents=True)
                for i in range(40):
                    (raw / split / cls / f"s{i:02d}_{cls}_with_a_long_name.png").write_bytes(b"")
        (raw / "SYNTHETIC.txt").write_text("x")
        target = disk / "manifest.csv"
        argv = ["manifest", "--dataset", "x", "--adapter", "demo", "--root", raw, "--out", target]
    elif writer == "train":
        target = disk / "global.pt"
        argv = [
            "train",
            "--prepared",
            prepared,
            "--arch",
            "global",
            "--out",
            target,
            "--recipe",
            json.dumps(QUICK),
            "--no-progress",
        ]
    elif writer in ("infer", "evaluate"):
        infer = ["infer", "--dataset", "d", "--target", "d", "--prepared", prepared]
        infer += ["--global-ckpt", _tiny_checkpoint(tmp_path), "--out"]
        target = disk / "record.npz"
        argv = [*infer, target]
        if writer == "evaluate":  # from a record on another disk, into the full one
            assert fer(*infer, tmp_path / "record.npz").returncode == 0
            target = disk / "result.json"
            argv = ["evaluate", "--dataset", "d", "--target", "d", "--arch", "global"]
            argv += ["--predictions", tmp_path / "record.npz", "--out", target]
    else:
        target = disk / "all.html"
        argv = ["report", "--results", tmp_path / "results/x/x_roi.json", "--out", target]
    line = one_line_error(fer(*argv))
    assert "No space left on device" in line and str(disk) in line, line
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_partial_folders_of_killed_runs_are_removed_on_the_next_run(small_raw, tmp_path):
    pytest.importorskip("dlib")
    manifest = write_manifest(tmp_path / "m", ["f0.png", "f1.png"])
    out = tmp_path / "prepared"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".prepared.partial-{dead.pid}"
    (stale / "faces.npy").parent.mkdir()
    (stale / "faces.npy").write_bytes(b"half")
    alive = tmp_path / ".prepared.partial-1"  # pid 1 runs: a concurrent run's, kept
    alive.mkdir()
    assert fer_main([str(a) for a in prepare_args(manifest, small_raw, out)]) == 0
    assert not stale.exists() and alive.exists() and (out / "faces.npy").is_file()


# ---------------------------------------------------------------- readers of a prepared folder


def _break(kind: str, root: Path) -> str:
    faces = root / "faces.npy"
    if kind == "truncated":
        faces.write_bytes(faces.read_bytes()[:200])
        return "not a readable .npy array of uint8 N×S×S×3 images"
    if kind == "object":
        np.save(faces, np.array([{"x": 1}] * 4, dtype=object), allow_pickle=True)
        return "not a readable .npy array"
    if kind == "float":
        np.save(faces, np.zeros((56, 32, 32, 3), np.float32))
        return "float32 array of shape (56, 32, 32, 3); expected uint8 N×S×S×3 images"
    if kind == "rows":
        np.save(faces, np.zeros((3, 32, 32, 3), np.uint8))
        return "3 rows but index.csv has 56"
    if kind == "json":
        (root / "summary.json").write_text("{not json")
        return "summary.json: not a readable JSON object"
    (root / "index.csv").write_text("path,label\n")
    return "index.csv: missing columns"


@pytest.mark.parametrize("kind", ["truncated", "object", "float", "rows", "json", "index"])
def test_a_broken_prepared_folder_is_one_line_naming_the_file(kind, tmp_path):
    root = write_prepared(tmp_path / "p")
    expected = _break(kind, root)
    with pytest.raises(FerError, match="re-run|missing columns|expected") as err:
        open_prepared(root)
    assert expected in str(err.value) and str(root) in str(err.value)
    r = fer("train", "--prepared", root, "--arch", "global", "--out", tmp_path / "g.pt")
    assert expected in one_line_error(r)


# ---------------------------------------------------------------- command-line numbers


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            ["demo", "--out", "x", "--size", "0"],
            "argument --size: expected an integer >= 48, got 0",
        ),
        (["demo", "--out", "x", "--size", "-48"], "argument --size: expected an integer >= 48"),
        (
            ["demo", "--out", "x", "--subjects", "0"],
            "argument --subjects: expected an integer >= 2",
        ),
        (["demo", "--out", "x", "--subjects", "3", "--test-subjects", "3"], "--test-subjects"),
        (
            ["train", "--prepared", "p", "--arch", "global", "--out", "o", "--threads", "-1"],
            "argument --threads: expected an integer >= 1, got -1",
        ),
        (
            ["prepare", "--manifest", "m", "--root", "r", "--out", "o", "--workers", "0"],
            "argument --workers: expected an integer >= 1, got 0",
        ),
        (
            ["prepare", "--manifest", "m", "--root", "r", "--out", "o", "--padding", "nan"],
            "argument --padding: expected a number >= 0",
        ),
        (
            ["infer", "--dataset", "a", "--target", "b", "--prepared", "p", "--out", "o.npz"]
            + ["--batch-size", "0"],
            "argument --batch-size: expected an integer >= 1",
        ),
        (
            ["evaluate", "--dataset", "a", "--target", "b", "--arch", "fused"]
            + ["--predictions", "r.npz", "--out", "o", "--fusion-weights", "roi=2,global=0"],
            "argument --fusion-weights: fusion weights roi=2.0, global=0.0: expected each in "
            "[0, 1], not both 0",
        ),
        (
            ["manifest", "--dataset", "a", "--root", "r", "--out", "o", "--kfold", "1"],
            "argument --kfold: expected an integer >= 2, got 1",
        ),
        (
            ["manifest", "--dataset", "a", "--root", "r", "--out", "o", "--val-fraction", "0.9"],
            "argument --val-fraction: expected a number >= 0 and <= 0.5, got 0.9",
        ),
    ],
)
def test_every_command_line_number_fails_like_argparse_naming_the_option(argv, needle, tmp_path):
    r = fer(*argv, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert needle in r.stderr.splitlines()[-1], r.stderr


# ---------------------------------------------------------------- layout oddities


def _folders(root: Path, classes=("happy", "sad"), n=2) -> Path:
    for split in ("train", "test"):
        for cls in classes:
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (root / split / cls / f"s{i:02d}_{i}.png").write_bytes(b"")
    (root / "SYNTHETIC.txt").write_text("x")
    return root


def test_stray_files_and_nested_folders_are_counted_never_silent(tmp_path):
    from fer.data.manifest import build_manifest

    root = _folders(tmp_path / "d")
    (root / "train" / "README.txt").write_text("notes")  # beside the class folders
    nested = root / "train" / "happy" / "more"
    nested.mkdir()
    for i in range(3):
        (nested / f"extra{i}.png").write_bytes(b"")
    table, summary = build_manifest("d", root, adapter="demo")
    assert summary["skipped"] == {"in_nested_folder": 3, "stray_file": 1}
    assert len(table) == 8


def test_two_folders_spelling_one_class_are_an_error(tmp_path):
    root = _folders(tmp_path / "d", classes=("happy", "happiness", "sad"))
    r = fer(
        "manifest",
        "--dataset",
        "d",
        "--adapter",
        "demo",
        "--root",
        root,
        "--out",
        tmp_path / "m.csv",
    )
    line = one_line_error(r)
    assert "class folders ['happiness', 'happy'] all mean 'happy'" in line


def test_an_unreadable_folder_is_an_error_naming_it(tmp_path, monkeypatch):
    from fer.data import get_adapter, listing

    root = _folders(tmp_path / "d")
    locked = root / "train" / "sad"
    real = os.scandir

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(listing.os, "scandir", scandir)
    with pytest.raises(FerError, match=r"train/sad: cannot read the folder \(Permission denied\)"):
        get_adapter("demo")(root)


# ---------------------------------------------------------------- misleading messages


def test_a_permission_denied_image_says_so(tmp_path, monkeypatch):
    from fer.data import io

    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.png"))

    monkeypatch.setattr(io.Image, "open", denied)
    with pytest.raises(io.UnreadableImage, match=r"x\.png: unreadable image \(permission denied"):
        io.load_image(tmp_path, "x.png")


def test_a_result_whose_classes_are_not_a_list_says_so(tmp_path):
    from fer.report import build_report

    path = tmp_path / "results" / "a" / "a_roi.json"
    path.parent.mkdir(parents=True)
    bad = {"accuracy": 0.5, "classes": "happy", "confusion_matrix": [[1]], "n_images": 1}
    path.write_text(json.dumps(bad))
    with pytest.raises(FerError, match=r"a_roi\.json: 'classes' must be a list of class names"):
        build_report(results=[path])


# ---------------------------------------------------------------- config mistakes


def test_a_yaml_syntax_error_is_reported_with_file_and_line(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text("datasets:\n  demo: {adapter: demo, generate: true\ntrain_on: [demo]\n")
    line = one_line_error(fer("check-config", bad))  # where the brace opened; where noticed
    assert f"{bad}:2:9: while parsing a flow mapping" in line and "at line 3" in line
    quote = tmp_path / "quote.yaml"
    quote.write_text('title: "mine\ndatasets:\n  x: {}\n')
    line = one_line_error(fer("check-config", quote))
    assert f"{quote}:1:8: while scanning a quoted scalar" in line, line
    ok = tmp_path / "ok.yaml"
    shutil.copy(REPO / "config" / "config.yaml", ok)
    r = fer("check-config", ok)
    assert r.returncode == 0 and "valid (YAML, schema and the rules across keys)" in r.stdout


def test_check_config_reports_every_problem_with_its_line_and_key_path(tmp_path):
    """An unknown key (with a "did you mean"), a wrong type and a reference to an undeclared
    data set, in one run, each one line; the shipped configs and the seeds overlay merged
    onto its base are valid."""
    bad = tmp_path / "mine.yaml"
    bad.write_text(
        "datasets:\n"
        "  mine: {adapter: folders, root: data/mine, val_fraction: lots}\n"
        "train_on: [mine, other]\n"
        "targets: {mine: [mine]}\n"
        "train:\n"
        "  recipes:\n"
        "    mine:\n"
        "      global: {epoch: 3}\n"
    )
    r = fer("check-config", bad)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert all(ln.startswith("error: ") for ln in lines) and len(lines) == 3, lines
    text = "\n".join(lines)
    assert f"{bad}:2: datasets.mine.val_fraction: 'lots' is not of type 'number'" in text
    assert f"{bad}:8: train.recipes.mine.global.epoch: unknown key (did you mean 'epochs'?)" in text
    assert f"{bad}:3: train_on.1: 'other' is not a key of datasets (['mine'])" in text
    assert text.endswith("(3 problems)")
    configs = (["config.yaml"], ["paper.yaml"], ["ckplus48.yaml", "ckplus48-seeds.yaml"])
    for files in (*configs, ["fer2013.yaml"]):
        r = fer("check-config", *(REPO / "config" / f for f in files))
        assert r.returncode == 0, r.stderr


def test_a_default_config_with_a_syntax_error_stops_planning_with_file_and_line(tmp_path):
    from tests.conftest import smk

    shutil.copytree(REPO / "config", tmp_path / "config")
    (tmp_path / "config" / "config.yaml").write_text("title: x\ndatasets: [a\n")
    r = smk("-n", cwd=tmp_path)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("config error")]
    assert r.returncode != 0 and len(errors) == 1
    assert errors[0].startswith("config error: config/config.yaml:") and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "weights",
    [{"fusion_roi": -5}, {"fusion_global": 1.5}, {"fusion_roi": 0, "fusion_global": 0}],
)
def test_fusion_weights_outside_0_1_stop_planning(weights, tmp_path):
    """The pair is checked where every consumer's is (fer.fusion.Fusion), before any job."""
    from tests.test_workflow import plan_errors

    errors = plan_errors(tmp_path, lambda cfg: cfg.setdefault("evaluate", {}).update(weights))
    assert len(errors) == 1
    assert errors[0].startswith("config error: edited.yaml:")
    assert "evaluate: fusion_roi, fusion_global: fusion weights" in errors[0]
    assert errors[0].endswith("expected each in [0, 1], not both 0")
