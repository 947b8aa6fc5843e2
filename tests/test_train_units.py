"""Unit tests of the training recipe, the batched augmentation chain and the data splits."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from fer.errors import FerError
from fer.models import transforms as T
from fer.prepared import open_prepared
from fer.train import augment as A
from fer.train.data import build_splits, epoch_order, sample_weights, vote_vectors
from fer.train.recipe import Recipe

# ---------------------------------------------------------------- augmentation


def _batch(n=6, size=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, size, size, 3), generator=g, dtype=torch.uint8)


def test_augment_shapes_resize_and_seed_determinism():
    x = _batch()
    a = A.augment(x, 32, torch.Generator().manual_seed(1))
    b = A.augment(x, 32, torch.Generator().manual_seed(1))
    c = A.augment(x, 32, torch.Generator().manual_seed(2))
    assert a.shape == (6, 3, 32, 32) and a.dtype == torch.float32
    assert a.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_eval_transform_normalises():
    mean = torch.tensor(T.IMAGENET_MEAN) * 255
    x = mean.round().to(torch.uint8).expand(2, 8, 8, 3).contiguous()
    out = T.eval_transform(x, 8)
    assert out.abs().max() < 0.01
    other = T.Normalisation((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    grey = torch.full((1, 4, 4, 3), 255, dtype=torch.uint8)
    assert torch.allclose(T.eval_transform(grey, 4, other), torch.tensor(2.0))
    assert T.Normalisation.from_meta({"normalisation": other.to_meta()}) == other
    assert T.Normalisation.from_meta({}) == T.IMAGENET


@pytest.mark.parametrize(
    "source, size", [(112, 48), (48, 24), (24, 48), (224, 90), (37, 100), (30, 29), (48, 48)]
)
def test_the_numpy_eval_transform_is_torchs_to_float32_rounding(source, size):
    rng = np.random.default_rng(source * size)
    other = T.Normalisation((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    for x in (  # square, and not (a frame resized to a square)
        rng.integers(0, 256, (3, source, source, 3), dtype=np.uint8),
        rng.integers(0, 256, (2, source, source + 7, 3), dtype=np.uint8),
    ):
        for norm in (T.IMAGENET, other):
            want = T.eval_transform(torch.from_numpy(x), size, norm, channels_last=False)
            got = T.eval_array(x, size, norm)
            assert got.dtype == np.float32 and got.shape == tuple(want.shape)
            assert got.shape[1:] == (3, size, size)
            assert np.abs(got - want.numpy()).max() < 2e-6  # float32 steps at |x| < 3: 2.4e-7
        plain = T.float_array(x, size)  # the same, before normalisation (Predictor.crops)
        want = T.to_float(torch.from_numpy(x), size, channels_last=False).numpy()
        assert plain.dtype == np.float32 and plain.flags.c_contiguous
        assert np.abs(plain - want).max() < 1e-6
    assert np.allclose(T.aa_weights(source, size).sum(1), 1.0, atol=1e-6)


def test_flip_and_affine_identity_cases():
    x = T.to_float(_batch(), 20)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(A.random_hflip(x, g, p=1.0), x.flip(-1))
    assert torch.equal(A.random_affine(x, g, p=0.0), x)
    same = A.random_affine(x, g, p=1.0, degrees=0.0, translate=0.0, scale=(1.0, 1.0))
    assert torch.equal(same, x)


def _shift(src: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``src`` (C×H×W) moved by whole pixels, zeros filling what comes in."""
    h, w = src.shape[-2:]
    out = torch.zeros_like(src)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, yd, xd] = src[:, ys, xs]
    return out


def _shifts(reach: int):
    return [(dy, dx) for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)]


def test_affine_translation_is_a_whole_pixel_shift_with_zero_fill():
    x = T.to_float(_batch(n=8, size=20), 20) + 0.01  # no true zeros in the input
    out = A.random_affine(
        x, torch.Generator().manual_seed(3), p=1.0, degrees=0.0, translate=0.2, scale=(1.0, 1.0)
    )
    for img, src in zip(out, x, strict=True):
        found = any(torch.equal(_shift(src, dy, dx), img) for dy, dx in _shifts(4))
        assert found, "a translation must move the image by whole pixels, filling zeros"


