"""Evidence: prediction records, cells scored from them, paired tests, replicates and the fusion
weight chosen on validation rows (fer.evaluate.records / scoring / metrics)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from fer.errors import FerError
from fer.evaluate import EvaluateJob, InferJob, evaluate, metrics
from fer.evaluate import infer as ev
from fer.evaluate.compare import choose_fusion
from fer.evaluate.records import Predictions
from fer.fusion import GRID, REFERENCE, Fusion
from fer.prepared import open_prepared
from tests.test_evaluate import ckpt, tag_rows
from tests.test_evaluate_cli import ckpts  # noqa: F401 (a fixture)

A = np.array([1, 1, 1, 0, 0, 1, 0, 1, 1, 0], dtype=bool)
B = np.array([1, 0, 0, 0, 1, 1, 0, 0, 1, 0], dtype=bool)


def test_mcnemar_and_paired_interval_equal_a_direct_computation():
    res = metrics.paired_difference(A, B, None, n_boot=400, seed=3)
    # discordant pairs: only a right at 1, 2, 7; only b right at 4
    assert (res["a_only"], res["b_only"]) == (3, 1)
    p = min(1.0, 2 * (math.comb(4, 0) + math.comb(4, 1)) / 2**4)
    assert res["p_mcnemar"] == [p] and res["p_value"] == pytest.approx(p, abs=1e-15)
    assert res["test"] == "mcnemar_exact over images"
    assert res["difference"] == pytest.approx(A.mean() - B.mean())
    d = A.astype(int) - B.astype(int)
    picks = np.random.default_rng(3).integers(0, len(d), size=(400, len(d)))
    lo, hi = np.percentile(d[picks].mean(axis=1), [2.5, 97.5])
    assert res["ci95"] == [pytest.approx(lo), pytest.approx(hi)]


def test_subject_resampling_keeps_a_subjects_images_together():
    groups = np.array(["s1", "s1", "s2", "s2", "s3", "s3", "s4", "s4", "s5", "s5"])
    res = metrics.paired_difference(A, B, groups, n_boot=300, seed=1)
    assert (res["unit"], res["n_units"]) == ("subjects", 5)
    d = (A.astype(int) - B.astype(int)).reshape(5, 2).sum(axis=1)  # per subject
    picks = np.random.default_rng(1).integers(0, 5, size=(300, 5))
    lo, hi = np.percentile(d[picks].sum(axis=1) / 10, [2.5, 97.5])
    assert res["ci95"] == [pytest.approx(lo), pytest.approx(hi)]
    flips = [abs(sum(s * v for s, v in zip(signs, d, strict=True))) for signs in _signs(5)]
    assert res["p_value"] == pytest.approx(np.mean(np.array(flips) >= abs(d.sum())))


def _signs(n):
    return itertools.product((1, -1), repeat=n)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (0, 7), (3, 9), (10, 10), (40, 61), (700, 800)])
def test_sign_flip_test_is_mcnemar_for_one_seed(b, c):
    d = np.array([1] * b + [-1] * c + [0] * 5)
    assert metrics.sign_flip_p(d) == pytest.approx(metrics.mcnemar_exact(b, c), rel=1e-9)


def test_sign_flip_pools_seeds_exactly():
    """Three seeds: per-image differences in -3..3; the exact p equals full enumeration."""
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 12)) < 0.7, rng.random((3, 12)) < 0.45
    res = metrics.paired_difference(a, b, None, n_boot=0)
    d = a.sum(0).astype(int) - b.sum(0)
    flips = [abs(sum(s * v for s, v in zip(signs, d, strict=True))) for signs in _signs(12)]
    assert res["p_value"] == pytest.approx(np.mean(np.array(flips) >= abs(d.sum())))
    assert res["test"] == "sign_flip_exact over images, pooled over 3 seeds"
    assert len(res["p_mcnemar"]) == 3 and res["ci95"] is None
    assert res["difference"] == pytest.approx(a.mean() - b.mean())


def test_large_pooled_test_is_finite_and_fast():
    rng = np.random.default_rng(2)
    a, b = rng.random((3, 8000)) < 0.70, rng.random((3, 8000)) < 0.69
    res = metrics.paired_difference(a, b, None, n_boot=200)
    assert 0 < res["p_value"] <= 1 and res["ci95"][0] < res["difference"] < res["ci95"][1]


def test_replicate_interval_resamples_images_with_all_their_seeds():
    correct = np.array([[1, 0, 1, 1], [1, 1, 0, 1]], dtype=bool)
    got = metrics.bootstrap_replicates(correct, 500, 4)
    picks = np.random.default_rng(4).integers(0, 4, size=(500, 4))
    lo, hi = np.percentile(correct.sum(0)[picks].sum(1) / 8, [2.5, 97.5])
    assert got == [pytest.approx(lo), pytest.approx(hi)]


@pytest.fixture
def demo(fake_prepared):
    return open_prepared(tag_rows(fake_prepared(n_per_class=5, roi_fraction=0.6, seed=2)))


def _models(n, seed, recipe=True, **meta):
    rng = np.random.default_rng(seed)
    extra = {"recipe": {"selection": "val", "val_fraction": 0.1, "seed": seed}} if recipe else {}
    g = ckpt("global", rng.normal(size=(n, 7)), seed=seed, **extra, **meta)
    r = ckpt("roi", rng.normal(size=(n, 7)), seed=seed, **extra, **meta)
    return g, r


def _record(demo, seed, rows="within", **meta):
    g, r = _models(len(demo.index), seed, **meta)
    spec = InferJob("train", "demo", demo.root, rows=rows, device="cpu", batch_size=4)
    return ev.infer_loaded(spec, demo, [g], [r])


def cell(arch: str, **kw) -> EvaluateJob:
    return EvaluateJob("train", "demo", arch, **kw)


def test_cells_from_a_saved_record_equal_the_cells_from_the_record_in_memory(demo, tmp_path):
    record = _record(demo, 0)
    record.save(tmp_path / "p.npz")
    loaded = Predictions.load(tmp_path / "p.npz")
    assert loaded.meta["record_version"] == 1 and len(loaded) == len(record)
    for arch in ("global", "roi", "fused"):
        direct = evaluate(cell(arch, records=(record,), bootstrap=200))
        saved = (tmp_path / "p.npz",)
        from_file = evaluate(cell(arch, predictions=saved, bootstrap=200))
        assert direct["provenance"].pop("predictions") == []
        assert from_file["provenance"].pop("predictions") == [str(tmp_path / "p.npz")]
        for key in ("accuracy", "accuracy_ci95", "confusion_matrix", "per_class", "paired"):
            assert from_file[key] == direct[key], (arch, key)
        assert from_file["schema_version"] == 2 and from_file["replicates"] is None


def test_replicates_report_mean_and_std_over_seeds(demo, tmp_path):
    records = [_record(demo, s) for s in (0, 1, 2)]
    res = evaluate(cell("fused", records=tuple(records), bootstrap=100))
    singles = [evaluate(cell("fused", records=(rec,))) for rec in records]
    accs = [s["accuracy"] for s in singles]
    rep = res["replicates"]
    assert rep["seeds"] == [0, 1, 2] and rep["accuracy"] == accs
    assert rep["mean"] == pytest.approx(np.mean(accs)) == pytest.approx(res["accuracy"])
    assert rep["std"] == pytest.approx(np.std(accs, ddof=1))
    assert res["n_images"] == singles[0]["n_images"]
    assert sum(map(sum, res["confusion_matrix"])) == 3 * res["n_images"]
    fused_global = next(p for p in res["paired"] if (p["a"], p["b"]) == ("fused", "global"))
    assert fused_global["seeds"] == 3 and "pooled over 3 seeds" in fused_global["test"]


def test_replicates_must_score_the_same_rows(demo):
    a, b = _record(demo, 0), _record(demo, 1, rows="all")
    with pytest.raises(FerError, match="replicate records"):
        evaluate(cell("global", records=(a, b)))


def test_fusion_weight_is_chosen_on_validation_rows(demo):
    val = _record(demo, 0, rows="val")
    test = _record(demo, 0)
    assert len(val) and not set(val["row"]) & set(test["row"])  # never a test row
    chosen, acc, n = choose_fusion(val, REFERENCE)
    scores = {x: np.mean(val.predicted("fused", Fusion(x, 1 - x)) == val["y"]) for x in GRID}
    w = chosen.w_roi
    assert acc == max(scores.values()) == scores[w] and n == len(val)
    res = evaluate(cell("fused", records=(test,), validation=(val,)))
    vf = res["validated_fusion"]
    assert vf["per_seed"][0]["weights"] == {"roi": w, "global": round(1 - w, 2)}
    expect = test.predicted("fused", Fusion(w, 1 - w)) == test["y"]
    assert vf["accuracy"] == pytest.approx(expect.mean())
    assert res["provenance"]["fusion_weights"] == {"roi": 0.55, "global": 0.45}  # headline


def test_no_validation_split_gives_a_reason_not_a_weight(demo):
    val = _record(demo, 0, rows="val", recipe=False)
    assert len(val) == 0 and "records no training recipe" in val.meta["reason"]
    res = evaluate(cell("fused", records=(_record(demo, 0),), validation=(val,)))
    assert res["validated_fusion"]["accuracy"] is None
    assert "records no training recipe" in res["validated_fusion"]["reason"]


def test_a_bad_record_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(FerError, match="x.npz: not a prediction record"):
        Predictions.load(bad)
    with pytest.raises(FerError, match="prediction record not found"):
        Predictions.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "old.npz", meta=np.array('{"record_version": 0}'), row=np.zeros(1))
    with pytest.raises(FerError, match="record version 0"):
        Predictions.load(tmp_path / "old.npz")


def test_fer_infer_then_evaluate_from_the_command_line(ckpts, fake_prepared, tmp_path):  # noqa: F811
    """The two verbs the workflow runs: fer infer writes the record, fer evaluate scores it."""
    from fer.cli import main

    prepared = fake_prepared(n_per_class=2, roi_fraction=0.5)
    out = tmp_path / "rec.npz"
    common = ["--dataset", "demo", "--target", "demo", "--prepared", str(prepared)]
    models = ["--global-ckpt", str(ckpts["global"]), "--roi-ckpt", str(ckpts["roi"])]
    assert main(["infer", *common, *models, "--no-progress", "--out", str(out)]) == 0
    res_path = tmp_path / "fused.json"
    args = ["evaluate", "--dataset", "demo", "--target", "demo", "--arch", "fused"]
    assert main([*args, "--predictions", str(out), "--out", str(res_path)]) == 0
    assert res_path.is_file() and Predictions.load(out).meta["rows"] == "all"
    both = [*args, "--predictions", str(out), "--prepared", str(prepared), "--out", "x.json"]
    with pytest.raises(SystemExit) as stop:  # fer evaluate scores records and nothing else
        main(both)
    assert stop.value.code == 2


def test_scored_record_refuses_another_protocol(demo):
    rec = _record(demo, 0)
    with pytest.raises(FerError, match="protocol 'shared'"):
        evaluate(cell("fused", records=(rec,), protocol="reference"))


def test_job_values_are_checked():
    with pytest.raises(FerError, match="rows 'some'"):
        InferJob("a", "b", Path("p"), rows="some")
    with pytest.raises(FerError, match="scored from prediction records"):
        EvaluateJob("a", "b", "fused")
    with pytest.raises(FerError, match="expected a fer.fusion.Fusion"):
        EvaluateJob("a", "b", "fused", (None,), fusion={"roi": 1, "global": 0})


def test_scoring_a_cell_from_records_imports_no_torch(demo, tmp_path):
    import subprocess
    import sys

    _record(demo, 0).save(tmp_path / "p.npz")
    code = (
        "import sys; from fer.cli import main; "
        f"rc = main(['evaluate', '--dataset', 'train', '--target', 'demo', '--arch', 'fused', "
        f"'--predictions', {str(tmp_path / 'p.npz')!r}, '--out', {str(tmp_path / 'r.json')!r}]); "
        "print(rc, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split()[-2:] == ["0", "False"], out.stderr[-2000:]
