"""`fer train` end to end on tiny synthetic data: learning, determinism, kill-and-resume,
selection on test, NaN handling and clear errors. Face 32, ROI 16, one CPU thread."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from fer import cli
from fer.errors import FerError
from fer.models import load_checkpoint
from fer.synthetic import write_prepared
from fer.train import cli as T
from fer.train.loop import Criterion

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "epochs": 3,
    "batch_size": 16,
    "lr": 0.05,
    "milestones": [2],
    "samples_per_class": 24,
    "workers": 1,
}
METRICS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc")


def train_args(prepared, out, arch="global", fold=None, **recipe):
    args = [
        "--prepared",
        str(prepared),
        "--arch",
        arch,
        "--out",
        str(out),
        "--threads",
        "1",
        "--no-progress",
        "--recipe",
        json.dumps({**TINY, **recipe}),
    ]
    return args + (["--fold", str(fold)] if fold is not None else [])


def history(out: Path) -> list[dict]:
    with open(out.parent / f"{out.stem}.history.csv") as fh:
        return list(csv.DictReader(fh))


def metrics(out: Path) -> list[tuple]:
    return [tuple(row[k] for k in METRICS) for row in history(out)]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return write_prepared(tmp_path_factory.mktemp("train") / "prepared", n_per_class=16)


@pytest.fixture(scope="module")
def reference_run(prepared, tmp_path_factory):
    """One uninterrupted global run, shared by the learning, determinism and resume tests."""
    out = tmp_path_factory.mktemp("ref") / "models" / "global.pt"
    assert T.main(train_args(prepared, out)) == 0
    return out


def test_tiny_run_learns_and_writes_the_contract_outputs(reference_run):
    rows = history(reference_run)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert float(rows[-1]["lr"]) == pytest.approx(0.005)  # MultiStepLR milestone at epoch 2
    model, meta = load_checkpoint(reference_run)
    assert meta["best_val_acc"] > 0.5  # chance is 1/7
    assert meta["best_val_acc"] == max(float(r["val_acc"]) for r in rows)
    for key in (
        "classes",
        "seed",
        "selection",
        "global_input",
        "fold",
        "best_epoch",
        "git_sha",
        "config_hash",
        "recipe",
        "dataset",
    ):
        assert key in meta, key
    assert meta["selection"] == "val" and not meta["selected_on_test"]
    run = json.loads(reference_run.with_suffix(".run.json").read_text())
    assert run["versions"]["torch"] == torch.__version__ and run["best_epoch"] == meta["best_epoch"]
    assert run["selected_on_test"] is False and "warning" not in run
    assert run["train_counts"]["happy"] > 0 and run["recipe"]["samples_per_class"] == 24
    assert not (reference_run.parent / ".state").exists()  # resume state removed on success


def test_same_seed_gives_identical_metrics(prepared, reference_run, tmp_path):
    out = tmp_path / "again.pt"
    assert T.main(train_args(prepared, out)) == 0
    assert metrics(out) == metrics(reference_run)
    other = tmp_path / "seed1.pt"
    assert T.main(train_args(prepared, other, seed=1, epochs=1)) == 0
    assert metrics(other)[0] != metrics(reference_run)[0]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_resumes_to_the_same_metrics(prepared, reference_run, tmp_path, sig):
    """A kill, or a scheduler's SIGTERM (which ends the run in one line, exit 143)."""
    out = tmp_path / "models" / "global.pt"
    state = tmp_path / "models" / ".state" / "global" / "last.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fer.cli", "train", *train_args(prepared, out)],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert state.exists(), err
    if sig == signal.SIGTERM:
        assert proc.returncode == 143 and "Traceback" not in err, err[-2000:]
        assert err.strip().splitlines()[-1] == "fer train: terminated (SIGTERM)"
    assert not out.exists(), "killed before the end: the declared output must not exist yet"
    done = torch.load(state, weights_only=True)["epochs_done"]
    assert 1 <= done < 3
    assert T.main(train_args(prepared, out)) == 0
    assert metrics(out) == metrics(reference_run)
    run = json.loads(out.with_suffix(".run.json").read_text())
    assert run["resumed_from_epoch"] == done
    ref_model, _ = load_checkpoint(reference_run)
    model, _ = load_checkpoint(out)
    for (k, a), b in zip(ref_model.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_roi_arch_trains_and_selection_test_marks_every_output(prepared, tmp_path):
    out = tmp_path / "roi.pt"
    assert (
        T.main(
            train_args(
                prepared,
                out,
                arch="roi",
                epochs=1,
                selection="test",
                max_steps_per_epoch=3,
                amp="none",
            )
        )
        == 0
    )
    _, meta = load_checkpoint(out)
    assert meta["model"] == "roi" and meta["selection"] == "test" and meta["selected_on_test"]
    assert "TEST" in meta["warning"]
    run = json.loads((tmp_path / "roi.run.json").read_text())
    assert run["selected_on_test"] is True and "TEST" in run["warning"]
    assert run["validated_on"] == "test" and run["n_train"] < 84
    assert {r["validated_on"] for r in history(out)} == {"test"}


def test_nan_loss_stops_with_epoch_and_step_and_keeps_the_last_good_state(
    prepared, tmp_path, monkeypatch
):
    out = tmp_path / "nan.pt"
    calls = {"n": 0}
    real = Criterion.forward

    def poisoned(self, outputs, target):
        calls["n"] += 1
        loss = real(self, outputs, target)
        return loss * float("nan") if calls["n"] == 11 + 3 else loss

    monkeypatch.setattr(Criterion, "forward", poisoned)
    with pytest.raises(FerError, match=r"epoch 2 step 3\b") as err:
        T.main(train_args(prepared, out))  # 168 samples / 16 = 11 train steps per epoch
    state = tmp_path / ".state" / "nan" / "last.pt"
    assert str(state) in str(err.value)
    assert torch.load(state, weights_only=True)["epochs_done"] == 1
    assert not out.exists()


def test_exploding_lr_is_reported_not_saved(prepared, tmp_path):
    with pytest.raises(FerError, match=r"non-finite loss .* at epoch 1 step \d+"):
        T.main(train_args(prepared, tmp_path / "boom.pt", lr=1e30, epochs=1, amp="none"))


def _edit_index(root: Path, edit) -> Path:
    index = pd.read_csv(root / "index.csv", keep_default_na=False)
    edit(index)
    index.to_csv(root / "index.csv", index=False)
    return root


def test_bad_input_fails_clearly(fake_prepared, tmp_path, capsys):
    def no_fear_rois(ix):
        ix.loc[ix["label_name"] == "fear", "has_roi"] = 0

    def no_val(ix):
        ix.loc[ix["split"] == "val", "split"] = "train"

    root = _edit_index(fake_prepared("a"), no_fear_rois)
    with pytest.raises(FerError, match=r"no training rows with ROIs for class\(es\) \['fear'\]"):
        T.main(train_args(root, tmp_path / "roi.pt", arch="roi"))
    root = _edit_index(fake_prepared("b"), no_val)
    with pytest.raises(FerError, match="val split has no usable rows"):
        T.main(train_args(root, tmp_path / "g.pt"))
    rc = cli.main(["train", *train_args(root, tmp_path / "g.pt", learning_rate=1)])
    err = capsys.readouterr().err
    assert rc == 2 and "error: --recipe: unknown recipe key 'learning_rate'" in err


def test_kfold_and_bce_paths_run(fake_prepared, tmp_path):
    root = _edit_index(
        fake_prepared("k", kfold=3),
        lambda ix: ix.__setitem__(
            "votes", [";".join("3" if j == lab else "1" for j in range(8)) for lab in ix["label"]]
        ),
    )
    out = tmp_path / "global.fold1.pt"
    assert (
        T.main(
            train_args(
                root,
                out,
                fold=1,
                epochs=1,
                loss="bce",
                max_steps_per_epoch=2,
                face_size=24,
                augment="none",
            )
        )
        == 0
    )
    _, meta = load_checkpoint(out)
    assert meta["fold"] == 1 and meta["recipe"]["loss"] == "bce" and meta["face_size"] == 24
    assert all(float(r["train_loss"]) < 1.0 for r in history(out))  # BCE scale, finite


def test_state_of_another_recipe_is_not_resumed(prepared, tmp_path, capsys):
    out = tmp_path / "g.pt"
    quick = {"epochs": 1, "max_steps_per_epoch": 2}
    assert T.main([*train_args(prepared, out, **quick), "--keep-state"]) == 0
    assert (tmp_path / ".state" / "g" / "last.pt").is_file()
    assert T.main(train_args(prepared, out, **quick, seed=5)) == 0
    assert "starting over" in capsys.readouterr().err
    assert json.loads((tmp_path / "g.run.json").read_text())["resumed_from_epoch"] is None
    assert not (tmp_path / ".state").exists()


def test_auto_precision_is_recorded_and_a_state_of_another_precision_starts_over(
    prepared, tmp_path, capsys, monkeypatch
):
    """amp: auto picks fp32 on a CPU without native bf16 and bf16 on one with AMX; run.json
    and the log say which and why; a state saved in one is not resumed in the other."""
    out = tmp_path / "g.pt"
    quick = {"epochs": 1, "max_steps_per_epoch": 2, "amp": "auto"}
    for flag in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, flag, lambda: False)
    assert T.main([*train_args(prepared, out, **quick), "--keep-state"]) == 0
    run = json.loads((tmp_path / "g.run.json").read_text())
    assert run["recipe"]["amp"] == "auto" and run["precision"]["amp"] == "fp32"
    assert "neither AVX512_BF16 nor AMX" in run["precision"]["why"]
    assert run["recipe"]["channels_last"] is None  # and the memory format follows: NCHW
    assert run["memory_format"] == {
        "format": "nchw",
        "why": "channels_last: null, an fp32 step on the CPU",
    }
    err = capsys.readouterr().err
    assert "precision fp32 (amp: auto" in err and "memory format nchw (channels_last: null" in err
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert T.main(train_args(prepared, out, **quick)) == 0
    err = capsys.readouterr().err
    assert "saved for another precision (amp: auto chose differently" in err, err
    run = json.loads((tmp_path / "g.run.json").read_text())
    assert run["precision"] == {"amp": "bf16", "why": "amp: auto, the CPU has AMX"}
    assert run["memory_format"]["format"] == "channels_last"
    assert run["resumed_from_epoch"] is None


