"""fer evaluate's arithmetic with stand-in models whose logits are a lookup table per image.

Each prepared row ``i`` carries its number in pixel (0, 0, red) of its face and ROI crops; the
stand-in models decode it and return row ``i`` of a table, so every expected prediction (fusion,
fallback, slicing, folds) can be computed by hand from the tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fer.errors import FerError
from fer.evaluate import EvaluateJob, InferJob, evaluate
from fer.evaluate import infer as ev
from fer.evaluate.scoring import validate_result
from fer.fusion import Fusion
from fer.labels import CANONICAL, SEVEN
from fer.models.inference import Checkpoint, Inference, model_logits
from fer.models.transforms import IMAGENET_MEAN as MEAN
from fer.models.transforms import IMAGENET_STD as STD
from fer.prepared import ROI_NAMES, open_prepared
from fer.provenance import resolve_device

SIX = ("happy", "sad", "surprise", "fear", "disgust", "anger")


def tag_rows(root: Path) -> Path:
    """Write each row's number into pixel (0, 0, red) of its face and (where present) ROIs."""
    faces = np.load(root / "faces.npy")
    ids = np.arange(len(faces), dtype=np.uint8)
    faces[:, 0, 0, 0] = ids
    np.save(root / "faces.npy", faces)
    has = pd.read_csv(root / "index.csv")["has_roi"].to_numpy() == 1
    for name in ROI_NAMES:
        arr = np.load(root / f"{name}.npy")
        arr[has, 0, 0, 0] = ids[has]
        np.save(root / f"{name}.npy", arr)
    return root


def _decode(x: torch.Tensor) -> torch.Tensor:
    return torch.round((x[:, 0, 0, 0] * STD[0] + MEAN[0]) * 255).long()


class TableNet(nn.Module):
    """Logits = ``table[row id]``; the ROI variant checks its crops belong to the same rows."""

    def __init__(self, table: np.ndarray, uses_rois: bool) -> None:
        super().__init__()
        self.register_buffer("table", torch.as_tensor(table, dtype=torch.float32))
        self.uses_rois, self.seen = uses_rois, []

    def forward(self, face, eye=None, nose=None, mouth=None):
        ids = _decode(face)
        self.seen.extend(ids.tolist())
        z = self.table[ids]
        if not self.uses_rois:
            return z
        for crop in (eye, nose, mouth):
            assert torch.equal(_decode(crop), ids), "ROI crops not aligned with face rows"
        return z, torch.zeros_like(z), torch.zeros_like(z)


def ckpt(kind: str, table, classes=SEVEN, fold=None, **meta) -> Checkpoint:
    meta = {
        "model": kind,
        "classes": list(classes),
        "face_size": 32,
        "roi_size": 16,
        "selection": "val",
        "fold": fold,
        "seed": 0,
        "dataset": "train",
        **meta,
    }
    return Checkpoint(
        Path(f"models/train/{kind}.fold{fold}.pt"), TableNet(table, kind == "roi"), meta
    )


def record_of(data, g, r, target="demo", within=False, protocol="shared"):
    """The prediction record of loaded stand-in checkpoints: CPU, batches of 5, no bar."""
    rows = "within" if within else "all"
    run = {"batch_size": 5, "device": "cpu", "progress": False}
    job = InferJob("train", target, data.root, rows=rows, protocol=protocol, **run)
    return ev.infer_loaded(job, data, g, r)


def score_cell(data, g, r, arch="fused", target="demo", within=False, **kw) -> dict:
    """One cell scored from the record of ``g`` / ``r`` (200 bootstrap resamples)."""
    record = record_of(data, g, r, target, within, kw.get("protocol", "shared"))
    return evaluate(EvaluateJob("train", target, arch, (record,), bootstrap=200, **kw))


def labels_of(data, rows):
    return [CANONICAL[int(c)] for c in data.index["label"].to_numpy()[rows]]


@pytest.fixture
def demo(fake_prepared):
    root = tag_rows(fake_prepared(n_per_class=4, roi_fraction=0.5, seed=1))
    return open_prepared(root)


def test_fused_is_the_weighted_sum_with_global_fallback(demo):
    rng = np.random.default_rng(0)
    n = len(demo.index)
    zg, zr = rng.normal(size=(n, 7)), rng.normal(size=(n, 7))
    g, r = ckpt("global", zg), ckpt("roi", zr)
    record = record_of(demo, [g], [r])
    w = Fusion(0.55, 0.45)
    has = demo.index["has_roi"].to_numpy() == 1
    by_hand = np.where(has, (0.55 * zr + 0.45 * zg).argmax(1), zg.argmax(1))
    assert record.predicted("fused", w).tolist() == by_hand.tolist()
    assert record.predicted("global", w).tolist() == zg.argmax(1).tolist()
    assert record.predicted("roi", w).tolist() == np.where(has, zr.argmax(1), -1).tolist()
    assert sorted(r.model.seen) == np.flatnonzero(has).tolist()  # ROI net only where ROIs exist
    swapped = np.where(has, (0.45 * zr + 0.55 * zg).argmax(1), zg.argmax(1))
    assert (swapped != by_hand).any(), "tables too weak to tell the weights apart"
    assert 0 < has.sum() < n


