"""Rule 4 of docs/safety.md: untrusted files are parsed with limits. Each generator writes one
hostile file; the verb that reads it ends in one line naming it, exit 2, no traceback, no hang,
nothing written."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from fer.config.check import MAX_DEPTH, MAX_VALUES
from tests.conftest import REPO, smk
from tests.hostile.conftest import face_like, fer, refused, save, snapshot


def alias_bomb(path: Path) -> str:
    """Nine levels of ten aliases each: 10^9 strings once expanded, 1 KB on disk."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, 10):
        refs = ", ".join(f"*a{k - 1}" for _ in range(10))
        lines.append(f"a{k}: &a{k} [{refs}]")
    bomb = "\n".join("  " + line for line in lines)
    path.write_text(f"datasets:\n  demo:\n    options:\n{_indent(bomb)}\n")
    return "alias bomb"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


CONFIGS = {  # name -> (writer, what the one line says)
    "a FIFO": (lambda p: os.mkfifo(p), "a FIFO"),
    "a folder": (lambda p: p.mkdir(), "a folder"),
    "a symlink loop": (lambda p: p.symlink_to(p), "a symlink loop"),
    "an alias bomb": (alias_bomb, f"more than {MAX_VALUES:,} values"),
    "deep flow nesting": (lambda p: p.write_text("a: " + "[" * 20000 + "]" * 20000), "nested"),
    "deep block nesting": (
        lambda p: p.write_text("".join(f"{'  ' * k}k{k}:\n" for k in range(MAX_DEPTH + 5))),
        "nested more than",
    ),
    "two megabytes": (lambda p: p.write_text("a: " + "x" * (2 << 20)), "over the limit"),
    "not UTF-8": (lambda p: p.write_bytes(b"title: \xff\xfe\n"), "not UTF-8"),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_check_config_refuses_hostile_files_in_one_line_quickly(case, tmp_path):
    write, says = CONFIGS[case]
    path = tmp_path / "config.yaml"
    write(path)
    r = fer("check-config", path, timeout=30)  # a FIFO opened would block: the timeout fails
    refused(r, str(path), says)


def test_planning_refuses_an_alias_bomb_before_walking_it(tmp_path):
    config = tmp_path / "bomb.yaml"
    alias_bomb(config)
    shutil.copytree(REPO / "config", tmp_path / "config")
    r = smk("-n", "--configfile", config, cwd=tmp_path, timeout=120)
    assert r.returncode != 0
    assert f"config error: the config: more than {MAX_VALUES:,} values" in r.stderr, r.stderr[
        -2000:
    ]
    assert "Traceback" not in r.stderr and "MemoryError" not in r.stderr


# ------------------------------------------------------------ fusion.json and the models folder


def _models_copy(pair: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    shutil.copytree(pair, folder)
    return folder


def _weights(folder: Path, weights) -> None:
    spec = json.loads((folder / "fusion.json").read_text())
    spec["weights"] = weights
    (folder / "fusion.json").write_text(json.dumps(spec))


FUSION = {  # name -> (how the folder is spoiled, what the one line says)
    "weights as text": (lambda f: _weights(f, {"roi": "0.7", "global": 0.3}), "expected numbers"),
    "weights as true": (lambda f: _weights(f, {"roi": True, "global": 0.3}), "expected numbers"),
    "a NaN weight": (lambda f: _weights(f, {"roi": float("nan"), "global": 0.3}), "in [0, 1]"),
    "a weight over 1": (lambda f: _weights(f, {"roi": 2, "global": -1}), "in [0, 1]"),
    "a list for weights": (lambda f: _weights(f, [0.5, 0.5]), "fusion.json"),
    "a folder for fusion.json": (
        lambda f: ((f / "fusion.json").unlink(), (f / "fusion.json").mkdir()),
        "a folder, not a file",
    ),
    "roi.pt gone": (lambda f: (f / "roi.pt").unlink(), "names roi.pt, missing"),
    "a huge fusion.json": (
        lambda f: (f / "fusion.json").write_text(" " * (2 << 20) + "{}"),
        "over the limit",
    ),
}


@pytest.mark.parametrize("case", list(FUSION))
def test_predict_refuses_a_spoiled_models_folder(case, pair, tmp_path):
    folder = _models_copy(pair, tmp_path)
    spoil, says = FUSION[case]
    spoil(folder)
    picture = save(tmp_path / "in" / "face.png", face_like(64))
    refused(fer("predict", picture, "--models", folder), says)


def test_pair_refuses_bad_weights_and_a_swapped_pair_keeping_the_old_file(pair, tmp_path):
    folder = _models_copy(pair, tmp_path)
    before = snapshot(folder)
    for weights in ("roi=2,global=-1", "roi=nan,global=0.5", "roi=0.7"):
        r = fer("pair", "--models", folder, "--fusion-weights", weights)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "--fusion-weights" in r.stderr
    (folder / "global.pt").rename(folder / "tmp.pt")
    (folder / "roi.pt").rename(folder / "global.pt")
    (folder / "tmp.pt").rename(folder / "roi.pt")
    refused(fer("pair", "--models", folder), "global.pt", "where 'global' expected")
    swapped = snapshot(folder)
    assert swapped[str(folder / "fusion.json")] == before[str(folder / "fusion.json")]


# ------------------------------------------------------------ files given to fetch-weights


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda p: os.mkfifo(p), "a FIFO"),
        (lambda p: p.mkdir(), "a folder"),
        (lambda p: p.symlink_to(p), "a symlink loop"),
        (lambda p: None, "file not found"),
    ],
    ids=["fifo", "folder", "loop", "missing"],
)
def test_fetch_weights_names_what_the_source_is(make, says, tmp_path):
    source = tmp_path / "resnet18.pth"
    make(source)
    r = fer("fetch-weights", "--from", source, env={"TORCH_HOME": str(tmp_path / "cache")},
            timeout=30)  # fmt: skip
    refused(r, str(source), says)


