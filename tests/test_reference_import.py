"""`fer import-reference`: the authors' whole-module pickles, read safely.

Reference-format files are built here, offline: stand-ins of the authors' modules under their
module paths (tests/reference_standins/package), saved with `torch.save(model)` plain and inside
`nn.DataParallel` by a separate process; they are imported in this process, where `package` is
not importable. The imported models' logits must equal the stand-ins'.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fer.errors import FerError
from fer.labels import CANONICAL
from fer.models import load_checkpoint
from fer.models.reference import RENAMES, fer_name
from fer.models.reference_pickle import ALLOWED
from fer.train.reference import import_reference
from tests.conftest import REPO, SHARED_DATA

STANDINS = REPO / "tests" / "reference_standins"
FACTS = SHARED_DATA.parent / "docs" / "reference-checkpoints.json"

MAKE = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from package.model1 import ResNet
    from package.resnet_cbam import Resnet

    out, spec = sys.argv[1], json.loads(sys.argv[2])
    torch.manual_seed(spec.get("seed", 0))
    model = (Resnet(spec["classes"]) if spec["arch"] == "global"
             else ResNet(spec["classes"], n_head=8, resnet_cbam=1))
    with torch.no_grad():  # weights and BN statistics unlike any init
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                t.copy_(torch.randn_like(t) * 0.1 + (1.0 if name.endswith("running_var") else 0))
                if name.endswith("running_var"):
                    t.abs_()
    model.eval()
    g = torch.Generator().manual_seed(1)
    face = torch.randn(3, 3, 64, 64, generator=g)
    rois = [torch.randn(3, 3, 32, 32, generator=g) for _ in range(3)]
    with torch.no_grad():
        logits = model(face) if spec["arch"] == "global" else model(face, *rois)
    logits = [logits] if spec["arch"] == "global" else list(logits)
    edit = spec.get("edit")
    if edit == "missing":
        del model.fc_roi._parameters["bias"]
    elif edit == "extra":
        model.register_buffer("stray", torch.zeros(3))
    elif edit == "shape":
        model.fc_roi.weight = torch.nn.Parameter(torch.zeros(512, 1000))
    elif edit == "evil":
        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {spec['marker']}",))
        model.evil = Evil()
    torch.save({"face": face, "rois": rois, "logits": logits}, out + ".expected")
    if spec.get("cuda_tags"):  # storages recorded as CUDA, as on the authors' GPU
        torch.serialization.register_package(0, lambda obj: "cuda:0", lambda obj, loc: None)
    torch.save(torch.nn.DataParallel(model) if spec.get("dp") else model, out)
    """
)


