"""Rules 1 and 2 of docs/safety.md: inputs stay inside their root; outputs never go inside the
data a command reads, never over an input. Each escape and each output is one generated case."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from fer.errors import FerError
from fer.paths import OutsideRoot, confined, writable_out
from fer.synthetic import write_prepared
from tests.fakes import prepare_args, write_manifest
from tests.hostile.conftest import face_like, fer, refused, save, snapshot

# ------------------------------------------------------------------ rule 1: inside the root


def escapes(tmp: Path, root: Path) -> dict[str, str]:
    """Manifest paths that leave ``root``, each a different way, all naming one real picture
    outside it (so that reading it would have worked): name -> manifest path."""
    outside = save(tmp / "outside" / "secret.png", face_like(64, 99))
    (root / "happy" / "link.png").symlink_to(outside)
    (root / "linkdir").symlink_to(outside.parent, target_is_directory=True)
    pixels = " ".join(str(v % 256) for v in range(48 * 48))
    (tmp / "outside" / "pixels.csv").write_text(f"emotion,pixels\n3,{pixels}\n")
    return {
        "dot-dot": "../outside/secret.png",
        "dot-dot inside the path": "happy/../../outside/secret.png",
        "absolute": str(outside),
        "symlinked file": "happy/link.png",
        "symlinked folder": "linkdir/secret.png",
        "csv picture": "csv:../outside/pixels.csv#0",
    }


def prepare(manifest: Path, root: Path, out: Path) -> subprocess.CompletedProcess:
    return fer(*prepare_args(manifest, root, out))


def test_manifest_rows_that_leave_the_root_are_rejected_and_counted(raw, tmp_path):
    cases = escapes(tmp_path, raw)
    good = ["happy/happy0.png", "sad/sad0.png"]
    manifest = write_manifest(tmp_path / "m", [*good, *cases.values()])
    out = tmp_path / "prepared"
    r = prepare(manifest, raw, out)
    assert r.returncode == 0, r.stderr
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    status = dict(zip(index["path"], index["status"], strict=True))
    assert [status[p] for p in good] == ["ok", "ok"]
    wrong = {name: status[p] for name, p in cases.items() if status[p] != "rejected"}
    assert not wrong, wrong
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rejected_reasons"] == {"outside_root": len(cases)}
    assert summary["counts_by_status"]["rejected"] == len(cases)


def test_a_root_that_is_itself_a_symlink_keeps_working(raw, tmp_path):
    link = tmp_path / "data-link"
    link.symlink_to(raw, target_is_directory=True)
    manifest = write_manifest(tmp_path / "m", ["happy/happy0.png", "sad/sad1.png"])
    r = prepare(manifest, link, tmp_path / "prepared")
    assert r.returncode == 0, r.stderr
    index = pd.read_csv(tmp_path / "prepared" / "index.csv", keep_default_na=False)
    assert set(index["status"]) == {"ok"}


def test_confined_follows_dot_dot_and_symlinks_of_the_path_itself(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    assert confined("a/../a/x.png", root) == root / "a/../a/x.png"
    (root / "out").symlink_to(tmp_path, target_is_directory=True)
    (root / "loop").symlink_to(root / "loop")
    for path in ("../x.png", "a/../../x.png", "out/x.png", "/etc/hostname", "a/../../root2/x"):
        with pytest.raises(OutsideRoot, match="outside its root"):
            confined(path, root)
    confined("loop", root)  # a loop inside the root stays inside: reading it says what it is


# ------------------------------------------------------------------ rule 2: where outputs go


@pytest.fixture
def world(tmp_path, raw, pair) -> dict:
    """Everything the verbs read: a raw root, its manifest, a prepared folder, a models pair,
    a record, a result, a picture folder and a picture file, the authors' checkpoint."""
    manifest = write_manifest(tmp_path / "resources" / "m", ["happy/happy0.png"])
    prepared = write_prepared(tmp_path / "resources" / "prepared")
    record = tmp_path / "results" / "rec.npz"
    result = tmp_path / "results" / "cell.json"
    record.parent.mkdir(parents=True)
    record.write_bytes(b"not really a record")
    result.write_text("{}")
    authors = tmp_path / "authors" / "global.path"
    authors.parent.mkdir()
    authors.write_bytes(b"not really a checkpoint")
    pictures = raw / "happy"
    return {
        "tmp": tmp_path,
        "raw": raw,
        "raw_link": _link(tmp_path / "raw-link", raw),
        "roi_link": _file_link(tmp_path / "link.pt", pair / "roi.pt"),
        "manifest": manifest,
        "prepared": prepared,
        "models": pair,
        "record": record,
        "result": result,
        "authors": authors,
        "pictures": pictures,
        "picture": pictures / "happy0.png",
    }


def _link(link: Path, target: Path) -> Path:
    link.symlink_to(target, target_is_directory=True)
    return link