def test_random_erasing_erases_one_rectangle_of_the_reference_area():
    x = torch.ones(32, 3, 40, 40)
    out = A.random_erasing(x, torch.Generator().manual_seed(0), p=1.0)
    for img in out:
        zero = img[0] == 0
        assert torch.equal(zero, (img == 0).all(0))  # all channels erased together
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        area = int(zero.sum())
        assert area == len(rows) * len(cols)  # a filled rectangle
        assert 0.02 * 1600 * 0.8 <= area <= 0.25 * 1600 * 1.2
    none = A.random_erasing(x, torch.Generator().manual_seed(0), p=0.0)
    assert torch.equal(none, x)


def test_standard_chain_is_flip_then_pad_and_crop_and_differs_from_clean(monkeypatch):
    """Without its normalisation and erasing, each picture of the standard chain is the clean
    one or its exact mirror, moved by at most 1/8 of the side with zero fill."""
    x = _batch(n=16, size=32)
    clean = T.to_float(x, 32, channels_last=False) + 0.01  # no true zeros in the input
    gen = torch.Generator().manual_seed(5)
    full = A.augment(x, 32, gen, channels_last=False, kind="standard")
    assert not torch.equal(full, T.eval_transform(x, 32, channels_last=False))
    monkeypatch.setattr(A, "normalize", lambda t: t)
    monkeypatch.setattr(A, "random_erasing", lambda t, *a, **k: t)
    monkeypatch.setattr(A, "to_float", lambda *a, **k: clean.clone())
    out = A.augment(x, 32, torch.Generator().manual_seed(5), channels_last=False, kind="standard")
    flipped = moved = 0
    for img, src in zip(out, clean, strict=True):
        views = [
            (f, d)
            for f in (0, 1)
            for d in _shifts(4)
            if torch.equal(img, _shift(src.flip(-1) if f else src, *d))
        ]
        assert views, "not a whole-pixel shift of the picture or of its mirror"
        flipped += views[0][0]
        moved += views[0][1] != (0, 0)
    assert 0 < flipped < 16 and moved > 8
    assert torch.equal(A.augment(x, 32, gen, kind="none"), T.eval_transform(x, 32))


def _inputs(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "face": torch.rand(n, 3, 16, 16, generator=g),
        "eye": torch.rand(n, 3, 8, 8, generator=g),
    }


def test_mixup_blends_every_input_and_the_targets_by_one_lam():
    inputs = _inputs()
    mixed, lam, perm = A.Mixing(mixup_alpha=0.4).apply(inputs, torch.Generator().manual_seed(1))
    assert 0 <= lam <= 1 and sorted(perm.tolist()) == list(range(6))
    for k, x in inputs.items():
        assert torch.allclose(mixed[k], lam * x + (1 - lam) * x[perm])
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    t = A.Mixing.targets(labels, lam, perm, 3)
    onehot = F.one_hot(labels, 3).float()
    assert torch.allclose(t, lam * onehot + (1 - lam) * onehot[perm])
    assert torch.allclose(t.sum(1), torch.ones(6))
    again = A.Mixing(mixup_alpha=0.4).apply(inputs, torch.Generator().manual_seed(1))
    assert again[1] == lam and torch.equal(again[2], perm)  # the generator decides every draw


def test_cutmix_pastes_the_same_relative_box_everywhere_with_lam_its_share():
    inputs = _inputs(n=8)
    for seed in range(5):
        mixed, lam, perm = A.Mixing(cutmix_alpha=1.0).apply(
            inputs, torch.Generator().manual_seed(seed)
        )
        shares = {}
        for k, x in inputs.items():
            inside = (mixed[k] != x).any(1).any(0)  # H×W: where partners' pixels landed
            rows, cols = inside.any(1), inside.any(0)
            assert torch.equal(inside, rows[:, None] & cols[None, :])  # one rectangle
            assert torch.equal(mixed[k][..., inside], x[perm][..., inside])
            assert torch.equal(mixed[k][..., ~inside], x[..., ~inside])
            shares[k] = (rows.float().mean().item(), cols.float().mean().item())
        face_area = shares["face"][0] * shares["face"][1]
        assert lam == pytest.approx(1 - face_area)
        for got, want in zip(shares["eye"], shares["face"], strict=True):
            assert got == pytest.approx(want, abs=1 / 8)  # the same relative box, ±1 pixel
    both = A.Mixing(mixup_alpha=0.2, cutmix_alpha=1.0)
    kinds = {both.draw(4, torch.Generator().manual_seed(s))[0] for s in range(12)}
    assert kinds == {"mixup", "cutmix"}