def make_reference(tmp_path: Path, **spec) -> tuple[Path, dict]:
    """A reference-format checkpoint written by another process; returns it and the expected
    inputs and logits of the stand-in model that wrote it."""
    out = tmp_path / f"{spec['arch']}-{len(os.listdir(tmp_path))}.path"
    env = {**os.environ, "PYTHONPATH": str(STANDINS)}
    r = subprocess.run(
        [sys.executable, "-c", MAKE, str(out), json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return out, torch.load(f"{out}.expected", weights_only=True)


def logits_of(ckpt: Path, expected: dict) -> list[torch.Tensor]:
    model, _ = load_checkpoint(ckpt)
    with torch.no_grad():
        if model.uses_rois:
            return list(model(expected["face"], *expected["rois"]))
        return [model(expected["face"])]


def assert_same(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    scale = theirs.abs().max().item()
    assert (ours - theirs).abs().max().item() <= 1e-5 * scale, (ours, theirs)


def test_the_reference_modules_are_not_importable_here():
    assert importlib.util.find_spec("package") is None


@pytest.mark.parametrize(
    ("arch", "classes", "dp"),
    [("global", 7, False), ("global", 8, True), ("roi", 7, True), ("roi", 8, False)],
)
def test_imported_logits_equal_the_reference_models(arch, classes, dp, tmp_path):
    path, expected = make_reference(tmp_path, arch=arch, classes=classes, dp=dp)
    dataset = {7: "rafdb", 8: "affectnet8"}[classes]
    meta = import_reference(arch, path, dataset, tmp_path / "m.pt")
    assert meta["classes"] == list(CANONICAL[:classes]) and meta["origin"] == "reference"
    assert meta["reference"]["data_parallel"] is dp and meta["selected_on_test"] is True
    assert len(meta["reference"]["sha256"]) == 64
    for ours, theirs in zip(
        logits_of(tmp_path / "m.pt", expected), expected["logits"], strict=True
    ):
        assert_same(ours, theirs)
    run = json.loads((tmp_path / "m.run.json").read_text())
    assert run["origin"] == "reference" and run["arch"] == arch
    assert (tmp_path / "m.history.csv").read_text().startswith("epoch,")
    assert torch.load(tmp_path / "m.pt", weights_only=True)["meta"]["normalisation"]


def test_a_stated_class_order_puts_the_head_into_fers(tmp_path):
    """FERPlus's order is not in the reference: stated, the rows move into canonical order."""
    path, expected = make_reference(tmp_path, arch="roi", classes=8)
    order = ["happy", "neutral", "surprise", "sad", "anger", "disgust", "fear", "contempt"]
    with pytest.raises(FerError, match="state the head's order with --classes"):
        import_reference("roi", path, "ferplus", tmp_path / "x.pt")
    meta = import_reference("roi", path, "ferplus", tmp_path / "f.pt", classes=order)
    assert meta["classes"] == list(CANONICAL) and meta["reference"]["classes"] == order
    assert meta["selection"] == "val"  # FERPlus's checkpoints were chosen on its val split
    perm = [order.index(c) for c in CANONICAL]
    for ours, theirs in zip(
        logits_of(tmp_path / "f.pt", expected), expected["logits"], strict=True
    ):
        assert_same(ours, theirs[:, perm])


def test_cuda_storages_are_read_on_a_cpu(tmp_path):
    path, expected = make_reference(tmp_path, arch="global", classes=7, cuda_tags=True, dp=True)
    assert b"cuda:0" in path.read_bytes()
    import_reference("global", path, "affectnet7", tmp_path / "c.pt")
    assert_same(logits_of(tmp_path / "c.pt", expected)[0], expected["logits"][0])


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path, _ = make_reference(tmp_path, arch="global", classes=7, edit="evil", marker=str(marker))
    with pytest.raises(FerError, match=r"refused: the pickle names (posix|os)\.system"):
        import_reference("global", path, "rafdb", tmp_path / "e.pt")
    assert not marker.exists() and not (tmp_path / "e.pt").exists()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("truncated", r"not a readable PyTorch checkpoint"),
        ("arch", r"holds the Global-ROI Net \(package\.model1\.ResNet\); --arch global expects"),
        ("missing", r"not the reference's Global-ROI Net: no tensor for fer's fc_roi\.bias"),
        ("extra", r"not the reference's Global-ROI Net: unexpected tensor stray"),
        ("shape", r"fc_roi\.weight has shape \(512, 1000\), not \(512, 1536\)"),
    ],
)
def test_a_bad_file_is_one_line_naming_it(case, message, tmp_path):
    edit = case if case in ("missing", "extra", "shape") else None
    path, _ = make_reference(tmp_path, arch="roi", classes=7, edit=edit)
    arch = "global" if case == "arch" else "roi"
    if case == "truncated":
        path.write_bytes(path.read_bytes()[:5000])
    out = tmp_path / "out.pt"
    r = subprocess.run(
        [
            str(Path(sys.executable).parent / "fer"),
            "import-reference",
            "--arch",
            arch,
            "--checkpoint",
            str(path),
            "--dataset",
            "rafdb",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"error: {path}") and __import__("re").search(message, lines[0])
    assert not out.exists()


@pytest.mark.skipif(not FACTS.is_file(), reason="the reference checkpoints' facts file is absent")
@pytest.mark.parametrize("variant", ["global", "global_dataparallel", "roi", "roi_dataparallel"])
def test_the_rename_table_places_every_tensor_of_the_facts(variant):
    """Every tensor the authors' files hold maps to one fer tensor of the same shape and dtype,
    and every global their pickles name is allowed."""
    from fer.models import create_model

    facts = json.loads(FACTS.read_text())[variant]
    arch = variant.split("_")[0]
    targets = create_model(arch, 7, 224, 90).state_dict()
    names = [fer_name(k.removeprefix("module."), arch) for k, _, _ in facts["state_dict"]]
    assert sorted(names) == sorted(targets)  # a bijection onto fer's tensors
    for (_, shape, dtype), name in zip(facts["state_dict"], names, strict=True):
        assert list(targets[name].shape) == shape and str(targets[name].dtype) == f"torch.{dtype}"
    assert set(facts["pickle_globals"]) <= ALLOWED
    assert set(RENAMES) == {"global", "roi"}


def test_the_authors_checkpoint_replaces_the_training_job_in_the_workflow(tmp_path):
    """A recipe's `reference:` makes the model by importing the file: planned as an import job
    in place of the training, refused for a k-fold set."""
    import yaml

    from tests.conftest import smk
    from tests.test_workflow import plan_edited

    path, _ = make_reference(tmp_path, arch="roi", classes=7)
    other, _ = make_reference(tmp_path, arch="global", classes=7, dp=True)
    seven = list(CANONICAL[:7])

    def authors_roi(cfg):
        recipes = cfg["train"].setdefault("recipes", {})
        recipes["demo"] = {
            "roi": {"reference": str(path), "reference_classes": seven},
            "global": {"reference": str(other), "reference_classes": seven},
        }

    work = tmp_path / "work"
    r = plan_edited(work, authors_roi, "--printshellcmds", "results/demo/demo_fused.json")
    assert r.returncode == 0, r.stderr
    jobs = [ln for ln in r.stdout.splitlines() if "fer --log" in ln]
    assert any("import-reference --arch roi" in j and str(path) in j for j in jobs)
    assert any("import-reference --arch global" in j and str(other) in j for j in jobs)
    assert not any(" train " in j for j in jobs)  # nothing is trained
    bad = yaml.safe_load((work / "edited.yaml").read_text())
    bad["datasets"]["demo"]["kfold"] = 3
    (work / "kfold.yaml").write_text(yaml.safe_dump(bad))
    r = smk("-n", "--configfile=kfold.yaml", cwd=work)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("config error")]
    assert len(errors) == 2, errors  # both models, at once
    for line, model in zip(errors, ("global", "roi"), strict=True):
        assert line.startswith("config error: kfold.yaml:") and line.endswith(
            f"train.recipes.demo.{model}.reference: a k-fold set has one model per fold, the "
            "authors' file is one"
        )


def test_imported_models_run_downstream_unchanged_and_the_report_marks_them(features_run):
    """The features run's ``authors`` set: both models imported, then scored, paired and
    reported like trained ones, the cells marked as the authors' (chosen on test)."""
    work = features_run.work
    for arch in ("global", "roi"):
        log = (work / "logs" / "train_model" / "authors" / f"{arch}.log").read_text()
        assert "the authors'" in log and "epoch" not in log  # imported, not trained
    fused = json.loads((work / "results/authors/authors_fused.json").read_text())
    assert fused["provenance"]["checkpoints"]["roi"]["origin"] == "reference"
    assert fused["provenance"]["selected_on_test"] is True  # the authors chose on test
    assert (work / "models/authors/fusion.json").is_file()
    html = (work / "reports/all.html").read_text()
    assert "authors&#39; weights" in html or "authors' weights" in html


def test_a_reference_without_a_known_class_order_stops_planning(tmp_path):
    from tests.test_workflow import plan_errors

    def authors_roi(cfg):
        cfg["train"]["recipes"] = {"demo": {"roi": {"reference": str(tmp_path / "roi.path")}}}

    errors = plan_errors(tmp_path, authors_roi)
    assert len(errors) == 1 and errors[0].startswith("config error: edited.yaml:")
    assert errors[0].endswith(
        "train.recipes.demo.roi.reference: the reference code gives no class order for demo's "
        "models; state the head's order with reference_classes: [...]"
    )


def test_a_legacy_format_file_is_read_through_the_same_restricted_unpickler(tmp_path):
    """torch's old (non-zip) format pickles its header too: that pickle is restricted as well."""
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "legacy.path"
    with open(path, "wb") as fh:
        pickle.dump(Evil(), fh, protocol=2)  # where torch's legacy loader expects its magic
    with pytest.raises(FerError, match=r"refused: the pickle names (posix|os)\.system"):
        import_reference("global", path, "rafdb", tmp_path / "x.pt")
    assert not marker.exists()


def test_the_readmes_by_hand_path_ends_in_a_predictor_of_real_faces(tmp_path, capsys):
    """README "Models for real faces": both released files imported, paired, and `fer predict`
    on a real face, without the synthetic-model warning."""
    pytest.importorskip("dlib")
    skdata = pytest.importorskip("skimage.data")
    import pandas as pd
    from PIL import Image

    from fer.cli import main as fer_main

    folder = tmp_path / "models" / "rafdb"
    folder.mkdir(parents=True)
    for arch in ("roi", "global"):
        path, _ = make_reference(tmp_path, arch=arch, classes=7)
        extra = ["--global-input", "original"] if arch == "global" else []
        argv = ["import-reference", "--arch", arch, "--checkpoint", str(path), "--dataset"]
        assert fer_main([*argv, "rafdb", *extra, "--out", str(folder / f"{arch}.pt")]) == 0
    assert fer_main(["pair", "--models", str(folder)]) == 0
    picture, out = tmp_path / "astronaut.png", tmp_path / "faces.csv"
    Image.fromarray(skdata.astronaut()).save(picture)
    capsys.readouterr()
    args = [str(picture), "--models", str(folder), "--no-progress", "--out", str(out)]
    assert fer_main(["predict", *args]) == 0
    assert "warning" not in capsys.readouterr().err
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.status) == ["ok"] and list(table.model_data) == ["real"]
    assert table.fused_label[0] in CANONICAL[:7] and table.global_label[0] in CANONICAL[:7]
