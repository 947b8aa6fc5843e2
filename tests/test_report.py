"""`fer report`: tables from hand-made result files, missing cells, warnings, escaping, errors.

The fixture builders here (``write_workspace``) are shared with ``test_report_browser.py``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from fer.cli import main as fer_main
from fer.errors import FerError
from fer.report import build_report, main

EVIL = '<script>document.title="pwned"</script>'
SEVEN = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"]


def confusion(classes: list[str], n_per_class: int, correct: int) -> list[list[int]]:
    """Counts with ``correct`` hits per class and the misses on the next class."""
    k = len(classes)
    cm = [[0] * k for _ in range(k)]
    for i in range(k):
        cm[i][i] = correct
        cm[i][(i + 1) % k] = n_per_class - correct
    return cm


def paired(a: str, b: str, acc: float, n: int) -> dict:
    """A paired comparison as metrics.paired_difference writes it (a 2-point gain)."""
    return {
        "a": a,
        "b": b,
        "subset": "roi" if "roi" in (a, b) else "all",
        "n": n,
        "n_units": n,
        "unit": "images",
        "seeds": 1,
        "accuracy_a": acc,
        "accuracy_b": acc - 0.02,
        "difference": 0.02,
        "ci95": [-0.01, 0.05],
        "a_only": 5,
        "b_only": 3,
        "p_value": 0.7265625,
        "test": "mcnemar_exact over images",
        "p_mcnemar": [0.7265625],
    }


def make_result(
    dataset,
    target,
    arch,
    correct=7,
    n_per_class=10,
    classes=SEVEN,
    model_classes=None,
    target_classes=None,
    **extra,
) -> dict:
    """A result JSON following fer/schemas/result.schema.json, its metrics consistent with its
    confusion matrix; ``extra`` overrides fields."""
    cm = confusion(classes, n_per_class, correct)
    n = n_per_class * len(classes)
    acc = correct / n_per_class
    model = list(model_classes or classes)
    target_classes = list(target_classes or classes)
    dropped = [c for c in model if c not in classes]
    kinds = ("global", "roi") if arch == "fused" else (arch,)
    result = {
        "schema_version": 2,
        "dataset": dataset,
        "target": target,
        "arch": arch,
        "protocol": "reference",
        "within": dataset == target,
        "classes": list(classes),
        "label_map": {
            "model_classes": model,
            "target_classes": target_classes,
            "scored": list(classes),
            "dropped_logits": dropped,
            "dropped_target_classes": [c for c in target_classes if c not in classes],
            "protocol": "reference",
        },
        "n_images": n,
        "n_scored": n,
        "n_with_roi": n - 3,
        "excluded": {},
        "accuracy": acc,
        "accuracy_ci95": [max(0.0, acc - 0.05), min(1.0, acc + 0.04)],
        "mean_class_accuracy": acc,
        "macro_f1": acc - 0.01,
        "per_class": {
            c: {"precision": acc, "recall": acc, "f1": acc, "support": n_per_class} for c in classes
        },
        "confusion_matrix": cm,
        "roi_subset": {
            "n": n - 3,
            "accuracy": {"global": acc - 0.02, "roi": acc, "fused": min(1.0, acc + 0.01)},
        },
        "full_set_accuracy": acc,
        "ferplus": None,
        "folds": None,
        "fold_mean": None,
        "fold_std": None,
        "replicates": None,
        "paired": [paired(a, b, acc, n) for a, b in (("fused", "global"), ("roi", "global"))],
        "validated_fusion": None,
        "provenance": {
            "checkpoints": {k: {"model": k, "classes": model, "selection": "val"} for k in kinds},
            "selection": "val",
            "selected_on_test": False,
            "seed": 0,
            "bootstrap": 1000,
            "git_sha": "abc1234",
            "config_hash": "cfg99",
            "versions": {"torch": "2.14.1"},
            "fusion_weights": {"roi": 0.55, "global": 0.45},
            "device": "cuda:0",
        },
        "synthetic": False,
        "warnings": [],
    }
    result.update(extra)
    return result


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_history(path: Path, epochs: int = 4, run: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "img_per_s"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for e in range(1, epochs + 1):
        w.writerow([e, 0.01, 2.0 / e, 0.3 + 0.1 * e, 2.2 / e, 0.25 + 0.1 * e, 3.0, 120.0])
    path.write_text(buf.getvalue())
    arch = path.name.removesuffix(".history.csv")
    model, _, fold = arch.partition(".fold")
    run = run or {
        "dataset": path.parent.name,
        "arch": model,
        "fold": int(fold) if fold else None,
        "seed": 0,
        "selection": "val",
        "selected_on_test": False,
        "best_epoch": epochs,
        "git_sha": "abc1234",
        "versions": {"torch": "2.14.1"},
        "wall_time_s": 12.5,
    }
    write_json(path.with_name(f"{arch}.run.json"), run)
    return path


def write_prepared(root: Path, dataset: str, synthetic: bool = False) -> Path:
    """summary.json as `fer prepare` writes it (fer/preprocess/prepare.py) + a contact sheet."""
    folder = root / "resources" / dataset / "prepared"
    statuses = ("ok", "no_face", "landmarks_failed", "roi_empty", "unreadable")
    summary = {
        "dataset": dataset,
        "synthetic": synthetic,
        "classes": ["happy", "sad"],
        "n_images": 100,
        "n_with_roi": 90,
        "roi_coverage": 90 / 99,
        "roi_coverage_all": 0.9,
        "n_multi_face": 2,
        "detector": "mtcnn",
        "device": "cpu",
        "workers": 2,
        "wall_s": 2.41,
        "faces_per_s": 41.5,
        "counts_by_status": dict(zip(statuses, (90, 6, 3, 0, 1), strict=True)),
        "counts_by_status_class": {
            "ok": {"happy": 50, "sad": 40},
            "no_face": {"happy": 6, "sad": 0},
            "landmarks_failed": {"happy": 1, "sad": 2},
            "roi_empty": {"happy": 0, "sad": 0},
            "unreadable": {"happy": 0, "sad": 1},
        },
        "counts_by_split": {"train": {"ok": 70, "no_face": 4}, "test": {"ok": 20, "no_face": 2}},
        "unreadable_reasons": {"cannot decode": 1},
    }
    write_json(folder / "summary.json", summary)
    Image.new("RGB", (64, 32), (200, 80, 40)).save(folder / "contact_sheet.png")
    return folder / "summary.json"


def write_benchmark(root: Path, rule: str, wildcards: str, seconds: float) -> Path:
    path = root / "benchmarks" / rule / f"{wildcards}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    head = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    path.write_text(
        head + f"{seconds}\t0:00:{int(seconds):02d}\t812.3\t900\t700\t710\t1\t2\t95.0\t40.1\n"
    )
    return path


def write_workspace(root: Path) -> dict:
    """A small finished workflow: rafdb within + cross to sfew, one missing cell, one on test,
    a synthetic demo cell and a cell whose names hold a script tag. Returns build_report kwargs."""
    res = root / "results"
    cells = []

    def add(dataset, target, arch, data, name=None, within=None):
        path = res / dataset / (name or f"{target}_{arch}.json")
        if data is not None:
            write_json(path, data)
        cells.append(
            {
                "dataset": dataset,
                "target": target,
                "arch": arch,
                "path": str(path),
                **({} if within is None else {"within": within}),
            }
        )

    add("rafdb", "rafdb", "roi", make_result("rafdb", "rafdb", "roi", correct=9))
    add("rafdb", "rafdb", "global", make_result("rafdb", "rafdb", "global", correct=8))
    add("rafdb", "rafdb", "fused", None)  # declared, not computed: missing
    on_test = make_result(
        "ckplus", "ckplus", "fused", correct=10, classes=list(SEVEN) + ["contempt"]
    )
    on_test["provenance"].update(selection="test", selected_on_test=True)
    on_test["warnings"] = ["selection: test"]
    on_test.update(
        folds=[{"fold": 0, "accuracy": 1.0, "n": 40}, {"fold": 1, "accuracy": 0.98, "n": 40}],
        fold_mean=0.99,
        fold_std=0.01414,
    )
    add("ckplus", "ckplus", "fused", on_test)
    ferplus = make_result(
        "ferplus", "ferplus", "fused", correct=8, classes=list(SEVEN) + ["contempt"]
    )
    ferplus["ferplus"] = {"majority_accuracy": 0.8, "any_vote_accuracy": 0.9, "n": 80}
    add("ferplus", "ferplus", "fused", ferplus)
    sfew = make_result("rafdb", "sfew", "fused", correct=4, excluded={"unreadable": 4})
    add("rafdb", "sfew", "fused", sfew)
    jaffe = make_result(
        "rafdb",
        "jaffe",
        "roi",
        correct=4,
        classes=SEVEN[1:],
        model_classes=SEVEN,
        target_classes=SEVEN,
        excluded={"label_not_scored:neutral": 10},
    )
    add("rafdb", "jaffe", "roi", jaffe)
    add("rafdb", "jaffe", "global", make_result("rafdb", "jaffe", "global", protocol="shared"))
    add("demo", "demo", "global", make_result("demo", "demo", "global", synthetic=True))
    evil = make_result(EVIL, EVIL, "global")
    add(EVIL, EVIL, "global", evil, name="evil<b>x</b>.json")
    histories = [
        write_history(root / "models" / "rafdb" / "roi.history.csv"),
        write_history(
            root / "models" / "ckplus" / "global.history.csv",
            run={
                "dataset": "ckplus",
                "arch": "global",
                "seed": 1,
                "selection": "test",
                "selected_on_test": True,
            },
        ),
    ]
    config = root / "config.yaml"
    config.write_text(f"train:\n  seed: 0\n  epochs: 4\nnote: '{EVIL}'\n")
    return {
        "cells": cells,
        "histories": histories,
        "prepared_summaries": [write_prepared(root, "rafdb"), write_prepared(root, "demo", True)],
        "benchmarks": [
            write_benchmark(root, "train", "rafdb/roi", 12.5),
            write_benchmark(root, "evaluate", "rafdb/sfew_fused", 2.0),
        ],
        "config": config,
    }


class CellParser(HTMLParser):
    """Collects the text of every element carrying a ``data-cell`` attribute."""

    def __init__(self):
        super().__init__()
        self.cells: dict[str, dict] = {}
        self.stack: list[tuple[str, dict | None]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        entry = None
        if "data-cell" in a:
            entry = {"attrs": a, "text": ""}
            self.cells[a["data-cell"]] = entry
        if tag not in ("br", "img", "meta", "input", "link"):
            self.stack.append((tag, entry))

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        for _, entry in self.stack:
            if entry is not None:
                entry["text"] += data


@pytest.fixture
def report(tmp_path) -> str:
    kwargs = write_workspace(tmp_path)
    return build_report(**kwargs)


def table_cells(html: str) -> dict[str, dict]:
    parser = CellParser()
    parser.feed(html)
    return parser.cells


def test_table_numbers_match_the_result_files(tmp_path):
    kwargs = write_workspace(tmp_path)
    cells = table_cells(build_report(**kwargs))
    for decl in kwargs["cells"]:
        key = f"{decl['dataset']}/{decl['target']}/{decl['arch']}"
        path = Path(decl["path"])
        if not path.is_file():
            continue
        result = json.loads(path.read_text())
        shown = cells[key]
        assert float(shown["attrs"]["data-accuracy"]) == result["accuracy"]
        text = " ".join(shown["text"].split())
        assert text.startswith(f"{100 * result['accuracy']:.2f}")
        lo, hi = result["accuracy_ci95"]
        assert f"95 % CI {100 * lo:.2f}–{100 * hi:.2f}" in text


def test_reference_number_and_difference_beside_matching_cells(report):
    cells = table_cells(report)
    rafdb_roi = " ".join(cells["rafdb/rafdb/roi"]["text"].split())
    # ours 90.00 against the README's 88.81: +1.19 pp
    assert "ref 88.81" in rafdb_roi and "+1.19 pp" in rafdb_roi
    sfew = " ".join(cells["rafdb/sfew/fused"]["text"].split())
    assert "ref 46.84" in sfew and "−6.84 pp" in sfew
    demo = " ".join(cells["demo/demo/global"]["text"].split())
    assert "ref" not in demo  # no published number for the demo set
    # JAFFE scored under 'shared' while the reference drops neutral: flagged
    ckplus = " ".join(cells["ckplus/ckplus/fused"]["text"].split())
    assert ckplus.startswith("100.00") and "fold mean 99.00 ± 1.41" in ckplus
    assert "ref 99.55 · Δ −0.55 pp (fold mean)" in ckplus  # the reference's CK+ is a fold mean
    ferplus = " ".join(cells["ferplus/ferplus/fused"]["text"].split())
    assert ferplus.startswith("80.00") and "ref 85.19 · Δ +4.81 pp (any-vote rule)" in ferplus
    assert "protocol differs" in cells["rafdb/jaffe/global"]["text"]
    assert "protocol differs" not in cells["rafdb/jaffe/roi"]["text"]


def test_missing_cell_shows_missing_and_no_number(report):
    cells = table_cells(report)
    missing = cells["rafdb/rafdb/fused"]
    assert missing["attrs"].get("data-missing") == "1"
    assert "data-accuracy" not in missing["attrs"]
    text = " ".join(missing["text"].split())
    assert text.startswith("missing")
    assert re.sub(r"ref 87\.65", "", text.split(".json")[-1]).strip() == ""  # only the reference
    assert 'id="missing-banner"' in report


def test_selected_on_test_and_synthetic_are_flagged(report):
    banner = report.split('id="test-selection-warning"', 1)[1].split("</div>", 1)[0]
    assert "WARNING" in banner and "ckplus → ckplus" in banner and "model ckplus/global" in banner
    assert "selected on test" in table_cells(report)["ckplus/ckplus/fused"]["text"]
    synthetic = report.split('id="synthetic-banner"', 1)[1].split("</div>", 1)[0]
    assert "SYNTHETIC DATA" in synthetic and "<code>demo</code>" in synthetic
    assert "rafdb" not in synthetic


def test_tables_are_grouped_within_and_by_training_set(report):
    titles = re.findall(r'<h3 id="table-\d+">([^<]*)</h3>', report)
    assert titles[0] == "Within-dataset accuracy (%)"
    assert "Cross-dataset accuracy (%), trained on RAF-DB" in titles
    within = report.split('data-table="within"', 1)[1].split("</table>", 1)[0]
    assert within.index("RAF-DB") < within.index("CK+") < within.index("Demo")
    header = re.findall(r"<th>([^<]*)</th>", within.split("</thead>")[0])
    assert header == ["Data set", "Global-ROI Net", "Global Net", "Fused"]


def test_script_in_names_renders_as_inert_text(report):
    assert EVIL not in report
    assert "<b>x</b>" not in report
    assert "&lt;script&gt;document.title=&#34;pwned&#34;&lt;/script&gt;" in report
    assert "evil&lt;b&gt;x&lt;/b&gt;.json" in report
    assert len(re.findall(r"<script\b", report)) == 1  # only the page's own sorting script


def test_self_contained_no_external_references(report):
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', report)
    assert refs and all(r.startswith(("#", "data:")) for r in refs), refs
    assert "http://" not in report.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in report and "@import" not in report and "url(" not in report
    assert "default-src 'none'" in report  # CSP: the browser refuses any request
    assert "@media print" in report and "break-inside: avoid" in report
    assert report.count("data:image/png;base64,") == 2  # both contact sheets


def test_details_figures_provenance_and_benchmarks(report):
    assert report.count('class="confusion"') == 9  # one per computed cell
    assert report.count('class="curve"') == 4  # loss + accuracy for two models
    assert 'id="reference"' in report  # RAF-DB cells: the reference's numbers are shown
    # the last epoch was chosen: its label sits left of its line, inside the plot
    assert re.search(r'text-anchor="end" font-size="9" fill="#2e7d32">chosen</text>', report)
    assert 'data-label-map="rafdb/sfew"' in report and 'data-label-map="rafdb/jaffe"' in report
    jaffe = report.split('data-label-map="rafdb/jaffe"', 1)[1].split("</div>", 1)[0]
    assert "images excluded (model lacks it)" not in jaffe
    assert re.search(r"<td>neutral</td>[^\n]*dropped by protocol", jaffe)
    assert re.search(r"<td>happy</td>[^\n]*scored", jaffe)
    sfew = report.split('data-label-map="rafdb/sfew"', 1)[1].split("</div>", 1)[0]
    assert "unreadable 4" in sfew
    bench = report.split('class="bench-rules"', 1)[1].split("</table>", 1)[0]
    assert "train" in bench and "12.5" in bench and "14.5" in bench  # total
    assert "abc1234" in report and "cfg99" in report and "torch" in report
    assert "faces per s" in report and "landmarks failed" in report
    prep = report.split('data-prepared="rafdb"', 1)[1].split('data-prepared="demo"', 1)[0]
    assert "90.91 %" in prep  # ROI coverage of the readable images, as a percentage
    assert re.search(r"<th>ok</th><td class=\"num\">90</td>", prep)
    assert "counts by status class" in prep and "cannot decode" in prep


def test_fixtures_follow_the_result_schema(tmp_path):
    """The hand-made results are what `fer evaluate` writes: they validate against its schema."""
    jsonschema = pytest.importorskip("jsonschema")
    schema_path = Path(__file__).resolve().parents[1] / "fer" / "schemas" / "result.schema.json"
    if not schema_path.is_file():
        pytest.skip(f"{schema_path} not present")
    validator = jsonschema.Draft202012Validator(json.loads(schema_path.read_text()))
    kwargs = write_workspace(tmp_path)
    paths = [Path(c["path"]) for c in kwargs["cells"] if Path(c["path"]).is_file()]
    assert len(paths) == 9
    for path in paths:
        errors = [e.message for e in validator.iter_errors(json.loads(path.read_text()))]
        assert errors == [], (path, errors)


def test_cli_writes_file_and_reports_bad_input(tmp_path, capsys):
    kwargs = write_workspace(tmp_path)
    cells = tmp_path / "cells.json"
    cells.write_text(json.dumps(kwargs["cells"]))
    out = tmp_path / "reports" / "all.html"
    argv = [
        "--cells",
        str(cells),
        "--histories",
        *map(str, kwargs["histories"]),
        "--benchmarks",
        *map(str, kwargs["benchmarks"]),
        "--config",
        str(kwargs["config"]),
        "--out",
        str(out),
        "--title",
        "T<i>",
    ]
    assert main(argv) == 0
    assert "<title>T&lt;i&gt;</title>" in out.read_text()
    assert main(argv) == 0 and "warning" not in capsys.readouterr().err  # the same config again
    assert main([*argv[:-1], "another"]) == 0  # another config's report over it: said
    err = capsys.readouterr().err
    assert "warning: " in err and "held the report of 'T<i>'; it now holds 'another'" in err
    bad = tmp_path / "results" / "rafdb" / "rafdb_roi.json"
    bad.write_text('{"accuracy": 0.5}')
    assert fer_main(["report", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(bad) in err and "confusion_matrix" in err


@pytest.mark.parametrize(
    "content, message",
    [
        ("{", "not valid JSON"),
        ("[1]", "expected a result JSON object"),
        (json.dumps(make_result("a", "a", "roi", accuracy=1.5)), "fraction"),
        (json.dumps(make_result("a", "a", "roi", confusion_matrix=[[1]])), "7x7"),
    ],
)
def test_bad_result_file_names_the_file(tmp_path, content, message):
    path = tmp_path / "results" / "a" / "a_roi.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(FerError, match=message) as err:
        build_report(results=[path])
    assert str(path) in str(err.value)


def test_bad_declarations_and_inputs_are_user_errors(tmp_path):
    with pytest.raises(FerError, match="no result cells"):
        build_report(cells=[])
    with pytest.raises(FerError, match="cell 0 must be"):
        build_report(cells='[{"dataset": "x"}]')
    with pytest.raises(FerError, match="TARGET_ARCH"):
        build_report(results=[tmp_path / "noarch.json"])
    hist = tmp_path / "models" / "x" / "roi.history.csv"
    hist.parent.mkdir(parents=True)
    hist.write_text("epoch,lr\n1,0.1\n")
    with pytest.raises(FerError, match="lacks column"):
        build_report(results=[tmp_path / "results/x/x_roi.json"], histories=[hist])
    with pytest.raises(FerError, match="benchmark file not found"):
        build_report(results=[tmp_path / "results/x/x_roi.json"], benchmarks=[tmp_path / "b.tsv"])


def test_minimal_result_renders_and_absent_path_is_missing(tmp_path):
    minimal = {
        "accuracy": 0.5,
        "classes": ["happy", "sad"],
        "confusion_matrix": [[3, 1], [2, 2]],
        "n_images": 8,
    }
    done = write_json(tmp_path / "results" / "x" / "y_global.json", minimal)
    html = build_report(results=[done, tmp_path / "results" / "x" / "y_roi.json"], title="min")
    cells = table_cells(html)
    assert cells["x/y/global"]["attrs"]["data-accuracy"] == "0.5"
    assert cells["x/y/roi"]["attrs"]["data-missing"] == "1"
    assert "Cross-dataset accuracy (%), trained on x" in html  # x != y: a cross-dataset cell
    assert "75%" in html and "no interval" in html


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--cells",
        "--results",
        "--histories",
        "--prepared-summaries",
        "--benchmarks",
        "--config",
        "--out",
        "--title",
    ):
        assert flag in text


def test_names_are_looked_up_by_adapter_not_by_config_name(tmp_path):
    """A set the config calls `raf` (adapter rafdb) and one called `fer2013priv` (adapter
    fer2013): titles and the published numbers follow the adapters the results record."""
    raf = make_result("raf", "raf", "roi", adapters={"dataset": "rafdb", "target": "rafdb"})
    priv = make_result(
        "raf", "fer2013priv", "roi", adapters={"dataset": "rafdb", "target": "fer2013"}
    )
    cells = [
        {
            "dataset": "raf",
            "target": "raf",
            "arch": "roi",
            "path": str(write_json(tmp_path / "a.json", raf)),
        },
        {
            "dataset": "raf",
            "target": "fer2013priv",
            "arch": "roi",
            "path": str(write_json(tmp_path / "b.json", priv)),
        },
    ]
    html = build_report(cells=cells)
    text = " ".join(table_cells(html)["raf/raf/roi"]["text"].split())
    assert "ref 88.81" in text  # RAF-DB's published Global-ROI number, found through the adapter
    assert 'RAF-DB <span class="muted">(raf)</span>' in html
    assert "trained on RAF-DB" in html and "FER2013" in html


def test_a_result_file_that_holds_another_cell_is_refused(tmp_path):
    path = write_json(tmp_path / "x.json", make_result("rafdb", "sfew", "roi"))
    decl = {"dataset": "rafdb", "target": "jaffe", "arch": "roi", "path": str(path)}
    with pytest.raises(FerError, match=r"x\.json: holds the cell rafdb/sfew/roi, but is declared"):
        build_report(cells=[decl])
    cells = table_cells(build_report(results=[path]))  # --results: identified by its contents
    assert list(cells) == ["rafdb/sfew/roi"]


def test_a_history_is_identified_by_its_run_record(tmp_path):
    run = {"dataset": "rafdb", "arch": "roi", "fold": None, "seed": 0}
    hist = write_history(tmp_path / "elsewhere" / "x.history.csv", run=run)
    cell = {"dataset": "rafdb", "target": "rafdb", "arch": "roi", "path": str(tmp_path / "no.json")}
    html = build_report(cells=[cell], histories=[hist])
    assert 'data-history="rafdb/roi"' in html


def test_each_model_s_recipe_is_shown_beside_its_curves(tmp_path):
    """The levers of the run record's recipe, those that apply: a cosine schedule shows its
    warm-up, not the milestones it ignores; AdamW no momentum; an older record's absent keys
    are left out, not invented."""
    from fer.train.recipe import Recipe

    modern = Recipe.from_dict(
        {"optimizer": "adamw", "schedule": "cosine", "warmup_epochs": 2, "augment": "standard"}
        | {"ema_decay": 0.998, "tta": "flip", "mixup_alpha": 0.2, "lr": 0.003}
    ).to_dict()
    older = {k: v for k, v in Recipe().to_dict().items() if k not in ("optimizer", "schedule")}
    older["augment"] = True  # how fer recorded it before the chains had names
    hists = []
    for name, recipe in (("global", modern), ("roi", older)):
        run = {"dataset": "rafdb", "arch": name, "fold": None, "seed": 0, "recipe": recipe}
        if name == "global":  # what amp: auto and channels_last: null chose on the machine
            run["precision"] = {"amp": "fp32", "why": "amp: auto, the CPU has neither"}
            run["memory_format"] = {"format": "nchw", "why": "channels_last: null, fp32 on CPU"}
        hists.append(write_history(tmp_path / "rafdb" / f"{name}.history.csv", run=run))
    cell = {"dataset": "rafdb", "target": "rafdb", "arch": "roi", "path": str(tmp_path / "no.json")}
    html = build_report(cells=[cell], histories=hists)
    cards = {
        a: html.split(f'data-history="rafdb/{a}"')[1].split('class="card"')[0]
        for a in ("global", "roi")
    }
    rows = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]+)</td></tr>", cards["global"]))
    assert rows["optimizer"] == "adamw · lr 0.003 · weight decay 0.0001"
    assert rows["schedule"] == "cosine · warmup epochs 2"
    assert rows["augmentation"] == "standard · mixup alpha 0.2"
    assert rows["EMA of weights"] == "0.998" and rows["test-time views"] == "flip"
    assert rows["precision"] == "auto → fp32 · channels last null → nchw"
    old = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]+)</td></tr>", cards["roi"]))
    assert "optimizer" not in old and "schedule" not in old and old["augmentation"] == "True"
    assert old["EMA of weights"] == "off" and old["sampling"].startswith("class-balanced")
    assert "loss weights" not in rows["loss"] and "loss weights" in old["loss"]  # roi heads
