"""Rule 3 of docs/safety.md: degenerate pictures never reach a model silently. Each generator
is one kind of picture; the class-folder reader + `fer prepare`, `fer predict` and
``fer.Predictor`` must each refuse it with the same reason code, and take the controls."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fer.data.io import MAX_ASPECT, MIN_PICTURE_SIDE, picture_problem, reason_code
from tests.hostile.conftest import face_like, fer, save


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    return face_like(max(h, w), seed)[:h, :w]


def flat_but_last() -> np.ndarray:
    pixels = np.full((48, 48, 3), 9, np.uint8)
    pixels[-1, -1, 2] = 10
    return pixels


S = MIN_PICTURE_SIDE
PICTURES = {  # name -> (pixels, the reason code, or "" for a picture every verb takes)
    "one-pixel": (textured(1, 1), "too_small"),
    "under-the-side": (textured(S - 1, 40), "too_small"),
    "strip-48x1": (textured(1, 48), "too_small"),
    "strip-1x48": (textured(48, 1), "too_small"),
    "elongated": (textured(30, 200), "extreme_aspect"),
    "tall": (textured(int(S * MAX_ASPECT) + 9, S), "extreme_aspect"),
    "constant-grey": (np.full((64, 64), 128, np.uint8), "constant"),
    "constant-black": (np.zeros((48, 48), np.uint8), "constant"),
    "constant-colour": (np.full((40, 50, 3), (200, 30, 60), np.uint8), "constant"),
    "control-smallest": (textured(S, S), ""),
    "control-widest": (textured(S, int(S * MAX_ASPECT)), ""),
    "control-nearly-flat": (np.where(np.eye(48, dtype=bool), 129, 128).astype(np.uint8), ""),
    # flat but for the last pixel's blue: the first rows alone do not settle it
    "control-flat-but-one": (flat_but_last(), ""),
}


def code(reason: str) -> str:
    return reason_code(reason) if reason else ""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Class folders holding every generated picture (the sad class holds two textured ones)."""
    root = tmp_path_factory.mktemp("degenerate") / "raw"
    for name, (pixels, _) in PICTURES.items():
        save(root / "happy" / f"{name}.png", pixels)
    for i in range(2):
        save(root / "sad" / f"s{i}.png", face_like(64, i))
    return root


def test_the_rule_itself():
    for name, (pixels, want) in PICTURES.items():
        assert code(picture_problem(pixels) or "") == want, name
    assert code(picture_problem(np.zeros((0, 10, 3), np.uint8))) == "too_small"


def test_the_folder_reader_and_prepare_refuse_them_with_their_reason(folder, tmp_path):
    manifest = tmp_path / "manifest.csv"
    args = ["--dataset", "mine", "--adapter", "folders", "--root", folder, "--out", manifest]
    assert fer("manifest", *args).returncode == 0
    out = tmp_path / "prepared"
    r = fer("prepare", "--manifest", manifest, "--root", folder, "--out", out, "--detector",
            "none", "--chip-size", 32, "--crop-size", 16, "--workers", 1)  # fmt: skip
    assert r.returncode == 0, r.stderr
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    status = {p.split("/")[-1][:-4]: s for p, s in zip(index["path"], index["status"], strict=True)}
    for name, (_, want) in PICTURES.items():  # a control may lack landmarks, but is taken
        assert (status[name] == "rejected") == bool(want), (name, status[name])
        assert status[name] != "unreadable", name
    summary = json.loads((out / "summary.json").read_text())
    wanted = pd.Series([w for _, w in PICTURES.values() if w]).value_counts().to_dict()
    assert summary["rejected_reasons"] == wanted
    assert summary["counts_by_status"]["rejected"] == sum(wanted.values())
    faces = np.load(out / "faces.npy")
    rejected = index["status"].to_numpy() == "rejected"
    assert not faces[rejected].any()  # zeros: never a model input
    from fer.prepared import open_prepared

    used = set(open_prepared(out).rows())
    assert used.isdisjoint(np.flatnonzero(rejected))  # training and scoring never see them


def test_fer_predict_gives_each_its_status_and_reason(folder, pair, tmp_path):
    out = tmp_path / "t.csv"
    r = fer("predict", folder / "happy", "--models", pair, "--out", out)
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(out, keep_default_na=False)
    rows = {row["file"].split("/")[-1][:-4]: row for row in table.to_dict("records")}
    for name, (_, want) in PICTURES.items():
        row = rows[name]
        assert (row["status"] == "rejected") == bool(want), (name, row["status"])
        assert code(row["reason"]) == want or not want
        assert (row["global_label"] == "") == bool(want)  # no prediction for a refused one
    n = sum(1 for _, w in PICTURES.values() if w)
    assert f"rejected {n})" in r.stderr


def test_predictor_arrays_zero_sized_and_non_finite(pair):
    from fer.predict import Predictor

    predictor = Predictor.from_dir(pair, device="cpu", progress=False)
    arrays = [
        np.zeros((0, 48, 3), np.uint8),
        np.zeros((48, 0), np.uint8),
        np.full((48, 48, 3), np.nan, np.float32),
        np.full((48, 48), 7, np.uint8),
        textured(1, 48),
        textured(48, 48),
    ]
    table = predictor.predict(arrays)
    assert table["status"].tolist() == [
        "rejected",
        "rejected",
        "unreadable",
        "rejected",
        "rejected",
        "ok",
    ]
    assert [code(r) for r in table["reason"]][:2] == ["too_small", "too_small"]
    assert "NaN" in table["reason"][2]