def _file_link(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


G = "global"
OUTPUTS = {  # case -> (argv from the world, what the one line says)
    "manifest into its raw root": (
        lambda w: ["manifest", "--dataset", "x", "--adapter", "folders", "--root", w["raw"],
                   "--out", w["raw"] / "manifest.csv"],
        "a data folder this command reads",
    ),
    "manifest deep inside its root": (
        lambda w: ["manifest", "--dataset", "x", "--adapter", "folders", "--root", w["raw"],
                   "--out", w["raw"] / "happy" / "x" / "manifest.csv"],
        "a data folder this command reads",
    ),
    "manifest into its root through a symlink": (
        lambda w: ["manifest", "--dataset", "x", "--adapter", "folders", "--root", w["raw"],
                   "--out", w["raw_link"] / "manifest.csv"],
        "a data folder this command reads",
    ),
    "prepare into its raw root": (
        lambda w: ["prepare", "--manifest", w["manifest"], "--root", w["raw"],
                   "--out", w["raw"] / "prepared"],
        "a data folder this command reads",
    ),
    "prepare over the folder holding its root": (
        lambda w: ["prepare", "--manifest", w["manifest"], "--root", w["raw"], "--out", w["tmp"]],
        "holds",
    ),
    "prepare over its manifest": (
        lambda w: ["prepare", "--manifest", w["manifest"], "--root", w["raw"],
                   "--out", w["manifest"]],
        "is an input",
    ),
    "train into its prepared folder": (
        lambda w: ["train", "--prepared", w["prepared"], "--arch", G,
                   "--out", w["prepared"] / "g.pt"],
        "a data folder this command reads",
    ),
    "train's state into its prepared folder": (
        lambda w: ["train", "--prepared", w["prepared"], "--arch", G, "--out", w["tmp"] / "g.pt",
                   "--state-dir", w["prepared"] / "state"],
        "--state-dir",
    ),
    "infer over a checkpoint": (
        lambda w: ["infer", "--dataset", "x", "--target", "x", "--prepared", w["prepared"],
                   "--global-ckpt", w["models"] / "global.pt", "--out", w["models"] / "global.pt"],
        "is an input",
    ),
    "infer into its prepared folder": (
        lambda w: ["infer", "--dataset", "x", "--target", "x", "--prepared", w["prepared"],
                   "--global-ckpt", w["models"] / "global.pt", "--out", w["prepared"] / "r.npz"],
        "a data folder this command reads",
    ),
    "evaluate over its record": (
        lambda w: ["evaluate", "--dataset", "x", "--target", "x", "--arch", G,
                   "--predictions", w["record"], "--out", w["record"]],
        "is an input",
    ),
    "report over a result": (
        lambda w: ["report", "--results", w["result"], "--out", w["result"]],
        "is an input",
    ),
    "predict's table inside the folder it reads": (
        lambda w: ["predict", w["pictures"], "--models", w["models"],
                   "--out", w["pictures"] / "t.csv"],
        "a data folder this command reads",
    ),
    "predict's annotations into the folder it reads": (
        lambda w: ["predict", w["pictures"], "--models", w["models"], "--annotate", w["pictures"]],
        "--annotate",
    ),
    "predict's annotations beside the picture it reads": (
        lambda w: ["predict", w["picture"], "--models", w["models"], "--annotate", w["pictures"]],
        "annotated copies would overwrite it",
    ),
    "predict's annotations beside the folder it reads": (
        lambda w: ["predict", w["pictures"], "--models", w["models"], "--annotate", w["raw"]],
        "annotated copies would overwrite it",
    ),
    "export over the Global Net": (
        lambda w: ["export", "--models", w["models"], "--format", "torchscript",
                   "--out", w["models"] / "global.pt"],
        "is an input",
    ),
    "export over a link to the Global-ROI Net": (
        lambda w: ["export", "--models", w["models"], "--format", "torchscript",
                   "--out", w["roi_link"]],
        "is an input",
    ),
    "import-reference over the authors' file": (
        lambda w: ["import-reference", "--arch", "global", "--checkpoint", w["authors"],
                   "--dataset", "rafdb", "--out", w["authors"]],
        "is an input",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(OUTPUTS))
def test_an_output_inside_read_data_or_over_an_input_is_refused_before_any_write(case, world):
    argv, says = OUTPUTS[case]
    before = snapshot(world["tmp"])
    r = fer(*argv(world))
    refused(r, says)
    assert snapshot(world["tmp"]) == before  # nothing written, nothing changed, anywhere


def test_an_annotated_copy_is_never_written_over_its_input_from_a_stdin_list(world):
    """A list on stdin is not known before the run: each copy is checked against its source."""
    before = snapshot(world["tmp"])
    r = fer(
        "predict", "-", "--models", world["models"], "--annotate", world["pictures"],
        stdin=f"{world['picture']}\n",
    )  # fmt: skip
    refused(r, "is the input itself")
    assert snapshot(world["tmp"]) == before


def test_an_annotated_copy_never_lands_among_the_inputs_from_a_stdin_list(world):
    """a.jpg's copy is a.png: listed on stdin with DIR its folder, it would replace a.png."""
    pictures = world["pictures"]
    save(pictures / "other.jpg", face_like(64, 5))
    before = snapshot(world["tmp"])
    r = fer(
        "predict", "-", "--models", world["models"], "--annotate", pictures,
        stdin=f"{pictures / 'other.jpg'}\n",
    )  # fmt: skip
    refused(r, "beside its input")
    assert snapshot(world["tmp"]) == before


def test_writable_out_variants(tmp_path):
    root, out = tmp_path / "raw", tmp_path / "out"
    (root / "a").mkdir(parents=True)
    f = root / "a" / "x.png"
    f.write_bytes(b"x")
    ok = [out / "m.csv", tmp_path / "raw2" / "m.csv", tmp_path / "rawfile"]
    for path in ok:
        assert writable_out(path, inputs=[f], raw_roots=[root]) == path
    bad = [root / "m.csv", root / "a", root / "a" / ".." / "b", tmp_path, f, tmp_path / "." / "raw"]
    for path in bad:
        with pytest.raises(FerError):
            writable_out(path, inputs=[f], raw_roots=[root])
    with pytest.raises(FerError, match="is an input"):
        writable_out(Path(os.path.relpath(f)), inputs=[f])
