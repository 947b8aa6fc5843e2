"""Models: registry, shapes, reference parameter counts, precision/layout, checkpoints, weights."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fer.errors import FerError
from fer.imagenet import FILE as IMAGENET_FILE
from fer.imagenet import URL as IMAGENET_URL
from fer.labels import CANONICAL
from fer.models import (
    create_model,
    example_inputs,
    gflops_per_image,
    list_models,
    load_checkpoint,
    save_checkpoint,
)
from fer.models.cbam import CBAM, ChannelPools, SpatialPools
from fer.models.roi_net import SelfAttention

SMALL = {"face_size": 64, "roi_size": 32}
TINY = {"face_size": 32, "roi_size": 16}  # for the slower backward / bf16 checks
# reference §8: parameters at C=7 and C=8
REFERENCE_PARAMS = {"global": (11_213_529, 11_214_044), "roi": (24_222_509, 24_223_024)}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main_logits(out):
    return out[0] if isinstance(out, tuple) else out


def test_registry_lists_both_models():
    assert list_models() == ["global", "roi"]
    with pytest.raises(FerError, match="unknown model 'resnet'"):
        create_model("resnet", 7)
    with pytest.raises(FerError, match="num_classes"):
        create_model("global", 1)


@pytest.mark.parametrize("arch", list_models())
@pytest.mark.parametrize("classes", [7, 8])
def test_parameter_counts_match_reference_exactly(arch, classes):
    model = create_model(arch, classes)  # reference sizes 224 / 90
    assert n_params(model) == REFERENCE_PARAMS[arch][classes - 7]
    assert (model.face_size, model.roi_size) == (224, 90)


@pytest.mark.parametrize(
    ("arch", "sizes", "gflops"), [("global", (224, 90), 3.63), ("roi", (224, 90), 12.62)]
)
def test_flops_match_reference(arch, sizes, gflops):
    assert round(gflops_per_image(create_model(arch, 7, *sizes)), 2) == gflops


def test_component_counts_match_reference_breakdown():
    assert n_params(CBAM(512)) == 33_412
    roi = create_model("roi", 7)
    assert n_params(roi.whole) == 11_266_392
    assert sum(n_params(m) for m in roi.whole.modules() if isinstance(m, CBAM)) == 89_880
    assert n_params(roi.roi_trunk) == 12_164_544
    assert n_params(roi.roi_trunk.attn2) == 198_272 and n_params(roi.roi_trunk.attn3) == 789_760
    assert not hasattr(roi.roi_trunk, "maxpool")
    assert (n_params(roi.fc_roi), n_params(roi.bn_roi), n_params(roi.fc)) == (786_944, 1024, 3591)


@pytest.mark.parametrize("arch", list_models())
@pytest.mark.parametrize("sizes", [(64, 32), (32, 16)])
def test_forward_shapes_at_small_sizes(arch, sizes):
    torch.manual_seed(0)
    model = create_model(arch, 7, face_size=sizes[0], roi_size=sizes[1])
    out = model(**example_inputs(model, 2))
    outs = out if isinstance(out, tuple) else (out,)
    assert len(outs) == (3 if model.uses_rois else 1)
    for o in outs:
        assert o.shape == (2, 7) and o.dtype == torch.float32 and torch.isfinite(o).all()


def test_roi_model_needs_all_three_rois():
    model = create_model("roi", 7, **SMALL)
    with pytest.raises(ValueError, match="eye, nose and mouth"):
        model(torch.randn(2, 3, 64, 64))


@pytest.mark.parametrize("arch", list_models())
def test_backward_reaches_every_parameter(arch):
    torch.manual_seed(0)
    model = create_model(arch, 7, **TINY)
    out = model(**example_inputs(model, 4))
    outs = out if isinstance(out, tuple) else (out,)
    target = torch.tensor([0, 1, 2, 3])
    sum(F.cross_entropy(o, target) for o in outs).backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert unused == []


@pytest.mark.parametrize("arch", list_models())
def test_channels_last_bf16_autocast_matches_fp32(arch):
    torch.manual_seed(0)
    model = create_model(arch, 7, **TINY).eval()
    inputs = example_inputs(model, 2)
    with torch.no_grad():
        ref = main_logits(model(**inputs))
        model = model.to(memory_format=torch.channels_last)
        cl = {k: v.contiguous(memory_format=torch.channels_last) for k, v in inputs.items()}
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = main_logits(model(**cl))
    assert out.dtype == torch.float32  # the head BN runs in fp32
    assert F.cosine_similarity(out.flatten(), ref.flatten(), dim=0) > 0.98
    assert model.bn.running_mean.dtype == torch.float32


def test_bf16_autocast_training_step_keeps_head_bn_in_fp32():
    torch.manual_seed(0)
    model = create_model("roi", 7, **TINY).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x, x_whole, x_roi = model(**example_inputs(model, 3))
    loss = sum(F.cross_entropy(o, torch.tensor([0, 1, 2])) for o in (x, x_whole, x_roi))
    loss.backward()
    assert x.dtype == torch.float32 and math.isfinite(loss.item())
    assert model.fc.weight.grad is not None and model.fc.weight.grad.dtype == torch.float32


def test_shared_head_and_roi_trunk_statistics_follow_reference():
    """One training forward updates the shared head BN three times (whole, roi, fused) and the
    ROI trunk's BN once per ROI, as the reference's separate calls do."""
    model = create_model("roi", 7, **SMALL).train()
    model(**example_inputs(model, 2))
    assert model.bn.num_batches_tracked.item() == 3
    assert model.roi_trunk.bn1.num_batches_tracked.item() == 3
    assert model.whole.bn1.num_batches_tracked.item() == 1


def test_eval_batches_rois_without_changing_results():
    torch.manual_seed(0)
    model = create_model("roi", 7, **SMALL).eval()
    rois = [torch.randn(2, 3, 32, 32) for _ in range(3)]
    with torch.no_grad():
        batched = model.roi_vector(*rois)
        maps = torch.cat([model.roi_trunk(r) for r in rois], dim=1)
        separate = model.bn_roi(model.fc_roi(torch.flatten(model.roi_pool(maps), 1)))
    torch.testing.assert_close(batched, separate, rtol=1e-4, atol=1e-5)


def test_attention_is_reference_multi_head_softmax():
    torch.manual_seed(0)
    attn = SelfAttention(32, heads=8)
    tokens = torch.randn(2, 10, 32)
    q, k, v = (
        m(tokens).view(2, 10, 8, 4).transpose(1, 2) for m in (attn.query, attn.key, attn.value)
    )
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(32 / 8), dim=-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 10, 32))
    torch.testing.assert_close(attn(tokens), expected, rtol=1e-5, atol=1e-6)


def test_bf16_attention_core_runs_in_fp32_on_the_cpu():
    """Under CPU bf16 autocast the softmax core is computed in fp32 (faster there): the block's
    output is bf16 and its core equals the fp32 core of the same bf16 projections."""
    torch.manual_seed(0)
    attn = SelfAttention(32, heads=8)
    tokens = torch.randn(2, 10, 32, requires_grad=True)
    seen = []
    attn.proj.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attn(tokens)
        q, k, v = (
            m(tokens).view(2, 10, 8, 4).transpose(1, 2) for m in (attn.query, attn.key, attn.value)
        )
    core = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    assert out.dtype == torch.bfloat16 and seen[0].dtype == torch.bfloat16
    torch.testing.assert_close(
        seen[0].float(), core.transpose(1, 2).reshape(2, 10, 32).bfloat16().float()
    )
    out.float().sum().backward()
    assert tokens.grad is not None and torch.isfinite(tokens.grad).all()
    attn, wide = attn.double(), tokens.detach().double()  # other precisions keep theirs
    q, k, v = (
        m(wide).view(2, 10, 8, 4).transpose(1, 2) for m in (attn.query, attn.key, attn.value)
    )
    weights = torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 10, 32))
    torch.testing.assert_close(attn(wide), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    ("pools", "plain"),
    [
        (SpatialPools, lambda x: (x.mean(dim=(2, 3)), x.amax(dim=(2, 3)))),
        (ChannelPools, lambda x: torch.cat((x.amax(1, keepdim=True), x.mean(1, keepdim=True)), 1)),
    ],
)
def test_cbam_training_pools_give_autograds_gradients(pools, plain, channels_last):
    """CBAM's training pools (one argmax per max, the map's memory format kept) compute the plain
    ops and, without ties (float64), autograd's gradients of them."""
    torch.manual_seed(0)
    x = torch.randn(3, 32, 6, 5, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    mine, ref = pools.apply(x), plain(x)
    mine, ref = (mine, ref) if isinstance(ref, tuple) else ((mine,), (ref,))
    ups = [torch.randn_like(r) for r in ref]
    (dx,) = torch.autograd.grad(mine, x, ups)
    (expected,) = torch.autograd.grad(ref, x, ups)
    for a, b in zip(mine, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(dx, expected)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert dx.is_contiguous(memory_format=fmt)
    assert torch.autograd.gradcheck(pools.apply, (x,), fast_mode=True)


def test_cbam_trains_through_its_pools_and_exports_the_plain_ops():
    def nodes(fn, seen):
        if fn is not None and fn not in seen:
            seen.add(fn)
            for nxt, _ in fn.next_functions:
                nodes(nxt, seen)
        return {type(n).__name__ for n in seen}

    cbam = CBAM(32, 16)
    x = torch.randn(3, 32, 6, 5, requires_grad=True)
    assert {"SpatialPoolsBackward", "ChannelPoolsBackward"} <= nodes(cbam.train()(x).grad_fn, set())
    names = nodes(cbam.eval()(x).grad_fn, set())
    assert "AmaxBackward0" in names and not any("Pools" in n for n in names)


@pytest.mark.parametrize("arch", list_models())
def test_save_load_round_trip_gives_identical_outputs(arch, tmp_path):
    torch.manual_seed(0)
    classes = list(CANONICAL[:7])
    model = create_model(arch, 7, **SMALL)
    model(**example_inputs(model, 4))  # move BN running stats away from their init
    model.eval()
    path = tmp_path / "sub" / f"{arch}.pt"
    save_checkpoint(path, model, {"classes": classes, "dataset": "fake", "seed": 0, "fold": None})
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    loaded, meta = load_checkpoint(path)
    assert not loaded.training and type(loaded) is type(model)
    assert meta["model"] == arch and meta["classes"] == classes and meta["fold"] is None
    assert (meta["face_size"], meta["roi_size"]) == (64, 32) and "fer_version" in meta
    inputs = example_inputs(model, 2)
    with torch.no_grad():
        a, b = model(**inputs), loaded(**inputs)
    for x, y in zip(
        a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,), strict=True
    ):
        assert torch.equal(x, y)


def test_save_refuses_meta_that_does_not_describe_the_model(tmp_path):
    model = create_model("global", 7, **SMALL)
    with pytest.raises(ValueError, match="classes"):
        save_checkpoint(tmp_path / "a.pt", model, {"classes": ["a", "b"]})
    with pytest.raises(ValueError, match="plain types"):
        save_checkpoint(tmp_path / "a.pt", model, {"classes": list("abcdefg"), "x": object()})
    assert not list(tmp_path.iterdir())


class Payload:
    """A class that a weights_only load must refuse to unpickle."""


@pytest.mark.parametrize("payload", ["module", "object"])
def test_pickled_object_checkpoint_is_refused(payload, tmp_path):
    model = create_model("global", 7, **SMALL)
    path = tmp_path / "evil.pt"
    if payload == "module":
        torch.save(model, path)  # what the reference does
    else:
        torch.save({"state_dict": model.state_dict(), "meta": {"x": Payload()}}, path)
    with pytest.raises(FerError, match=r"evil\.pt refused.*weights_only"):
        load_checkpoint(path)


def test_mismatching_state_dict_is_refused(tmp_path):
    model = create_model("global", 7, **SMALL)
    meta = {
        "model": "global",
        "classes": list("abcdefgh"),
        "face_size": 64,
        "roi_size": 32,
        "fer_version": "0",
    }
    torch.save({"state_dict": model.state_dict(), "meta": meta}, tmp_path / "bad.pt")
    with pytest.raises(FerError, match=r"bad\.pt: state_dict does not fit model 'global'.*8"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({"state_dict": model.state_dict(), "meta": {"model": "global"}}, tmp_path / "m.pt")
    with pytest.raises(FerError, match=r"m\.pt: meta lacks classes"):
        load_checkpoint(tmp_path / "m.pt")
    meta["classes"] = 7
    torch.save({"state_dict": model.state_dict(), "meta": meta}, tmp_path / "c.pt")
    with pytest.raises(FerError, match=r"c\.pt: meta 'classes' must be a list"):
        load_checkpoint(tmp_path / "c.pt")
    with pytest.raises(FerError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")


@pytest.fixture
def fake_resnet18(tmp_path):
    """A torchvision ResNet-18 state_dict file with random (non-default) weights."""
    import torchvision

    torch.manual_seed(123)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    return path, state


@pytest.mark.parametrize("arch", list_models())
def test_resnet18_weights_are_loaded_from_a_path(arch, fake_resnet18):
    path, state = fake_resnet18
    model = create_model(arch, 7, **SMALL, weights=str(path))
    trunks = [model.trunk] if arch == "global" else [model.whole, model.roi_trunk]
    prefix = "trunk" if arch == "global" else "whole"
    for trunk in trunks:
        assert torch.equal(trunk.conv1.weight, state["conv1.weight"])
        assert torch.equal(trunk.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    random_init = create_model(arch, 7, **SMALL)
    assert not torch.equal(
        random_init.state_dict()[f"{prefix}.conv1.weight"], state["conv1.weight"]
    )


def test_imagenet_weights_come_from_torch_home(fake_resnet18, tmp_path, monkeypatch):
    path, state = fake_resnet18
    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    (home / "hub" / "checkpoints" / IMAGENET_FILE).write_bytes(path.read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(home))
    model = create_model("global", 7, **SMALL, weights="imagenet")
    assert torch.equal(
        model.trunk.layer2[0].downsample[0].weight, state["layer2.0.downsample.0.weight"]
    )


def test_missing_imagenet_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    expected = tmp_path / "empty" / "hub" / "checkpoints" / IMAGENET_FILE
    with pytest.raises(FerError) as err:
        create_model("global", 7, **SMALL, weights="imagenet")
    assert str(expected) in str(err.value) and IMAGENET_URL in str(err.value)
    with pytest.raises(FerError, match=r"nowhere\.pth not found"):
        create_model("global", 7, **SMALL, weights=str(tmp_path / "nowhere.pth"))


def test_weights_file_that_is_not_resnet18_is_refused(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, bad)
    with pytest.raises(FerError, match=r"bad\.pth: holds 1 tensor\(s\) of no ResNet .*ResNet-18"):
        create_model("global", 7, **SMALL, weights=str(bad))
    text = tmp_path / "text.pth"
    text.write_text("hello")
    with pytest.raises(FerError, match=r"text\.pth: not a readable ResNet-18 state_dict"):
        create_model("global", 7, **SMALL, weights=str(text))


@pytest.mark.parametrize("arch", list_models())
def test_fer_checkpoint_initialises_all_but_the_class_head(arch, tmp_path):
    """Fine-tuning (e.g. FER2013 → CK+): another class set and input size; head stays fresh."""
    torch.manual_seed(5)
    upstream = create_model(arch, 7, **SMALL)
    for p in upstream.parameters():
        p.data.normal_()  # unlike any default init
    path = tmp_path / "upstream.pt"
    save_checkpoint(path, upstream, {"classes": list(CANONICAL[:7]), "dataset": "fer2013"})
    torch.manual_seed(0)
    model = create_model(arch, 5, **TINY, weights=str(path))
    torch.manual_seed(0)
    fresh = create_model(arch, 5, **TINY)
    for key, value in model.state_dict().items():
        if key.startswith(("fc.", "bn.")):
            assert torch.equal(value, fresh.state_dict()[key]), key
        else:
            assert torch.equal(value, upstream.state_dict()[key]), key
    assert model.fer_init["kind"] == "fer checkpoint"
    assert model.fer_init["from_dataset"] == "fer2013"
    assert model.fer_init["tensors"] == len(model.state_dict()) - 7  # fc w/b, bn w/b/mean/var/count
    assert create_model(arch, 5, **TINY).fer_init is None


def test_fer_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "global.pt"
    save_checkpoint(path, create_model("global", 7, **TINY), {"classes": list(CANONICAL[:7])})
    with pytest.raises(FerError, match=r"global\.pt: a 'global' checkpoint cannot initialise"):
        create_model("roi", 7, **TINY, weights=str(path))
