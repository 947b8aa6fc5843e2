"""Unit tests of the report's parts: figure geometry, published numbers, inputs."""

from __future__ import annotations

import math

import pytest

from fer.errors import FerError
from fer.report.figures import confusion_figure, history_plots, nice_ticks
from fer.report.inputs import cells_from_paths, load_benchmark, load_config
from fer.report.render import summary_blocks
from fer.report.tables import reference, reference_entry, reference_rows, slug


def test_reference_data_matches_the_published_tables():
    assert len(reference()["entries"]) == 33
    sfew = reference_entry("rafdb", "sfew", "global")
    assert sfew["readme_pct"] == 46.28 and sfew["log"] == 0.4620
    assert reference_entry("affectnet7", "affectnet7", "global")["log"] == 0.6494
    assert reference_entry("ckplus", "ckplus", "fused")["log_folds"][0] == 0.9873
    assert reference_entry("affectnet8", "jaffe", "fused")["readme_pct"] == 52.58


def test_confusion_figure_is_row_normalised_with_counts():
    fig = confusion_figure(["a", "b"], [[3, 1], [0, 0]])
    texts = [(c["pct"], c["count"]) for c in fig["cells"]]
    assert texts == [("75%", "3"), ("25%", "1"), ("–", "0"), ("–", "0")]


def test_history_plots_and_ticks():
    rows = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "train_acc": 0.5,
            "val_loss": float("nan"),
            "val_acc": 0.4,
        }
        for e in (1, 2, 3)
    ]
    loss, acc = history_plots(rows)
    assert [s["name"] for s in loss.series] == ["train", "val"]
    assert len(loss.series[0]["lines"]) == 1 and loss.series[1]["lines"] == []
    assert acc.y_ticks[0]["label"] <= "40" and nice_ticks(0, 1)[-1] >= 1


def test_lr_steps_are_marked_for_a_stepwise_schedule_only():
    rows = [
        {"epoch": e, "lr": lr, "train_loss": 1, "train_acc": 0.5, "val_loss": 1, "val_acc": 0.4}
        for e, lr in ((1, 0.1), (2, 0.1), (3, 0.01), (4, 0.008))
    ]
    kinds = [[m["kind"] for m in p.marks] for p in history_plots(rows, 2)]
    assert kinds == [["lr", "lr", "best"]] * 2  # the drops after epochs 2 and 3
    cosine = [[m["kind"] for m in p.marks] for p in history_plots(rows, 2, stepwise=False)]
    assert cosine == [["best"]] * 2


def test_ticks_cover_the_range():
    for lo, hi in [(0, 1), (0.31, 0.93), (0, 2.7), (5, 5), (-1, 40)]:
        ticks = nice_ticks(lo, hi)
        assert ticks[0] <= lo and ticks[-1] >= hi and 2 <= len(ticks) <= 12
    ticks = nice_ticks(float("nan"), float("nan"))
    assert ticks[0] == 0.0 and ticks[-1] == 1.0


def test_reference_rows_follow_the_readme_layout():
    rows = reference_rows()
    assert [(d, t) for d, t, _ in rows][:5] == [
        (d, d) for d in ("affectnet7", "affectnet8", "rafdb", "ferplus", "ckplus")
    ]
    assert all(set(archs) == {"roi", "global", "fused"} for _, _, archs in rows)


def test_slug_keeps_ids_safe():
    assert slug("<script>", "a b") == "script-a-b"
    assert slug("", "") == "x" and slug("<>") == "x"


def test_config_inline_json_or_file(tmp_path):
    data, text = load_config('{"train": {"seed": 3}}')
    assert data == {"train": {"seed": 3}} and "seed: 3" in text
    path = tmp_path / "c.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(FerError, match="expected a mapping"):
        load_config(path)
    with pytest.raises(FerError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_benchmark_rule_and_wildcards_from_the_path(tmp_path):
    path = tmp_path / "benchmarks" / "evaluate" / "rafdb" / "sfew_fused.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("s\th:m:s\tmax_rss\n1.5\t0:00:01\t10\n")
    bench = load_benchmark(path)
    assert (bench.rule, bench.wildcards, bench.rows[0]["s"]) == (
        "evaluate",
        "rafdb/sfew_fused",
        "1.5",
    )
    path.write_text("seconds\n1\n")
    with pytest.raises(FerError, match="'s' column"):
        load_benchmark(path)


def test_result_paths_become_cells():
    cells = cells_from_paths(["results/affectnet8/ckplus_roi.json", "r/a/ck_plus_fused.json"])
    assert cells[0] == {
        "dataset": "affectnet8",
        "target": "ckplus",
        "arch": "roi",
        "path": "results/affectnet8/ckplus_roi.json",
    }
    assert cells[1]["target"] == "ck_plus" and cells[1]["arch"] == "fused"
    for bad in ("results/x/noarch.json", "results/x/a_b.csv", "/a_b.json"):
        with pytest.raises(FerError, match="TARGET_ARCH"):
            cells_from_paths([bad])


def test_summary_blocks_shape_counts_and_matrices():
    blocks = summary_blocks(
        {
            "dataset": "d",
            "roi_coverage": 0.5,
            "classes": ["a", "b"],
            "counts_by_status": {"ok": 3, "no_face": 1},
            "empty": {},
            "by_class": {"ok": {"a": 1}},
            "odd": [{"x": 1}],
        }
    )
    kinds = {b["title"]: b for b in blocks}
    assert ("roi_coverage", "50.00 %") in kinds["summary"]["rows"]
    assert ("classes", "a, b") in kinds["summary"]["rows"]
    assert kinds["counts_by_status"]["kind"] == "bars" and kinds["counts_by_status"]["total"] == 4
    assert kinds["by_class"]["kind"] == "matrix" and kinds["odd"]["kind"] == "json"
    assert "empty" not in kinds and not math.isnan(kinds["counts_by_status"]["rows"][0][2])


def test_a_confusion_difference_is_green_where_the_first_does_better():
    """One colour, one meaning: a diagonal gain and an off-diagonal loss (a confusion fewer)
    are both green; a diagonal loss and a confusion more are both red."""
    from fer.report.figures import difference_figure

    fig = difference_figure(["happy", "sad"], [[2, -2], [1, -1]])
    cells = {(k // 2, k % 2): c for k, c in enumerate(fig["cells"])}
    green = {cells[0, 0]["fill"], cells[0, 1]["fill"]}  # +2 right, 2 confusions fewer
    red = {cells[1, 1]["fill"], cells[1, 0]["fill"]}  # 1 right fewer, 1 confusion more
    assert len(green) == 1 and len(red) == 1 and green != red
    assert [cells[0, 1]["pct"], cells[1, 0]["pct"]] == ["−2", "+1"]  # the signed counts
    assert cells[0, 0]["better"] > 0 and cells[0, 1]["better"] > 0 and cells[1, 0]["better"] < 0