def test_color_jitter_brightness_range():
    x = torch.full((64, 3, 4, 4), 0.5)
    out = A.color_jitter(x, torch.Generator().manual_seed(0), brightness=0.2, contrast=0.0)
    ratio = out[:, 0, 0, 0] / 0.5
    assert ratio.min() >= 0.8 - 1e-6 and ratio.max() <= 1.2 + 1e-6 and ratio.std() > 0.05


# ---------------------------------------------------------------- splits and sampling


def test_kfold_splits_never_touch_the_test_fold(fake_prepared):
    data = open_prepared(fake_prepared(kfold=3))
    recipe = Recipe(val_fraction=0.3)
    train, val = build_splits(data, "global", recipe, fold=0)
    test_rows = set(data.rows(fold=0))
    assert not (set(train.rows) | set(val.rows)) & test_rows
    groups = data.index["group"].to_numpy()
    assert not set(groups[train.rows]) & set(groups[val.rows])
    from fer.data.splits import carve_val  # the one validation carve: the manifest's

    folds = data.rows(split="train", fold=0)
    labels = data.index["label"].to_numpy()[folds].astype(str)
    in_val = np.array(carve_val(list(labels), list(groups[folds]), 0.3, recipe.seed + 0))
    assert sorted(val.rows) == sorted(folds[in_val])
    _, on_test = build_splits(data, "global", recipe.replace(selection="test"), fold=0)
    assert set(on_test.rows) == test_rows and on_test.name == "test"
    with pytest.raises(FerError, match="--fold"):
        build_splits(data, "global", recipe, fold=None)


def test_an_older_prepared_folder_names_its_stored_sides_face_size_and_reads_alike(
    fake_prepared,
):
    import json

    root = fake_prepared(chip_size=40, crop_size=20)
    params = json.loads((root / "params.json").read_text())
    params["face_size"], params["roi_size"] = params.pop("chip_size"), params.pop("crop_size")
    (root / "params.json").write_text(json.dumps(params))
    data = open_prepared(root)
    assert (data.chip_size, data.crop_size) == (40, 20)
    assert data.preprocess == {
        "detector": "none",
        "padding": 0.25,
        "chip_size": 40,
        "crop_size": 20,
    }


def test_roi_arch_uses_only_rows_with_rois(fake_prepared):
    data = open_prepared(fake_prepared())
    train, val = build_splits(data, "roi", Recipe(), fold=None)
    has_roi = data.index["has_roi"].to_numpy()
    assert has_roi[train.rows].all() and has_roi[val.rows].all()
    all_train, _ = build_splits(data, "global", Recipe(), fold=None)
    assert len(all_train) > len(train)


def test_balanced_sampler_evens_out_classes(fake_prepared):
    data = open_prepared(fake_prepared())
    train, _ = build_splits(data, "global", Recipe(), fold=None)
    keep = np.flatnonzero((train.labels != 0) | (np.arange(len(train)) % 4 == 0))
    train.rows, train.labels = train.rows[keep], train.labels[keep]  # make class 0 rare
    weights = sample_weights(train, 7)
    order = epoch_order(train, Recipe(samples_per_class=400), 7, torch.Generator().manual_seed(0))
    counts = np.bincount(train.labels[order], minlength=7)
    assert len(order) == 2800 and weights[train.labels == 0].max() > weights.min()
    assert counts.min() > 300 and counts.max() < 500


def _with_votes(root, text):
    index = pd.read_csv(root / "index.csv", keep_default_na=False)
    index["votes"] = text(index)
    index.to_csv(root / "index.csv", index=False)
    return open_prepared(root)


