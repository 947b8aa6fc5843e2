"""The `fer` command: dispatch, one-line errors, `--log FILE` and every `python -m` entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import BIN


def fer(*args, cwd=None):
    return subprocess.run([str(BIN / "fer"), *args], capture_output=True, text=True, cwd=cwd)


def test_log_holds_the_output_and_the_terminal_stays_quiet(tmp_path):
    log = tmp_path / "logs" / "demo.log"
    r = fer(
        "--log",
        str(log),
        "demo",
        "--out",
        str(tmp_path / "raw"),
        "--subjects",
        "4",
        "--test-subjects",
        "1",
        "--images-per-class",
        "1",
        "--size",
        "64",
    )
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    assert "synthetic images" in log.read_text()


def test_a_failing_verb_prints_its_error_line_and_where_the_log_is(tmp_path):
    log = tmp_path / "m.log"
    r = fer(
        f"--log={log}",
        "manifest",
        "--dataset",
        "x",
        "--adapter",
        "demo",
        "--root",
        str(tmp_path / "absent"),
        "--out",
        str(tmp_path / "m.csv"),
    )
    assert r.returncode == 2
    assert log.read_text().strip().startswith("error: data set 'x': root")
    assert r.stderr.strip() == f"{log.read_text().strip()} (log: {log})"


def test_usage_errors_and_bugs_end_in_one_line_too(tmp_path):
    log = tmp_path / "t.log"
    r = fer("--log", str(log), "train", "--arch", "nope")
    assert r.returncode == 2 and "error:" in r.stderr and len(r.stderr.splitlines()) == 1
    code = (
        "import sys, fer.cli as c\n"
        "def boom(argv):\n    raise RuntimeError('a bug')\n"
        "import fer.demo; fer.demo.main = boom\n"
        f"sys.exit(c.main(['--log', {str(log)!r}, 'demo']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" in log.read_text()
    assert r.stderr.strip() == f"RuntimeError: a bug (log: {log})"


@pytest.mark.parametrize(
    "module", ["fer.train", "fer.evaluate", "fer.data.manifest", "fer.report", "fer.cli"]
)
def test_every_module_entry_point_reports_user_errors_in_one_line(module, tmp_path):
    args = {"fer.cli": ["manifest"], "fer.train": [], "fer.evaluate": [], "fer.report": []}
    extra = {
        "fer.train": ["--prepared", str(tmp_path), "--arch", "global", "--out", "x.pt"],
        "fer.evaluate": [
            "--dataset",
            "a",
            "--target",
            "b",
            "--arch",
            "global",
            "--predictions",
            str(tmp_path / "absent.npz"),
            "--out",
            "o.json",
        ],
        "fer.report": [
            "--results",
            str(tmp_path / "r.json"),
            "--out",
            str(tmp_path / "a.html"),
            "--histories",
            str(tmp_path / "none.csv"),
        ],
    }
    manifest = [
        "--dataset",
        "x",
        "--adapter",
        "demo",
        "--root",
        str(tmp_path / "absent"),
        "--out",
        str(tmp_path / "m.csv"),
    ]
    argv = args.get(module, []) + extra.get(module, manifest)
    r = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr, r.stderr


def test_under_log_each_epoch_reaches_the_terminal_prefixed_by_the_log(tmp_path):
    import json

    from fer.synthetic import write_prepared

    prepared = write_prepared(tmp_path / "p")
    log = tmp_path / "logs" / "train.log"
    recipe = {"epochs": 2, "batch_size": 8, "samples_per_class": 4, "workers": 0}
    r = fer(
        "--log",
        str(log),
        "train",
        "--prepared",
        str(prepared),
        "--arch",
        "global",
        "--out",
        str(tmp_path / "g.pt"),
        "--recipe",
        json.dumps(recipe),
    )
    assert r.returncode == 0, r.stderr
    shown = r.stderr.splitlines()
    assert [ln.split(" lr ")[0] for ln in shown if ": epoch " in ln] == [
        f"{log}: epoch 1/2",
        f"{log}: epoch 2/2",
    ]
    assert shown[-1].startswith(f"{log}: wrote {tmp_path / 'g.pt'}")
    assert shown[0].startswith(f"{log}: precision ")  # fp32 or bf16, and why
    assert "epoch 2/2" in log.read_text() and len(shown) == 4  # no bars, no warnings
