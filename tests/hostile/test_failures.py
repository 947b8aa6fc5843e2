"""Rule 5 of docs/safety.md: every failure ends cleanly. Ctrl-C (SIGINT) and a scheduler's
SIGTERM, sent while a verb is busy: exit 130 / 143 within seconds, one line, no traceback, no
half-written file, and the next run starts clean."""

from __future__ import annotations

import csv
import io
import signal
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import BIN
from tests.fakes import write_manifest
from tests.hostile.conftest import face_like, save

CODES = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    """A folder of 120 textured pictures."""
    root = tmp_path_factory.mktemp("many") / "pictures"
    for i in range(120):
        save(root / f"p{i:03d}.png", face_like(64, i))
    return root


def start(*args, cwd=None) -> subprocess.Popen:
    """``fer ARGS`` as a terminal starts it: Ctrl-C not ignored, even where the test runner was
    started in the background (which ignores SIGINT for its children)."""
    return subprocess.Popen(
        [str(BIN / "fer"), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for(condition, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "the run never got busy"
        time.sleep(0.05)


def ended_cleanly(proc: subprocess.Popen, sig: int) -> tuple[str, str]:
    """Send ``sig``; the run ends within 20 s with its exit code and one line; returns output."""
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    code, word = CODES[sig]
    assert proc.returncode == code, (proc.returncode, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert word in lines[-1], lines[-3:]  # the last line says what happened
    return out, err


@pytest.mark.parametrize("sig", list(CODES), ids=["SIGINT", "SIGTERM"])
def test_predict_to_stdout_ends_on_a_whole_row(sig, many, pair):
    proc = start("predict", *[many] * 20, "--models", pair, "--batch-size", 4, "--no-progress")
    first = proc.stdout.readline()  # the header: the run is up
    rows = [proc.stdout.readline() for _ in range(8)]  # and busy
    out, _ = ended_cleanly(proc, sig)
    table = list(csv.reader(io.StringIO(first + "".join(rows) + out)))
    assert len(table) >= 9 and {len(r) for r in table} == {len(table[0])}  # no row cut short


@pytest.mark.parametrize("sig", list(CODES), ids=["SIGINT", "SIGTERM"])
def test_predict_to_files_leaves_no_part(sig, many, pair, tmp_path):
    out, annotated = tmp_path / "t.csv", tmp_path / "annotated"
    proc = start("predict", *[many] * 20, "--models", pair, "--batch-size", 4, "--out", out,
                 "--annotate", annotated)  # fmt: skip
    wait_for(lambda: annotated.is_dir() and len(list(annotated.rglob("*.png"))) >= 4)
    ended_cleanly(proc, sig)
    assert not out.exists()  # the table is published whole or not at all
    left = [p for p in tmp_path.rglob(".*")]
    assert not left, left  # no temporary anywhere
    for picture in annotated.rglob("*.png"):  # the copies written are whole pictures
        Image.open(picture).load()


def test_prepare_with_workers_interrupted_leaves_nothing_and_reruns(many, tmp_path):
    pytest.importorskip("dlib")
    manifest = write_manifest(tmp_path / "m", sorted(p.name for p in many.iterdir()) * 20)
    out = tmp_path / "prepared"
    argv = ["prepare", "--manifest", manifest, "--root", many, "--out", out, "--detector", "none",
            "--chip-size", 64, "--crop-size", 24, "--workers", 2, "--batch-size", 8]  # fmt: skip
    proc = start(*argv)
    wait_for(lambda: any(tmp_path.glob(".prepared*")) or any(tmp_path.glob("*partial*")))
    time.sleep(1.0)
    ended_cleanly(proc, signal.SIGINT)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name != "m"], list(tmp_path.iterdir())
    again = subprocess.run([str(BIN / "fer"), *map(str, argv)], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
