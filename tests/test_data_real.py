"""Adapters on the real data in ../shared/data (skipped where absent): counts must be exact."""

from __future__ import annotations

import time
from collections import Counter, defaultdict

from fer.data.manifest import build_manifest

CKPLUS48 = {
    "happy": 207,
    "sad": 84,
    "surprise": 249,
    "fear": 75,
    "disgust": 177,
    "anger": 135,
    "contempt": 54,
}
FER2013_TRAIN = {
    "anger": 3995,
    "disgust": 436,
    "fear": 4097,
    "happy": 7215,
    "neutral": 4965,
    "sad": 4830,
    "surprise": 3171,
}
FER2013_TEST = {
    "anger": 467,
    "disgust": 56,
    "fear": 496,
    "happy": 895,
    "neutral": 607,
    "sad": 653,
    "surprise": 415,
}


def test_ckplus48_ten_subject_disjoint_folds(shared_data):
    table, summary = build_manifest("ckplus48", shared_data / "ckplus48", adapter="ckplus", k=10)
    assert len(table) == 981 and summary["n_groups"] == 118
    assert Counter(r["label_name"] for r in table) == CKPLUS48
    assert summary["classes"] == [
        "happy",
        "sad",
        "surprise",
        "fear",
        "disgust",
        "anger",
        "contempt",
    ]
    assert {r["split"] for r in table} == {"train"}
    folds_of = defaultdict(set)
    for r in table:
        folds_of[r["group"]].add(r["fold"])
    assert all(len(f) == 1 for f in folds_of.values())
    sizes = Counter(r["fold"] for r in table)
    assert set(sizes) == set(range(10)) and min(sizes.values()) >= 90
    for fold in summary["fold_counts"].values():  # every class in every fold
        assert min(fold.values()) >= 3


def test_fer2013_folders_exact_counts_fast(shared_data):
    start = time.perf_counter()
    table, summary = build_manifest("fer2013", shared_data / "fer2013", val_fraction=0.1)
    assert time.perf_counter() - start < 5
    by_split = Counter((r["split"], r["label_name"]) for r in table)
    train_val = {c: by_split[("train", c)] + by_split[("val", c)] for c in FER2013_TRAIN}
    assert train_val == FER2013_TRAIN
    assert {c: by_split[("test", c)] for c in FER2013_TEST} == FER2013_TEST
    for c, n in FER2013_TRAIN.items():  # stratified: each class gives 10 % to val
        assert abs(by_split[("val", c)] - 0.1 * n) <= 0.5
    assert summary["skipped"] == {} and summary["counts"]["test"] == FER2013_TEST
