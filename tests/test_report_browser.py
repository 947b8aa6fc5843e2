"""The report in a real browser: headless Chromium loads it offline, with no console message.

Skipped when ``chromium`` is not installed, unless the ``CI`` environment variable is set: on CI a
missing browser fails. The screenshot and PDF stay in the test's temp dir as artefacts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fer.report import build_report
from tests.test_report import EVIL, table_cells, write_workspace

pytestmark = pytest.mark.browser

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROBE = """<script>
window.addEventListener("load", function () {
  var th = document.querySelector("table.bench-jobs th:nth-child(3)");
  th.click();
  var rows = document.querySelectorAll("table.bench-jobs tbody tr");
  document.body.setAttribute("data-sorted-first", rows[0].cells[0].textContent);
});
</script>"""


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, and CI is set: the browser test must run")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return exe


def browse(exe: str, tmp: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium on a local file with console logging on stderr."""
    cmd = [
        exe,
        *FLAGS,
        f"--user-data-dir={tmp / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=3000",
        *args,
        page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("report")
    kwargs = write_workspace(root)
    page = root / "all.html"
    page.write_text(build_report(**kwargs), encoding="utf-8")
    return page, kwargs


def test_dom_holds_the_tables_with_the_right_numbers(chromium, rendered, tmp_path):
    page, kwargs = rendered
    proc = browse(chromium, tmp_path, page, "--dump-dom")
    assert console_lines(proc.stderr) == []  # no error, no CSP violation, no log at all
    dom = proc.stdout
    assert re.search(r"<title>FER: global and ROI", dom)  # the injected script did not run
    assert dom.count('<table class="acc"') == 2
    cells = table_cells(dom)
    for decl in kwargs["cells"]:
        key = f"{decl['dataset']}/{decl['target']}/{decl['arch']}"
        path = Path(decl["path"])
        if not path.is_file():
            assert cells[key]["attrs"].get("data-missing") == "1"
            assert " ".join(cells[key]["text"].split()).startswith("missing")
            continue
        acc = json.loads(path.read_text())["accuracy"]
        assert float(cells[key]["attrs"]["data-accuracy"]) == acc
        assert " ".join(cells[key]["text"].split()).startswith(f"{100 * acc:.2f}")
    assert 'id="test-selection-warning"' in dom and "SYNTHETIC DATA" in dom
    assert EVIL not in dom and "pwned" not in dom.split("<body", 1)[0]
    assert dom.count("<svg") == 9 + 4  # confusion matrices + training curves


def test_sorting_script_runs_without_errors(chromium, rendered, tmp_path):
    page, _ = rendered
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    proc = browse(chromium, tmp_path, probe, "--dump-dom")
    assert console_lines(proc.stderr) == []
    assert 'data-sorted-first="evaluate"' in proc.stdout  # 2.0 s sorts before 12.5 s


def test_screenshot_and_print(chromium, rendered, tmp_path):
    page, _ = rendered
    shot, pdf = tmp_path / "report.png", tmp_path / "report.pdf"
    proc = browse(
        chromium,
        tmp_path,
        page,
        "--window-size=1280,2400",
        "--hide-scrollbars",
        f"--screenshot={shot}",
    )
    assert console_lines(proc.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    browse(chromium, tmp_path, page, "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 20_000
    print(f"screenshot: {shot}\nprinted: {pdf}")


def test_three_seed_demo_runs_and_the_browser_shows_the_evidence(chromium, features_run, tmp_path):
    """A 3-seed demo grid (the ``demo`` set of the features run, tests/features.py: tiny
    trainings, the path, not the accuracy) plans one job per seed, and its report shows mean ±
    std per cell, the paired table with the validated fusion, the error galleries and the
    curves' marks, in a real browser, with no console message."""
    from tests.conftest import smk
    from tests.test_workflow import job_counts

    work = features_run.work
    plan = smk(
        "-n", "--forceall", "--configfile=features.yaml", "results/demo/demo_fused.json", cwd=work
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    counts = job_counts(plan.stdout)
    assert counts["train_model"] == 6 and counts["infer_record"] == 3 + 3  # test + validation
    assert counts["evaluate_cell"] == 1 and "pair_models" not in counts
    fused = json.loads((work / "results/demo/demo_fused.json").read_text())
    assert fused["replicates"]["seeds"] == [0, 1, 2]
    assert len(fused["provenance"]["predictions"]) == 3
    assert [(p["a"], p["b"]) for p in fused["paired"]] == [
        ("fused", "global"),
        ("fused", "roi"),
        ("roi", "global"),
    ]
    assert len(fused["validated_fusion"]["per_seed"]) == 3
    for s in (0, 1, 2):
        assert (work / f"models/demo/seed{s}/fusion.json").is_file()
    proc = browse(chromium, tmp_path, work / "reports" / "all.html", "--dump-dom")
    assert console_lines(proc.stderr) == []
    dom = proc.stdout
    assert dom.count('data-replicates="3"') == 3  # every cell: 3 seeds, mean ± std
    assert 'data-paired-row="demo"' in dom and "data-validated-fusion=" in dom
    assert 'data-pair="fused-global"' in dom and "data-confusion-diff" in dom
    assert "data-gallery=" in dom and 'data-mark="best"' in dom
    assert 'class="replicates"' in dom