def test_fine_tuning_from_a_checkpoint_of_other_classes_is_recorded(
    reference_run, fake_prepared, tmp_path
):
    """weights: a `fer train` checkpoint (7 classes) starts a 5-class model; the run says so."""
    five = fake_prepared("five", classes=("happy", "sad", "surprise", "fear", "anger"))
    out = tmp_path / "tuned.pt"
    assert (
        T.main(train_args(five, out, epochs=1, max_steps_per_epoch=2, weights=str(reference_run)))
        == 0
    )
    init = json.loads((tmp_path / "tuned.run.json").read_text())["init"]
    assert init["kind"] == "fer checkpoint" and init["weights"] == str(reference_run)
    assert len(init["from_classes"]) == 7 and init["tensors"] > 100
    model, meta = load_checkpoint(out)
    assert meta["init"] == init and model.num_classes == 5
    with pytest.raises(FerError, match="a 'global' checkpoint cannot initialise a 'roi' model"):
        T.main(train_args(five, tmp_path / "r.pt", arch="roi", weights=str(reference_run)))


@pytest.mark.slow
def test_compiled_training_gives_the_eager_losses(prepared, tmp_path):
    """``compile: default`` (inductor on the CPU) trains to the eager losses within float
    rounding, in fp32 without augmentation and with a small lr so that only the kernels differ.
    Two steps: an untrained net on noise amplifies rounding (1e-5 after four steps, 1e-3 after
    six). The Global Net only: the Global-ROI Net compiles for 5 minutes on 2 cores (the GPU
    check, benchmarks/gpu_check.sh, compiles both)."""
    arch = "global"
    same = {"epochs": 1, "lr": 1e-3, "amp": "none", "augment": "none", "max_steps_per_epoch": 2}
    eager, fast = tmp_path / "eager.pt", tmp_path / "compiled.pt"
    assert T.main(train_args(prepared, eager, arch, **same)) == 0
    assert T.main(train_args(prepared, fast, arch, compile="default", **same)) == 0
    for a, b in zip(history(eager), history(fast), strict=True):
        for k in ("train_loss", "val_loss"):
            assert float(b[k]) == pytest.approx(float(a[k]), rel=1e-4), (k, a, b)
    run = json.loads(fast.with_suffix(".run.json").read_text())
    assert run["recipe"]["compile"] == "default"


