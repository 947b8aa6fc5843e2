"""The adapter registry, the split helpers and the ``fer manifest`` verb (docs/design.md)."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict

import pytest

from fer import cli
from fer.contracts import MANIFEST_COLUMNS as COLUMNS
from fer.data import _ADAPTERS, get_adapter, list_datasets, register_dataset
from fer.data.manifest import build_manifest
from fer.data.splits import carve_val, kfold
from fer.errors import FerError
from fer.labels import CANONICAL
from tests.test_data_adapters import FAKES, fake_ckplus48, fake_ferplus_pair

SUMMARY_KEYS = {
    "dataset",
    "adapter",
    "root",
    "classes",
    "counts",
    "skipped",
    "kfold",
    "seed",
    "val_fraction",
    "synthetic",
}


def read_manifest(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


# ---------------------------------------------------------------- registry


def test_registry_lists_every_data_set():
    assert set(list_datasets()) == {
        "affectnet7",
        "affectnet8",
        "rafdb",
        "ferplus",
        "fer2013",
        "ckplus",
        "jaffe",
        "sfew",
        "demo",
        "folders",
    }


def test_unknown_adapter_and_option_are_user_errors():
    with pytest.raises(FerError, match="unknown data set adapter 'nope'; known: affectnet7, "):
        get_adapter("nope")
    with pytest.raises(FerError, match=r"adapter 'rafdb': unknown option\(s\) \['colour'\]"):
        get_adapter("rafdb").resolve_options({"colour": 1})


def test_register_dataset_adds_and_refuses_duplicates():
    facts = {"title": "Tiny", "classes": ("happy", "sad"), "size": 3}

    @register_dataset(**facts, options={"scale": 3})
    def tiny_test_set(root, options):
        """A test adapter."""

    try:
        entry = get_adapter("tiny_test_set")
        assert entry.defaults == {"scale": 3} and entry.doc == "A test adapter."
        assert (entry.title, entry.classes, entry.size) == ("Tiny", ("happy", "sad"), 3)
        with pytest.raises(ValueError, match="already registered"):
            register_dataset("tiny_test_set", **facts)(tiny_test_set)
    finally:
        _ADAPTERS.pop("tiny_test_set")
    with pytest.raises(ValueError, match="canonical order"):
        register_dataset(title="x", classes=("sad", "happy"), size=1)
    with pytest.raises(ValueError, match="positive number"):
        register_dataset(title="x", classes=("sad",), size=0)


@pytest.mark.parametrize("name", list_datasets())
def test_every_adapter_declares_its_facts(name):
    entry = get_adapter(name)
    assert entry.title and entry.size > 0 and entry.classes


@pytest.mark.parametrize("name", list_datasets())
def test_every_adapter_writes_a_manifest(name, tmp_path, capsys):
    build, n_images = FAKES[name]
    root = build(tmp_path / "data")
    out = tmp_path / "resources" / name / "manifest.csv"
    args = ["manifest", "--dataset", name, "--root", str(root), "--out", str(out)]
    assert cli.main(args) == 0
    fields, rows = read_manifest(out)
    assert tuple(fields) == COLUMNS and len(rows) == n_images
    assert all(CANONICAL[int(r["label"])] == r["label_name"] for r in rows)
    assert {r["split"] for r in rows} <= {"train", "val", "test"}
    summary = json.loads(out.with_name("manifest.summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary) and summary["adapter"] == name
    assert summary["synthetic"] is (name == "demo")
    counted = {(s, c): n for s, per in summary["counts"].items() for c, n in per.items() if n}
    assert counted == Counter((r["split"], r["label_name"]) for r in rows)
    assert summary["classes"] == [c for c in CANONICAL if c in {r["label_name"] for r in rows}]
    assert "total" in capsys.readouterr().out


# ---------------------------------------------------------------- splits


def test_carve_val_ungrouped_is_exact_per_class_and_seeded():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 7
    mask = carve_val(labels, [""] * len(labels), 0.2, seed=1)
    assert Counter(label for label, m in zip(labels, mask, strict=True) if m) == {
        "a": 10,
        "b": 6,
        "c": 1,
    }
    assert mask == carve_val(labels, [""] * len(labels), 0.2, seed=1)
    assert mask != carve_val(labels, [""] * len(labels), 0.2, seed=2)
    assert not any(carve_val(labels, [""] * len(labels), 0.0, seed=1))
    with pytest.raises(FerError, match="val fraction"):
        carve_val(labels, [""] * len(labels), 1.0, seed=1)


def test_carve_val_keeps_groups_whole():
    labels = [c for _ in range(20) for c in "abcd" for _ in range(3)]
    groups = [f"g{i // 12}" for i in range(len(labels))]  # 20 subjects, 12 images each
    mask = carve_val(labels, groups, 0.25, seed=0)
    val = {g for g, m in zip(groups, mask, strict=True) if m}
    train = {g for g, m in zip(groups, mask, strict=True) if not m}
    assert not val & train and len(val) == 5


def test_kfold_is_subject_disjoint_and_balanced():
    labels, groups = [], []
    for s in range(30):
        for k in range(3 + s % 5):
            labels.append("abc"[(s + k) % 3])
            groups.append(f"S{s:03d}")
    folds = kfold(labels, groups, 5, seed=0)
    per_group = defaultdict(set)
    for g, f in zip(groups, folds, strict=True):
        per_group[g].add(f)
    assert all(len(f) == 1 for f in per_group.values())
    sizes = Counter(folds)
    assert set(sizes) == set(range(5)) and max(sizes.values()) - min(sizes.values()) <= 3
    assert folds == kfold(labels, groups, 5, seed=0)
    with pytest.raises(FerError, match="k-fold needs"):
        kfold(labels, groups, 31, seed=0)


# ---------------------------------------------------------------- manifest


def test_official_val_is_not_recarved(tmp_path):
    table, summary = build_manifest("ferplus", fake_ferplus_pair(tmp_path), val_fraction=0.5)
    assert Counter(r["split"] for r in table) == {"train": 3, "val": 1, "test": 2}
    assert summary["skipped"] == {"majority_not_face": 1, "majority_unknown": 1, "no_image_name": 1}


def test_kfold_manifest_all_train_with_folds(tmp_path):
    table, summary = build_manifest("ckplus48", fake_ckplus48(tmp_path), adapter="ckplus", k=4)
    assert {r["split"] for r in table} == {"train"} and {r["fold"] for r in table} == set(range(4))
    assert summary["kfold"] == 4 and set(summary["fold_counts"]) == {"0", "1", "2", "3"}
    folds_of = defaultdict(set)
    for r in table:
        folds_of[r["group"]].add(r["fold"])
    assert all(len(f) == 1 for f in folds_of.values())


def test_manifest_cli_user_errors(tmp_path, capsys):
    out = str(tmp_path / "m.csv")
    missing = tmp_path / "nope"
    assert (
        cli.main(
            [
                "manifest",
                "--dataset",
                "x",
                "--adapter",
                "jaffe",
                "--root",
                str(missing),
                "--out",
                out,
            ]
        )
        == 2
    )
    assert capsys.readouterr().err == f"error: data set 'x': root {missing} does not exist\n"
    (tmp_path / "file").write_text("")
    args = ["manifest", "--dataset", "jaffe", "--root", str(tmp_path / "file"), "--out", out]
    assert cli.main(args) == 2
    assert "is not a folder" in capsys.readouterr().err
    root = str(fake_ckplus48(tmp_path / "ck"))
    for options, message in (
        ("{bad", "not valid JSON"),
        ("[1]", "expected a JSON object"),
        ('{"lastframes": 2}', "unknown option"),
    ):
        args = ["manifest", "--dataset", "ckplus", "--root", root, "--options", options]
        assert cli.main([*args, "--out", out]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "m.csv").exists()