def test_fusion_weights_flag_is_used(demo):
    rng = np.random.default_rng(5)
    n = len(demo.index)
    zg, zr = rng.normal(size=(n, 7)), rng.normal(size=(n, 7))
    res = score_cell(demo, [ckpt("global", zg)], [ckpt("roi", zr)], fusion=Fusion(0.9, 0.1))
    has = demo.index["has_roi"].to_numpy() == 1
    pred = np.where(has, (0.9 * zr + 0.1 * zg).argmax(1), zg.argmax(1))
    y = [SEVEN.index(c) for c in labels_of(demo, np.arange(n))]
    assert res["accuracy"] == pytest.approx(np.mean(pred == y))
    assert res["provenance"]["fusion_weights"] == {"roi": 0.9, "global": 0.1}


@pytest.mark.parametrize("arch", ["global", "roi", "fused"])
def test_each_arch_result_validates_and_compares_on_roi_subset(demo, arch):
    rng = np.random.default_rng(2)
    n = len(demo.index)
    zg, zr = rng.normal(size=(n, 7)), rng.normal(size=(n, 7))
    y = np.array([SEVEN.index(c) for c in labels_of(demo, np.arange(n))])
    has = demo.index["has_roi"].to_numpy() == 1
    res = score_cell(demo, [ckpt("global", zg)], [ckpt("roi", zr)], arch)
    validate_result(res)
    fused = np.where(has, (0.55 * zr + 0.45 * zg).argmax(1), zg.argmax(1))
    sub = {"global": zg.argmax(1), "roi": zr.argmax(1), "fused": fused}
    assert res["roi_subset"]["n"] == res["n_with_roi"] == has.sum()
    for a, pred in sub.items():
        assert res["roi_subset"]["accuracy"][a] == pytest.approx(np.mean(pred[has] == y[has]))
    expect_n = has.sum() if arch == "roi" else n
    mask = has if arch == "roi" else np.ones(n, bool)
    assert res["n_images"] == expect_n and res["n_scored"] == n
    assert res["accuracy"] == pytest.approx(np.mean(sub[arch][mask] == y[mask]))
    assert res["full_set_accuracy"] == (None if arch == "roi" else res["accuracy"])
    assert np.sum(res["confusion_matrix"]) == expect_n
    assert res["synthetic"] is True and res["folds"] is None and res["ferplus"] is None
    lo, hi = res["accuracy_ci95"]
    assert lo <= res["accuracy"] <= hi


def test_roi_only_result_has_null_for_missing_models(demo):
    n = len(demo.index)
    res = score_cell(demo, [], [ckpt("roi", np.eye(7)[np.arange(n) % 7])], "roi")
    assert res["roi_subset"]["accuracy"]["global"] is None
    assert res["roi_subset"]["accuracy"]["fused"] is None
    assert list(res["provenance"]["checkpoints"]) == ["roi"]


# (target, target classes, model classes, protocol, scored classes, excluded image classes)
CROSS = [
    ("ckplus", CANONICAL, SEVEN, "shared", SEVEN, ["contempt"]),
    ("ckplus", CANONICAL, CANONICAL, "shared", CANONICAL, []),
    ("jaffe", SEVEN, CANONICAL, "shared", SEVEN, []),
    ("jaffe", SEVEN, CANONICAL, "reference", SIX, ["neutral"]),
    ("jaffe", SEVEN, SEVEN, "reference", SIX, ["neutral"]),
    ("sfew", SEVEN, CANONICAL, "shared", SEVEN, []),
]


