"""Each adapter on a tiny fake copy of its publisher layout (docs datasets.md), plus bad input.

The ``FAKES`` builders are shared with tests/test_data.py, which runs every registered adapter
through ``fer manifest``.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from fer.data import get_adapter
from fer.data.manifest import build_manifest
from fer.errors import FerError

SEVEN_FOLDERS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def img(path: Path, size: int = 8, mode: str = "L") -> Path:
    """Write a tiny generated image; the format follows the extension (png, jpg, tiff)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (size, size), color=128).save(path)
    return path


def write_csv(path: Path, header: list[str] | None, rows: list[list]) -> Path:
    """Write a csv (header optional) the way the publishers' files look."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def pixels() -> str:
    return " ".join(["7"] * 48 * 48)


def labels_of(result) -> Counter:
    return Counter((r.split, r.label_name) for r in result.rows)


# ---------------------------------------------------------------- builders, one per layout

AFFECTNET_HEADER = [
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
]


def fake_affectnet(root: Path) -> Path:
    """Publisher layout: 2 lists; train codes 0-10 plus a missing image, val 0-7."""
    marks = ";".join(str(v) for v in range(136))
    train, val = [], []
    for code in range(11):
        name = f"1/train{code}.jpg"
        img(root / "Manually_Annotated_Images" / name, mode="RGB")
        train.append([name, 10, 20, 30, 40, marks, code, 0.1, -0.2])
    train.append(["2/missing.jpg", 1, 2, 3, 4, marks, 1, 0, 0])
    for code in range(8):
        name = f"3/val{code}.jpg"
        img(root / "Manually_Annotated_Images" / name, mode="RGB")
        val.append([name, 5, 6, 7, 8, marks, code, 0, 0])
    lists = root / "Manually_Annotated_file_lists"
    write_csv(lists / "training.csv", AFFECTNET_HEADER, train)
    write_csv(lists / "validation.csv", AFFECTNET_HEADER, val)
    return root


def fake_affectnet_folders(root: Path) -> Path:
    for split in ("train", "val"):
        for code in range(8):
            img(root / split / str(code) / f"{split}_{code}.jpg", mode="RGB")
    return root


RAF_LABELS = [
    ("train_00001.jpg", 1),
    ("train_00002.jpg", 4),
    ("train_00003.jpg", 7),
    ("train_00004.jpg", 5),
    ("test_0001.jpg", 6),
    ("test_0002.jpg", 2),
    ("test_0003.jpg", 3),
]


def fake_rafdb(root: Path, aligned: bool = True, original: bool = True) -> Path:
    lines = [f"{name} {code}" for name, code in RAF_LABELS]
    (root / "basic" / "EmoLabel").mkdir(parents=True)
    (root / "basic/EmoLabel/list_patition_label.txt").write_text("\n".join(lines) + "\n")
    for name, _ in RAF_LABELS:
        if original:
            img(root / "basic/Image/original" / name, mode="RGB")
        if aligned:
            img(root / "basic/Image/aligned" / name.replace(".jpg", "_aligned.jpg"), mode="RGB")
    return root


# votes in the publisher's order: neutral happiness surprise sadness anger disgust fear
# contempt unknown NF
FERPLUS_VOTES = [
    ("Training", [6, 2, 0, 0, 0, 0, 0, 0, 2, 0]),  # neutral
    ("Training", [0, 9, 1, 0, 0, 0, 0, 0, 0, 0]),  # happy
    ("Training", [0, 0, 0, 0, 0, 0, 0, 0, 4, 6]),  # NF: dropped
    ("Training", [0, 0, 4, 0, 0, 0, 4, 0, 2, 0]),  # tie surprise/fear -> surprise (first)
    ("PublicTest", [1, 0, 0, 0, 0, 0, 0, 2, 7, 0]),  # unknown: dropped
    ("PublicTest", [0, 0, 0, 0, 8, 2, 0, 0, 0, 0]),  # anger
    ("PrivateTest", [0, 0, 0, 3, 0, 0, 0, 7, 0, 0]),  # contempt
    ("PrivateTest", [0, 0, 0, 10, 0, 0, 0, 0, 0, 0]),  # sad
]
FERPLUS_HEADER = [
    "Usage",
    "Image name",
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
]


def fake_ferplus_pair(root: Path) -> Path:
    rows = [[u, f"fer{i:07d}.png", *v] for i, (u, v) in enumerate(FERPLUS_VOTES)]
    rows.append(["Training", "", 10, 0, 0, 0, 0, 0, 0, 0, 0, 0])  # dropped by the publisher
    write_csv(root / "fer2013new.csv", FERPLUS_HEADER, rows)
    write_csv(
        root / "fer2013.csv",
        ["emotion", "pixels", "Usage"],
        [[0, pixels(), u] for u, _ in [*FERPLUS_VOTES, ("Training", 0)]],
    )
    return root


def fake_ferplus_folders(root: Path) -> Path:
    folders = {
        "Training": "FER2013Train",
        "PublicTest": "FER2013Valid",
        "PrivateTest": "FER2013Test",
    }
    per_folder: dict[str, list] = {f: [] for f in folders.values()}
    for i, (usage, votes) in enumerate(FERPLUS_VOTES):
        name = f"fer{i:07d}.png"
        img(root / folders[usage] / name)
        per_folder[folders[usage]].append([name, "(0, 0, 48, 48)", *votes])
    for folder, rows in per_folder.items():
        write_csv(root / folder / "label.csv", None, rows)
    return root


FER2013_CODES = [
    (0, "Training"),
    (3, "Training"),
    (6, "Training"),
    (1, "Training"),
    (2, "PublicTest"),
    (4, "PublicTest"),
    (5, "PrivateTest"),
]


def fake_fer2013_csv(root: Path) -> Path:
    rows = [[code, pixels(), usage] for code, usage in FER2013_CODES]
    write_csv(root / "fer2013.csv", ["emotion", "pixels", "Usage"], rows)
    return root


def fake_class_folders(root: Path, splits=("train", "test"), per_class=2, ext="jpg") -> Path:
    for split in splits:
        for k, cls in enumerate(SEVEN_FOLDERS):
            for j in range(per_class):
                img(root / split / cls / f"s{(k + j) % 4:02d}_{j}.{ext}")
    return root


def fake_ckplus48(root: Path) -> Path:
    classes = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
    for k, cls in enumerate(classes):
        for subject in (10, 11 + k):
            for frame in (17, 18, 19):
                img(root / cls / f"S{subject:03d}_00{k + 1}_{frame:08d}.png")
    return root


def fake_ckplus_official(root: Path) -> Path:
    """Three sequences, two labelled (codes 3 disgust, 7 surprise), one with five frames."""
    for subject, seq, n_frames, code in (
        ("S005", "001", 5, 3.0),
        ("S010", "002", 4, 7.0),
        ("S011", "001", 4, None),
    ):
        for f in range(1, n_frames + 1):
            img(root / "cohn-kanade-images" / subject / seq / f"{subject}_{seq}_{f:08d}.png")
        if code is not None:
            label = root / "Emotion" / subject / seq / f"{subject}_{seq}_{n_frames:08d}_emotion.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(f"   {code:.7e}\n")
    return root


JAFFE_FILES = [
    "KA.AN1.39.tiff",
    "KA.HA2.30.tiff",
    "KL.NE1.155.tiff",
    "KL.SU3.166.tiff",
    "YM.DI1.61.tiff",
    "YM.FE2.66.tiff",
    "TM.SA1.172.tiff",
]


def fake_jaffe(root: Path) -> Path:
    for name in JAFFE_FILES:
        img(root / "jaffedbase" / name)
    (root / "jaffedbase" / "README").write_text("not an image")
    return root


def fake_sfew(root: Path, aligned: bool = False) -> Path:
    for split, n in (("Train", 2), ("Val", 1)):
        for cls in ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"):
            for j in range(n):
                img(root / split / cls / f"{cls}_{j}.png", mode="RGB")
                if aligned:
                    img(root / f"{split}_Aligned_Faces" / cls / f"{cls}_{j}.png", mode="RGB")
    return root


def fake_demo(root: Path) -> Path:
    fake_class_folders(root, ext="png")
    (root / "SYNTHETIC.txt").write_text("SYNTHETIC DATA\n")
    return root


# adapter -> (builder, images the manifest lists)
FAKES = {
    "affectnet8": (fake_affectnet, 8 + 8),
    "affectnet7": (fake_affectnet, 7 + 7),
    "rafdb": (fake_rafdb, 7),
    "ferplus": (fake_ferplus_pair, 6),
    "fer2013": (fake_class_folders, 28),
    "ckplus": (fake_ckplus48, 42),
    "jaffe": (fake_jaffe, 7),
    "sfew": (fake_sfew, 21),
    "demo": (fake_demo, 28),
    "folders": (fake_class_folders, 28),
}


# ---------------------------------------------------------------- AffectNet


def test_affectnet8_publisher_lists_box_landmarks_and_skips(tmp_path):
    result = get_adapter("affectnet8")(fake_affectnet(tmp_path))
    assert len(result.rows) == 16
    assert result.skipped == Counter(
        expression_none=1, expression_uncertain=1, expression_no_face=1, missing_image=1
    )
    assert labels_of(result)[("test", "contempt")] == 1
    row = next(r for r in result.rows if r.path.endswith("train6.jpg"))
    assert (row.label_name, row.split, row.box) == ("anger", "train", "10,20,30,40")
    assert row.path == "Manually_Annotated_Images/1/train6.jpg"
    assert len(row.landmarks.split(";")) == 136


def test_affectnet7_skips_contempt_and_counts_it(tmp_path):
    result = get_adapter("affectnet7")(fake_affectnet(tmp_path))
    assert result.classes == ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"]
    assert result.skipped["contempt (affectnet7)"] == 2
    assert all(r.label_name != "contempt" for r in result.rows)


def test_affectnet_class_folders_val_is_test(tmp_path):
    root = fake_affectnet_folders(tmp_path)
    result = get_adapter("affectnet8")(root)
    assert Counter(r.split for r in result.rows) == {"train": 8, "test": 8}
    assert {r.label_name for r in result.rows if r.path.startswith("val/7/")} == {"contempt"}
    seven = get_adapter("affectnet7")(root)
    assert len(seven.rows) == 14 and seven.skipped["class 7"] == 2


def test_affectnet_bad_header_and_code(tmp_path):
    root = fake_affectnet(tmp_path)
    path = root / "Manually_Annotated_file_lists" / "validation.csv"
    write_csv(path, ["subDirectory_filePath", "expression"], [["3/val0.jpg", 0]])
    with pytest.raises(FerError, match=r"validation.csv: wrong csv header.*face_x"):
        get_adapter("affectnet8")(root)
    write_csv(path, AFFECTNET_HEADER, [["3/val0.jpg", 1, 2, 3, 4, "", 12, 0, 0]])
    with pytest.raises(FerError, match=r"validation.csv, data row 0: unknown expression '12'"):
        get_adapter("affectnet8")(root)


# ---------------------------------------------------------------- RAF-DB


def test_rafdb_labels_splits_and_image_kinds(tmp_path):
    root = fake_rafdb(tmp_path)
    result = get_adapter("rafdb")(root)
    assert Counter(r.split for r in result.rows) == {"train": 4, "test": 3}
    by_name = {Path(r.path).name: r.label_name for r in result.rows}
    assert by_name["train_00001.jpg"] == "surprise" and by_name["train_00003.jpg"] == "neutral"
    assert by_name["test_0001.jpg"] == "anger" and by_name["test_0003.jpg"] == "disgust"
    assert all(r.path.startswith("basic/Image/original/") for r in result.rows)
    aligned = get_adapter("rafdb")(root, {"images": "aligned"})
    assert aligned.rows[0].path == "basic/Image/aligned/train_00001_aligned.jpg"


def test_rafdb_auto_falls_back_to_aligned_and_counts_missing(tmp_path):
    root = fake_rafdb(tmp_path, original=False)
    (root / "basic/Image/aligned/test_0002_aligned.jpg").unlink()
    result = get_adapter("rafdb")(root)
    assert len(result.rows) == 6 and result.skipped == {"missing_image": 1}
    with pytest.raises(FerError, match="expected an original/ folder"):
        get_adapter("rafdb")(root, {"images": "original"})


def test_rafdb_bad_label_line(tmp_path):
    root = fake_rafdb(tmp_path)
    (root / "basic/EmoLabel/list_patition_label.txt").write_text("train_00001.jpg 9\n")
    with pytest.raises(FerError, match=r"list_patition_label.txt, line 1: unknown label '9'"):
        get_adapter("rafdb")(root)
    (root / "basic/EmoLabel/list_patition_label.txt").unlink()
    with pytest.raises(FerError, match="list_patition_label.txt: not found"):
        get_adapter("rafdb")(root)


# ---------------------------------------------------------------- FERPlus


def check_ferplus(result, pair: bool) -> None:
    assert Counter(r.split for r in result.rows) == {"train": 3, "val": 1, "test": 2}
    labels = [r.label_name for r in result.rows]
    assert labels == ["neutral", "happy", "surprise", "anger", "contempt", "sad"]
    # votes in canonical order: neutral happy sad surprise fear disgust anger contempt
    assert result.rows[0].votes == "6;2;0;0;0;0;0;0"
    assert result.rows[2].votes == "0;0;0;4;4;0;0;0"
    assert result.rows[3].votes == "0;0;0;0;0;2;8;0"
    assert result.rows[4].votes == "0;0;3;0;0;0;0;7"
    expected = Counter(majority_not_face=1, majority_unknown=1)
    if pair:
        expected["no_image_name"] = 1
    assert result.skipped == expected


def test_ferplus_csv_pair(tmp_path):
    result = get_adapter("ferplus")(fake_ferplus_pair(tmp_path))
    check_ferplus(result, pair=True)
    assert result.rows[1].path == "csv:fer2013.csv#1"


def test_ferplus_folders_and_tie_drop(tmp_path):
    root = fake_ferplus_folders(tmp_path)
    check_ferplus(get_adapter("ferplus")(root), pair=False)
    dropped = get_adapter("ferplus")(root, {"ties": "drop"})
    assert len(dropped.rows) == 5 and dropped.skipped["tied_majority"] == 1
    assert dropped.rows[0].path == "FER2013Train/fer0000000.png"


def test_ferplus_row_count_mismatch_and_bad_votes(tmp_path):
    root = fake_ferplus_pair(tmp_path)
    write_csv(root / "fer2013.csv", ["emotion", "pixels", "Usage"], [[0, pixels(), "Training"]])
    with pytest.raises(FerError, match=r"fer2013.csv: expected 9 data rows"):
        get_adapter("ferplus")(root)
    write_csv(root / "fer2013new.csv", FERPLUS_HEADER, [["Training", "fer0000000.png", 1, 2]])
    with pytest.raises(FerError, match=r"fer2013new.csv, line 2: expected 12 fields, got 4"):
        get_adapter("ferplus")(root)
    bad = ["Training", "fer0000000.png", "many", *[0] * 9]
    write_csv(root / "fer2013new.csv", FERPLUS_HEADER, [bad])
    with pytest.raises(FerError, match=r"fer2013new.csv, data row 0: expected 10 vote counts"):
        get_adapter("ferplus")(root)


# ---------------------------------------------------------------- FER2013


def test_fer2013_csv_usage_splits(tmp_path):
    result = get_adapter("fer2013")(fake_fer2013_csv(tmp_path))
    assert [r.label_name for r in result.rows] == [
        "anger",
        "happy",
        "neutral",
        "disgust",
        "fear",
        "sad",
        "surprise",
    ]
    assert [r.split for r in result.rows] == ["train"] * 4 + ["val"] * 2 + ["test"]
    assert result.rows[5].path == "csv:fer2013.csv#5"
    public_as_test = get_adapter("fer2013")(tmp_path, {"public_test": "test"})
    assert Counter(r.split for r in public_as_test.rows) == {"train": 4, "test": 3}


def test_fer2013_folders_map_names(tmp_path):
    result = get_adapter("fer2013")(fake_class_folders(tmp_path))
    counts = labels_of(result)
    assert counts[("train", "anger")] == 2 and counts[("test", "surprise")] == 2
    assert len(result.classes) == 7 and len(result.rows) == 28


def test_fer2013_bad_inputs(tmp_path):
    with pytest.raises(FerError, match="wrong layout for fer2013"):
        get_adapter("fer2013")(tmp_path)
    root = fake_class_folders(tmp_path / "a")
    (root / "train" / "bored").mkdir()
    img(root / "train" / "bored" / "x.jpg")
    with pytest.raises(FerError, match=r"train/bored: unknown class folder 'bored'"):
        get_adapter("fer2013")(root)
    root = fake_class_folders(tmp_path / "b")
    for f in (root / "test" / "sad").iterdir():
        f.unlink()
    with pytest.raises(FerError, match=r"test/sad: empty class folder"):
        get_adapter("fer2013")(root)
    write_csv(tmp_path / "c" / "fer2013.csv", ["emotion", "pixels"], [[0, pixels()]])
    with pytest.raises(FerError, match=r"fer2013.csv: wrong csv header.*Usage"):
        get_adapter("fer2013")(tmp_path / "c")
    write_csv(
        tmp_path / "d" / "fer2013.csv",
        ["emotion", "pixels", "Usage"],
        [[0, pixels(), "Training"], [7, pixels(), "Training"]],
    )
    with pytest.raises(FerError, match=r"fer2013.csv, data row 1: unknown fer2013 label code 7"):
        get_adapter("fer2013")(tmp_path / "d")


# ---------------------------------------------------------------- CK+


def test_ckplus48_folders_subject_groups(tmp_path):
    result = get_adapter("ckplus")(fake_ckplus48(tmp_path))
    assert len(result.rows) == 42 and "neutral" not in result.classes
    assert {r.group for r in result.rows} == {f"S{s:03d}" for s in range(10, 18)}
    assert next(r for r in result.rows if r.path.startswith("sadness/")).label_name == "sad"


def test_ckplus_official_last_frames_and_neutral(tmp_path):
    root = fake_ckplus_official(tmp_path)
    result = get_adapter("ckplus")(root)
    assert result.classes == ["neutral", "surprise", "disgust"]
    assert Counter(r.label_name for r in result.rows) == {"disgust": 3, "surprise": 3, "neutral": 2}
    assert result.skipped == {"unlabelled_sequence": 1}
    first = [r for r in result.rows if r.group == "S005"]
    assert first[0].path == "cohn-kanade-images/S005/001/S005_001_00000001.png"
    assert first[0].label_name == "neutral" and first[-1].path.endswith("_00000005.png")
    plain = get_adapter("ckplus")(root, {"neutral_first_frame": False, "last_frames": 1})
    assert [r.label_name for r in plain.rows] == ["disgust", "surprise"]


def test_ckplus_bad_inputs(tmp_path):
    root = fake_ckplus_official(tmp_path / "a")
    (root / "Emotion/S005/001/S005_001_00000005_emotion.txt").write_text("9.0\n")
    with pytest.raises(FerError, match=r"_emotion.txt: expected one emotion code 0-7"):
        get_adapter("ckplus")(root)
    root = fake_ckplus48(tmp_path / "b")
    img(root / "anger" / "face.png")
    with pytest.raises(FerError, match=r"anger/face.png: expected a CK\+ file name"):
        get_adapter("ckplus")(root)
    (tmp_path / "c").mkdir()
    with pytest.raises(FerError, match="wrong layout for ckplus"):
        get_adapter("ckplus")(tmp_path / "c")


# ---------------------------------------------------------------- JAFFE, SFEW, demo


def test_jaffe_names_subjects_all_test(tmp_path):
    result = get_adapter("jaffe")(fake_jaffe(tmp_path))
    assert len(result.rows) == 7 and {r.split for r in result.rows} == {"test"}
    assert len(result.classes) == 7 and result.skipped == {"not_an_image": 1}
    row = next(r for r in result.rows if r.path == "jaffedbase/KL.NE1.155.tiff")
    assert (row.label_name, row.group) == ("neutral", "KL")
    img(tmp_path / "jaffedbase" / "KA.XX1.1.tiff")
    with pytest.raises(FerError, match=r"KA.XX1.1.tiff: expected a JAFFE file name"):
        get_adapter("jaffe")(tmp_path)


def test_sfew_eval_only_aligned_and_official(tmp_path):
    root = fake_sfew(tmp_path, aligned=True)
    result = get_adapter("sfew")(root)
    assert len(result.rows) == 21 and {r.split for r in result.rows} == {"test"}
    assert next(r for r in result.rows if "Sad_0" in r.path).label_name == "sad"
    aligned = get_adapter("sfew")(root, {"aligned": True, "official_splits": True})
    assert all(
        r.path.startswith(("Train_Aligned_Faces/", "Val_Aligned_Faces/")) for r in aligned.rows
    )
    assert Counter(r.split for r in aligned.rows) == {"train": 14, "val": 7}
    with pytest.raises(FerError, match="expected a Val/Validation folder"):
        get_adapter("sfew")(fake_class_folders(tmp_path / "other", splits=("Train",)))


def test_demo_marker_and_groups(tmp_path):
    result = get_adapter("demo")(fake_demo(tmp_path))
    assert result.synthetic and len(result.rows) == 28
    assert {r.group for r in result.rows} == {"s00", "s01", "s02", "s03"}
    (tmp_path / "SYNTHETIC.txt").unlink()
    with pytest.raises(FerError, match="SYNTHETIC.txt: not found"):
        get_adapter("demo")(tmp_path)


def test_demo_reads_what_fer_demo_writes(tmp_path):
    demo = pytest.importorskip("fer.demo")
    demo.generate(tmp_path, seed=0, subjects=4, images_per_class=1, test_subjects=1, size=64)
    table, summary = build_manifest("demo", tmp_path, val_fraction=0.34, seed=0)
    assert summary["synthetic"] is True and summary["n_groups"] == 4
    assert sum(summary["counts"]["test"].values()) == 7
    val_groups = {r["group"] for r in table if r["split"] == "val"}
    train_groups = {r["group"] for r in table if r["split"] == "train"}
    assert val_groups and not val_groups & train_groups