# ------------------------------------------------------------ odd entries where files are read


def test_links_that_loop_or_point_nowhere_are_counted_not_a_crash(raw, tmp_path):
    (raw / "happy" / "loop.png").symlink_to(raw / "happy" / "loop.png")
    (raw / "happy" / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (raw / "toploop").symlink_to(raw / "toploop")
    out = tmp_path / "manifest.csv"
    r = fer("manifest", "--dataset", "x", "--adapter", "folders", "--root", raw, "--out", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "manifest.summary.json").read_text())
    assert summary["skipped"] == {"broken_link": 3} and summary["n_images"] == 6


def test_predict_names_what_an_odd_input_is(pair, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "text.png").write_text("hello, I am text\n")
    os.mkfifo(folder / "pipe.mp4")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    out = tmp_path / "t.csv"
    r = fer("predict", folder, "--models", pair, "--out", out, timeout=60)
    assert r.returncode == 0, r.stderr
    import pandas as pd

    table = pd.read_csv(out, keep_default_na=False).set_index("file")
    reason = {Path(f).name: table.loc[f, "reason"] for f in table.index}
    assert reason == {
        "loop.jpg": "a symlink loop",
        "pipe.mp4": "a FIFO (named pipe), not a regular file",
        "text.png": "not an image, though named .png; fer cannot decode it",
    }
    assert set(table["status"]) == {"unreadable"}


def test_export_to_a_file_of_another_kind_is_one_line(pair, tmp_path):
    for fmt, name in (("onnx", "graph.json"), ("torchscript", "graph.onnx")):
        r = fer("export", "--models", pair, "--format", fmt, "--out", tmp_path / name)
        refused(r, "--out", "file")
    assert not list(tmp_path.iterdir())


def _spoil_manifest(manifest: Path, column: str, value: str) -> None:
    import pandas as pd

    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    table.loc[1, column] = value
    table.to_csv(manifest, index=False)


MANIFESTS = {  # name -> (how the manifest is spoiled, what the one line says)
    "an unknown split": (lambda m: _spoil_manifest(m, "split", "training"), "line 3: split"),
    "a label that disagrees with its name": (lambda m: _spoil_manifest(m, "label", "5"), "line 3"),
    "a label that is not a number": (lambda m: _spoil_manifest(m, "label", "x"), "label 'x'"),
    "a fold that is text": (lambda m: _spoil_manifest(m, "fold", "one"), "fold 'one'"),
    "a missing column": (
        lambda m: m.write_text(m.read_text().replace("label_name", "name", 1)),
        "missing columns",
    ),
    "a FIFO": (lambda m: (m.unlink(), os.mkfifo(m)), "a FIFO"),
    "a summary that is a list": (
        lambda m: (m.parent / "manifest.summary.json").write_text("[1, 2]"),
        "'classes'",
    ),
}


@pytest.mark.parametrize("case", list(MANIFESTS))
def test_prepare_refuses_a_spoiled_manifest_before_any_work(case, raw, tmp_path):
    from tests.fakes import write_manifest

    manifest = write_manifest(tmp_path / "m", ["happy/happy0.png", "sad/sad0.png", "sad/sad1.png"])
    spoil, says = MANIFESTS[case]
    spoil(manifest)
    out = tmp_path / "prepared"
    r = fer("prepare", "--manifest", manifest, "--root", raw, "--out", out, "--detector", "none",
            timeout=30)  # fmt: skip
    refused(r, says)
    assert not out.exists()


def test_an_empty_class_folder_skipped_as_the_error_advises_is_skipped(raw, tmp_path):
    (raw / "other").mkdir()
    out = tmp_path / "manifest.csv"
    args = ["manifest", "--dataset", "x", "--adapter", "folders", "--root", raw, "--out", out]
    advice = refused(fer(*args), "'other'", '{"other": null}')
    assert "skip it with" in advice
    r = fer(*args, "--options", '{"classes": {"other": null}}')
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "manifest.summary.json").read_text())
    assert summary["n_images"] == 6 and summary["skipped"] == {}