@pytest.mark.parametrize("target, tclasses, mclasses, protocol, scored, dropped", CROSS)
def test_cross_dataset_slices_logits_before_argmax(
    fake_prepared, target, tclasses, mclasses, protocol, scored, dropped
):
    data = open_prepared(tag_rows(fake_prepared(n_per_class=3, classes=tclasses, seed=4)))
    n = len(data.index)
    rng = np.random.default_rng(3)
    zg, zr = rng.normal(size=(n, len(mclasses))), rng.normal(size=(n, len(mclasses)))
    unscored = [i for i, c in enumerate(mclasses) if c not in scored]
    zg[:, unscored] += 100.0  # a dropped logit must never win
    zr[:, unscored] += 100.0
    g, r = ckpt("global", zg, mclasses), ckpt("roi", zr, mclasses)
    res = score_cell(data, [g], [r], "fused", target, protocol=protocol)
    names = labels_of(data, np.arange(n))
    keep = np.array([c in scored for c in names])
    cols = [list(mclasses).index(c) for c in scored]
    has = (data.index["has_roi"].to_numpy() == 1)[keep]
    zg_s, zr_s = zg[keep][:, cols], zr[keep][:, cols]
    pred = np.where(has, (0.55 * zr_s + 0.45 * zg_s).argmax(1), zg_s.argmax(1))
    y = np.array([list(scored).index(c) for c in np.array(names)[keep]])
    cm = np.zeros((len(scored), len(scored)), int)
    np.add.at(cm, (y, pred), 1)
    assert res["classes"] == list(scored)
    assert res["confusion_matrix"] == cm.tolist()
    assert res["n_images"] == keep.sum()
    assert res["excluded"] == {f"label_not_scored:{c}": 3 for c in dropped}
    lm = res["label_map"]
    assert lm["dropped_logits"] == [c for c in mclasses if c not in scored]
    assert lm["dropped_target_classes"] == dropped and lm["protocol"] == protocol


def test_model_logits_keeps_the_given_row_order(demo):
    table = np.arange(len(demo.index) * 7, dtype=float).reshape(-1, 7)
    rows = np.array([9, 2, 17, 0, 5, 11, 3])
    opts = Inference(torch.device("cpu"), 3, progress=False)
    z = model_logits(ckpt("global", table), {"face": demo.faces}, rows, opts)
    assert z.tolist() == table[rows].tolist()


def test_within_scores_the_test_split_only(demo):
    n = len(demo.index)
    g = ckpt("global", np.zeros((n, 7)))
    res = score_cell(demo, [g], [], "global", within=True)
    test_rows = demo.rows(split="test")
    assert sorted(g.model.seen) == test_rows.tolist() and res["n_images"] == len(test_rows)
    assert res["within"] is True


def test_kfold_per_fold_pooled_mean_and_std(fake_prepared):
    root = tag_rows(fake_prepared(n_per_class=3, kfold=3, seed=2))
    index = pd.read_csv(root / "index.csv")
    index.loc[4, "status"] = "unreadable"
    index.to_csv(root / "index.csv", index=False)
    data = open_prepared(root)
    n, rng = len(data.index), np.random.default_rng(7)
    tables = [rng.normal(size=(n, 7)) for _ in range(3)]
    cks = [ckpt("global", t, fold=k) for k, t in enumerate(tables)]
    res = score_cell(data, cks[::-1], [], "global", within=True)
    y_all = np.array([SEVEN.index(c) for c in labels_of(data, np.arange(n))])
    accs, hits = [], []
    for k, ck in enumerate(cks):
        rows = data.rows(fold=k)
        assert sorted(ck.model.seen) == rows.tolist()
        hit = tables[k][rows].argmax(1) == y_all[rows]
        accs.append(hit.mean())
        hits.append(hit)
    assert [f["fold"] for f in res["folds"]] == [0, 1, 2]
    assert [f["accuracy"] for f in res["folds"]] == pytest.approx(accs)
    assert res["fold_mean"] == pytest.approx(np.mean(accs))
    assert res["fold_std"] == pytest.approx(np.std(accs, ddof=1))
    assert res["accuracy"] == pytest.approx(np.concatenate(hits).mean())
    assert (
        res["excluded"] == {"unreadable": 1} and 4 not in cks[int(index.loc[4, "fold"])].model.seen
    )
    assert len(res["provenance"]["fold_checkpoints"]["global"]) == 3


def test_ferplus_votes_give_two_accuracies(fake_prepared):
    root = tag_rows(fake_prepared(n_per_class=2, classes=CANONICAL, seed=3))
    index = pd.read_csv(root / "index.csv", keep_default_na=False)
    n = len(index)
    votes = np.zeros((n, 8), int)
    votes[np.arange(n), index["label"]] = 6
    votes[np.arange(n), (index["label"] + 1) % 8] = 3  # runner-up vote
    index["votes"] = [";".join(map(str, v)) for v in votes]
    index.to_csv(root / "index.csv", index=False)
    data = open_prepared(root)
    pred = (index["label"].to_numpy() + np.arange(n) % 3) % 8  # right, runner-up, wrong
    table = np.eye(8)[pred]
    res = score_cell(data, [ckpt("global", table, CANONICAL)], [], "global", "ferplus")
    assert res["ferplus"]["majority_accuracy"] == pytest.approx(res["accuracy"])
    assert res["accuracy"] == pytest.approx(np.mean(np.arange(n) % 3 == 0))
    assert res["ferplus"]["any_vote_accuracy"] == pytest.approx(np.mean(np.arange(n) % 3 < 2))