def test_vote_vectors_follow_the_model_classes(fake_prepared):
    data = _with_votes(fake_prepared(), lambda ix: ["0;6;0;0;0;0;2;2"] * len(ix))
    votes = vote_vectors(data, np.arange(3))  # SEVEN classes: contempt's votes are dropped
    assert np.allclose(votes[0], [0, 0.75, 0, 0, 0, 0, 0.25])
    empty = _with_votes(fake_prepared("other"), lambda ix: [""] * len(ix))
    with pytest.raises(FerError, match="votes"):
        build_splits(empty, "global", Recipe(loss="bce"), fold=None)


def test_the_one_votes_reader_refuses_what_it_cannot_read(fake_prepared):
    """PreparedData.votes: what training and scoring both read FERPlus votes through."""
    data = _with_votes(fake_prepared(), lambda ix: ["1;2;3;4;5;6;7;8"] * len(ix))
    assert data.votes(np.array([2, 0])).tolist() == [list(range(1, 9))] * 2
    assert _with_votes(fake_prepared("none"), lambda ix: [""] * len(ix)).votes(np.arange(3)) is None
    short = _with_votes(fake_prepared("short"), lambda ix: ["1;2;3"] * len(ix))
    with pytest.raises(FerError, match=r"index\.csv: row 1 votes '1;2;3'; expected 8 numbers"):
        short.votes(np.array([1]))
    mixed = _with_votes(
        fake_prepared("mixed"), lambda ix: ["", *["0;1;0;0;0;0;0;0"] * (len(ix) - 1)]
    )
    with pytest.raises(FerError, match=r"1 of these 3 rows have an empty votes cell"):
        mixed.votes(np.arange(3))


def test_device_resolution():
    from fer.provenance import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(FerError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(FerError, match="--device"):
        resolve_device("tpu")


def test_batches_gather_in_order_numpy_or_pinned_tensors(fake_prepared, monkeypatch):
    from fer.train.data import Batches
    from fer.train.loop import Step, _inputs

    data = open_prepared(fake_prepared())
    train, _ = build_splits(data, "roi", Recipe(), fold=None)
    positions = np.array([5, 0, 3, 3])
    batch = Batches(data, "roi", train, "aligned").gather(positions)
    assert np.array_equal(batch["face"], data.faces[train.rows[positions]])
    assert np.array_equal(batch["mouth"], data.rois["mouth"][train.rows[positions]])
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: self)  # no CUDA here
    pinned = Batches(data, "roi", train, "aligned", pin=True).gather(positions)
    assert torch.equal(pinned["face"], torch.from_numpy(batch["face"]))

    class Stub:
        uses_rois = True

    inputs = _inputs(pinned, Stub(), Step(torch.device("cpu"), (32, 16)), None)
    assert inputs["face"].shape == (4, 3, 32, 32) and inputs["eye"].shape == (4, 3, 16, 16)


def test_precision_forced_or_chosen_from_the_device(monkeypatch):
    from fer.train.precision import resolve

    cpu = torch.device("cpu")
    assert resolve("bf16", cpu).bf16 and resolve("bf16", cpu).name == "bf16"
    assert resolve("none", cpu).name == "fp32"
    for avx512_bf16, amx, want in (
        (False, False, "fp32"),
        (True, False, "bf16"),
        (False, True, "bf16"),
    ):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert resolve("auto", cpu).name == want
    assert resolve("auto", torch.device("meta")).name == "fp32"  # nothing known: fp32
    with pytest.raises(ValueError, match="auto, bf16 or none"):
        resolve("fp16", cpu)


def _lrs(spe: int, **recipe) -> list[float]:
    """The learning rate of every training step of a recipe with ``spe`` steps per epoch."""
    from fer.train.loop import build_scheduler

    r = Recipe.from_dict({"epochs": 4, "lr": 0.1, **recipe})
    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=r.lr)
    sched = build_scheduler(opt, r, spe)
    out = []
    for _ in range(r.epochs * spe):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_multistep_per_step_keeps_the_reference_epoch_values():
    lrs = _lrs(5, milestones=[1, 3], gamma=0.1)
    want = [0.1] * 5 + [0.01] * 10 + [0.001] * 5  # MultiStepLR stepped once per epoch
    assert lrs == pytest.approx(want, rel=1e-9)