MODERN = {  # every recipe option of issue 28 at once
    "optimizer": "adamw",
    "lr": 0.003,
    "weight_decay": 0.05,
    "schedule": "cosine",
    "warmup_epochs": 1,
    "augment": "standard",
    "mixup_alpha": 0.4,
    "cutmix_alpha": 1.0,
    "ema_decay": 0.9,
    "tta": "flip",
    "max_steps_per_epoch": 4,  # the schedule spans these 4 steps an epoch
}


def test_modern_options_resume_mid_run_to_the_same_weights(prepared, tmp_path, monkeypatch):
    """AdamW, cosine after warm-up, the standard chain, MixUp / CutMix, an EMA and flip TTA: a
    run stopped after its first epoch resumes to the weights and metrics of one that was not,
    and the checkpoint records the recipe and its test-time views."""
    from fer.train import loop

    full = tmp_path / "full" / "global.pt"
    assert T.main(train_args(prepared, full, **MODERN)) == 0
    cut = tmp_path / "cut" / "global.pt"
    real, calls = loop.evaluate, []

    def stop_in_epoch_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("stopped in epoch 2")
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", stop_in_epoch_two)
    with pytest.raises(RuntimeError, match="stopped in epoch 2"):
        T.main(train_args(prepared, cut, **MODERN))
    monkeypatch.setattr(loop, "evaluate", real)
    assert T.main(train_args(prepared, cut, **MODERN)) == 0
    assert json.loads(cut.with_suffix(".run.json").read_text())["resumed_from_epoch"] == 1
    assert metrics(cut) == metrics(full)
    (a, meta), (b, _) = load_checkpoint(full), load_checkpoint(cut)
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), k
    assert meta["tta"] == "flip" and meta["recipe"]["schedule"] == "cosine"
    steps = 4  # max_steps_per_epoch
    lrs = [float(r["lr"]) for r in history(full)]  # each epoch's first step
    assert lrs == pytest.approx([0.003 / steps, 0.003, 0.0015])  # warm-up, then cosine
