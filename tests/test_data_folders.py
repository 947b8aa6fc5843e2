"""The `folders` adapter: a researcher's own class folders, through the whole workflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fer.data import get_adapter
from fer.data.manifest import build_manifest
from fer.errors import FerError


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_split_folders_any_spelling_mapped_and_skipped_classes_and_subjects(tmp_path):
    root = tmp_path / "mine"
    for split in ("Training", "test"):
        for folder in ("Angry", "happiness", "joy", "other"):
            for i in range(3):
                touch(root / split / folder / f"P{i:02d}_{split}_{i}.jpg")
    options = {"classes": {"joy": "surprise", "other": None}, "group_pattern": r"^(P\d+)_"}
    table, summary = build_manifest("mine", root, "folders", options, val_fraction=0.34)
    assert summary["classes"] == ["happy", "surprise", "anger"]
    assert summary["skipped"] == {"class other": 6}
    assert {r["split"] for r in table} == {"train", "val", "test"}
    assert {r["group"] for r in table} == {"P00", "P01", "P02"}
    val = {r["group"] for r in table if r["split"] == "val"}
    train = {r["group"] for r in table if r["split"] == "train"}
    assert val and not val & train  # whole subjects carved into val


def test_one_folder_with_a_split_file(tmp_path):
    root = tmp_path / "mine"
    for cls in ("sad", "fear"):
        for i in range(4):
            touch(root / cls / f"{cls}{i}.png")
    (root / "splits.txt").write_text(
        "# path split\nsad/sad0.png test\nsad/sad1.png,train\nfear/fear0.png testing\n"
        "fear/fear1.png train\nfear/fear2.png val\n"
    )
    table, summary = build_manifest("mine", root, "folders", {"split_file": "splits.txt"})
    splits = {r["path"]: r["split"] for r in table}
    assert splits == {
        "sad/sad0.png": "test",
        "sad/sad1.png": "train",
        "fear/fear0.png": "test",
        "fear/fear1.png": "train",
        "fear/fear2.png": "val",
    }
    assert summary["skipped"] == {"not_in_split_file": 3}
    (root / "splits.txt").write_text("sad/sad9.png,test\n")
    with pytest.raises(FerError, match=r"splits\.txt: lists 1 image\(s\) not in the class folders"):
        build_manifest("mine", root, "folders", {"split_file": "splits.txt"})
    (root / "splits.txt").write_text("sad/sad0.png,later\n")
    with pytest.raises(FerError, match=r"splits\.txt, line 1: expected"):
        build_manifest("mine", root, "folders", {"split_file": "splits.txt"})


@pytest.mark.parametrize(
    ("folder", "options", "message"),
    [
        (
            "hapy",
            {},
            r"class folder 'hapy' is no class fer knows \(did you mean 'happy'\?\); "
            r"map it with the option classes",
        ),
        ("joy", {"classes": {"joy": "glad"}}, r"maps 'joy' to 'glad'; expected one of"),
        (
            "sad",
            {"group_pattern": "^(S\\d+)_"},
            r"x0\.png: file name does not match group_pattern",
        ),
        ("sad", {"group_pattern": "S\\d+"}, r"needs a \(group\) for the subject"),
    ],
)
def test_mistakes_are_one_line_saying_what_to_write(folder, options, message, tmp_path):
    root = tmp_path / "mine"
    touch(root / "train" / folder / "x0.png")
    with pytest.raises(FerError, match=message):
        get_adapter("folders")(root, options)


def test_a_class_folder_data_set_of_real_faces_runs_through_the_workflow(shared_data, features_run):
    """CK+48 faces laid out as a user's own train/test class folders (subjects apart, folder
    names in other spellings), prepared, trained and scored by the workflow, with no code
    (the ``mine`` set of the features run, tests/features.py)."""
    work, r = features_run.work, features_run.process
    summary = json.loads((work / "resources/mine/manifest.summary.json").read_text())
    assert summary["adapter"] == "folders" and summary["n_groups"] >= 8
    assert summary["classes"] == ["happy", "sad", "surprise", "anger"]
    result = json.loads((work / "results/mine/mine_fused.json").read_text())
    assert result["adapters"] == {"dataset": "folders", "target": "folders"}
    assert result["n_scored"] > 0 and 0 <= result["accuracy"] <= 1
    assert "Class folders" in (work / "reports/all.html").read_text()
    assert f"report: {work / 'reports/all.html'}" in r.stderr  # the run ends saying where