def test_cosine_with_warm_up_follows_the_curve():
    lrs = _lrs(5, schedule="cosine", warmup_epochs=1)
    warm = [0.1 * (0.2 + 0.8 * i / 5) for i in range(5)]  # LinearLR from lr / 5 steps
    cos = [0.1 * (1 + math.cos(math.pi * t / 15)) / 2 for t in range(15)]
    assert lrs == pytest.approx(warm + cos, rel=1e-6)


def test_onecycle_peaks_at_lr_after_the_warm_up():
    lrs = _lrs(5, schedule="onecycle", warmup_epochs=1)
    assert lrs[0] == pytest.approx(0.1 / 25) and max(lrs) == pytest.approx(0.1)
    assert lrs.index(max(lrs)) == 4 and lrs[-1] < 1e-4  # the peak ends the first epoch
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False))


def test_ema_is_the_running_average_of_every_step_s_weights():
    """train_one_epoch updates the EMA after every optimizer step: BatchNorm buffers too."""
    from fer.models import create_model
    from fer.train.loop import Criterion, Step, build_ema, train_one_epoch

    recipe = Recipe.from_dict({"ema_decay": 0.75, "augment": "none"})
    torch.manual_seed(0)
    model = create_model("global", 3, 32, 16)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    snaps = []
    real_step = opt.step

    def step_and_snap(*a, **k):
        out = real_step(*a, **k)
        snaps.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return out

    opt.step = step_and_snap
    g = torch.Generator().manual_seed(0)
    batches = [
        {"face": _batch(n=6, size=32, seed=i), "label": torch.randint(3, (6,), generator=g)}
        for i in range(4)
    ]
    ema = build_ema(model, recipe)
    step = Step(torch.device("cpu"), (32, 16), channels_last=False, augment="none")
    train_one_epoch(model, Criterion(recipe), opt, batches, step, 1, None, ema=ema)
    assert len(snaps) == 4
    hand = snaps[0]
    for s in snaps[1:]:
        hand = {k: 0.75 * hand[k] + 0.25 * v if v.is_floating_point() else v for k, v in s.items()}
    got = ema.module.state_dict()
    for k, v in hand.items():
        if v.is_floating_point():
            assert torch.allclose(got[k], v, atol=1e-6), k
    assert not torch.allclose(got["fc.weight"], model.state_dict()["fc.weight"])


def test_the_memory_format_follows_the_precision_unless_the_recipe_says():
    from fer.train.loop import Step
    from fer.train.precision import Precision, memory_format

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    fp32, bf16 = Precision(False, "fp32"), Precision(True, "bf16")
    assert not memory_format(None, fp32, cpu).channels_last  # NCHW: faster in fp32 on a CPU
    assert memory_format(None, bf16, cpu).name == "channels_last"
    assert memory_format(None, fp32, gpu).channels_last
    assert memory_format(True, fp32, cpu).why == "channels_last: true (forced)"
    assert not memory_format(False, bf16, gpu).channels_last
    step = Step.of(Recipe(amp="none"), (32, 16), cpu)
    assert not step.channels_last and not step.amp
    assert Step.of(Recipe(amp="bf16"), (32, 16), cpu).channels_last
    assert Step.of(Recipe(amp="none", channels_last=True), (32, 16), cpu).channels_last
    with pytest.raises(FerError, match="recipe key 'channels_last' is 'auto'; expected null or"):
        Recipe.from_dict({"channels_last": "auto"})


def test_runtime_estimate_counts_flip_tta_validation_twice():
    """fer.train.estimate: under ``tta: flip`` each validation image is two forward passes."""
    from fer.contracts import TTA_MODES
    from fer.train import estimate

    assert set(estimate.TTA_VIEWS) == set(TTA_MODES)
    job = dict(epochs=30, n_train=20_000, n_val=60_000, n_classes=7, face_size=48)
    none, flip = (estimate.train_minutes("roi", **job, tta=t) for t in ("none", "flip"))
    val_minutes = (
        estimate.MARGIN
        * 30
        * estimate.EVAL_FRACTION
        * 60_000
        * estimate.seconds_per_image("roi", 48)
    ) / 60
    assert abs((flip - none) - val_minutes) <= 1
    assert estimate.train_minutes("roi", **job) == none  # the default: no TTA
