"""ImageNet weights: where fer looks (torch's hub cache), `fer fetch-weights` putting them there,
and the workflow saying they are missing before any job runs (the download itself needs a
network: it is torchvision's own `ResNet18_Weights.IMAGENET1K_V1.get_state_dict`)."""

from __future__ import annotations

import hashlib
import urllib.error

import pytest
import torch
import torchvision

from fer import imagenet
from fer.cli import main as fer_main
from fer.models import create_model, fetch
from tests.test_workflow import plan_edited


@pytest.mark.parametrize("env", [{"TORCH_HOME": "th"}, {"XDG_CACHE_HOME": "xdg"}, {}])
def test_the_cache_path_is_torch_hubs(env, tmp_path, monkeypatch):
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    for key, value in env.items():
        monkeypatch.setenv(key, str(tmp_path / value))
    expected = torch.hub.get_dir() + "/checkpoints/" + imagenet.FILE
    assert str(imagenet.cache_path()) == expected


@pytest.fixture
def resnet18_file(tmp_path, monkeypatch):
    """A ResNet-18 state_dict file, taken for torchvision's by its hash (offline stand-in)."""
    path = tmp_path / "download" / imagenet.FILE
    path.parent.mkdir()
    torch.manual_seed(7)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setattr(imagenet, "SHA256_PREFIX", digest[:8])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return path


def test_fetch_from_a_file_puts_it_where_weights_imagenet_reads(resnet18_file, capsys):
    assert fer_main(["fetch-weights", "--from", str(resnet18_file)]) == 0
    target = imagenet.cache_path()
    assert target.read_bytes() == resnet18_file.read_bytes()
    assert str(target) in capsys.readouterr().out
    model = create_model("global", 7, 32, 16, weights="imagenet")
    assert model.fer_init["weights"] == str(target)
    assert fer_main(["fetch-weights"]) == 0  # already there: checked, not downloaded


def test_fetch_refuses_a_file_that_is_not_torchvisions(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    other = tmp_path / "mine.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), other)
    assert fer_main(["fetch-weights", "--from", str(other)]) == 2
    err = capsys.readouterr().err
    assert "mine.pth: sha256" in err and "not torchvision's ResNet-18 IMAGENET1K_V1" in err
    assert "weights: " in err and not imagenet.cache_path().exists()


def test_fetch_without_a_network_says_how_to_bring_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def offline():
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(fetch, "download", offline)
    assert fer_main(["fetch-weights"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: could not download {imagenet.URL}")
    assert err.endswith(f"`fer fetch-weights --from {imagenet.FILE}`") and "\n" not in err


def _imagenet_global(cfg):
    cfg["train"]["defaults_global"] = {"weights": "imagenet"}


def test_a_dry_run_plans_without_the_weights_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    r = plan_edited(tmp_path, _imagenet_global)
    assert r.returncode == 0, r.stderr
    assert "note: the recipes of demo/global ask for ImageNet weights" in r.stderr
    assert "fer fetch-weights" in r.stderr


def test_a_run_without_the_weights_stops_before_its_first_job(tmp_path, monkeypatch):
    from tests.conftest import smk

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    plan_edited(tmp_path, _imagenet_global)  # writes edited.yaml
    r = smk("--cores", "1", "--configfile=edited.yaml", cwd=tmp_path)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("config error")]
    assert r.returncode != 0 and len(errors) == 1 and "demo/global" in errors[0]
    assert not (tmp_path / "logs").exists() and not (tmp_path / "resources").exists()