def test_selection_on_test_is_flagged(demo):
    n = len(demo.index)
    g = ckpt("global", np.zeros((n, 7)))  # selected on val
    r = ckpt("roi", np.zeros((n, 7)), selection="test")
    res = score_cell(demo, [g], [r])
    assert res["provenance"]["selected_on_test"] is True
    assert res["provenance"]["selection"] == "test"
    assert any("selected_on_test" in w for w in res["warnings"])


def test_errors_name_the_file(fake_prepared, demo):
    n = len(demo.index)
    only_contempt = ckpt("global", np.zeros((n, 2)), ("neutral", "contempt"))
    jaffe = open_prepared(fake_prepared("j", classes=SIX))
    with pytest.raises(FerError, match=r"global\.foldNone\.pt.*share no scored class"):
        score_cell(jaffe, [only_contempt], [], "global", "jaffe", protocol="reference")
    no_roi = open_prepared(fake_prepared("noroi", roi_fraction=0.0))
    with pytest.raises(FerError, match=r"index\.csv.*ROIs"):
        score_cell(no_roi, [], [ckpt("roi", np.zeros((n, 7)))], "roi")
    no_test = open_prepared(fake_prepared("notest", test_fraction=0.0))
    with pytest.raises(FerError, match=r"index\.csv: no image"):
        score_cell(no_test, [ckpt("global", np.zeros((n, 7)))], [], "global", within=True)
    orig = ckpt("global", np.zeros((n, 7)), global_input="original")
    with pytest.raises(FerError, match=r"original\.npy: missing"):
        score_cell(demo, [orig], [], "global")
    two = [ckpt("global", np.zeros((n, 7))), ckpt("global", np.zeros((n, 7)))]
    with pytest.raises(FerError, match="one checkpoint per arch"):
        score_cell(demo, two, [], "global")
    with pytest.raises(FerError, match="no checkpoint given"):
        record_of(demo, [], [])


def test_kfold_pairs_must_match(fake_prepared):
    data = open_prepared(tag_rows(fake_prepared(n_per_class=2, kfold=2)))
    z = np.zeros((len(data.index), 7))
    with pytest.raises(FerError, match="no partner"):
        ev.plan_tasks(data, [ckpt("global", z, fold=0)], [ckpt("roi", z, fold=1)], within=True)
    with pytest.raises(FerError, match="meta fold is null"):
        ev.plan_tasks(data, [ckpt("global", z)], [], within=True)


def test_global_input_original_feeds_global_arch_but_not_fusion(fake_prepared):
    root = tag_rows(fake_prepared(n_per_class=3, roi_fraction=0.5, seed=6))
    faces = np.load(root / "faces.npy")
    n = len(faces)
    original = faces.copy()
    original[:, 0, 0, 0] += n  # original frame of row i decodes as id i + n
    np.save(root / "original.npy", original)
    data = open_prepared(root)
    rng = np.random.default_rng(8)
    zg, zr = rng.normal(size=(2 * n, 7)), rng.normal(size=(n, 7))
    g = ckpt("global", zg, global_input="original")
    y = np.array([SEVEN.index(c) for c in labels_of(data, np.arange(n))])
    has = data.index["has_roi"].to_numpy() == 1
    res = score_cell(data, [g], [ckpt("roi", zr)])
    fused = np.where(has, (0.55 * zr + 0.45 * zg[:n]).argmax(1), zg[:n].argmax(1))
    assert res["accuracy"] == pytest.approx(np.mean(fused == y))
    on_original = zg[n:].argmax(1)
    assert res["roi_subset"]["accuracy"]["global"] == pytest.approx(
        np.mean((on_original == y)[has])
    )
    assert res["provenance"]["global_input"] == ["original"]
    assert res["provenance"]["tta"] == {"global": ["none"], "roi": ["none"]}


def test_bad_label_code_names_index_csv(fake_prepared):
    root = fake_prepared(n_per_class=1)
    index = pd.read_csv(root / "index.csv")
    index.loc[0, "label"] = -1
    index.to_csv(root / "index.csv", index=False)
    data = open_prepared(root)
    with pytest.raises(FerError, match=r"index\.csv: label column"):
        score_cell(data, [ckpt("global", np.zeros((7, 7)))], [], "global")


def test_device_flag_errors():
    with pytest.raises(FerError, match="--device 'nonsense'"):
        resolve_device("nonsense")
    if not torch.cuda.is_available():
        with pytest.raises(FerError, match="no CUDA device"):
            resolve_device("cuda")
