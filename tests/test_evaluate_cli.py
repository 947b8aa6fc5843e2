"""`fer infer` then `fer evaluate` end to end with tiny real models (random init) saved as real
checkpoints."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
import torch

from fer import cli
from fer.evaluate.scoring import SCHEMA_PATH
from fer.labels import SEVEN
from fer.models import create_model, save_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """A Global Net (face 48: prepared 32 px faces get resized) and a Global-ROI Net (32/16)."""
    out = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    paths = {}
    for kind, face in (("global", 48), ("roi", 32)):
        model = create_model(kind, len(SEVEN), face_size=face, roi_size=16)
        meta = {
            "classes": list(SEVEN),
            "dataset": "demo",
            "seed": 0,
            "selection": "val",
            "fold": None,
            "global_input": "aligned",
        }
        paths[kind] = out / f"{kind}.pt"
        save_checkpoint(paths[kind], model, meta)
    return paths


def infer(prepared, ckpts, out, *extra):
    """``fer infer`` of both checkpoints (those ``ckpts`` names) over ``prepared``."""
    models = [arg for kind in ckpts for arg in (f"--{kind}-ckpt", str(ckpts[kind]))]
    argv = ["infer", "--dataset", "demo", "--target", "demo", "--prepared", str(prepared)]
    argv += [*models, "--no-progress", "--device", "cpu", "--batch-size", "16"]
    return cli.main([*argv, "--out", str(out), *extra])


def run(prepared, ckpts, out, arch="fused", *extra):
    """``fer infer`` into a record beside ``out``, then ``fer evaluate`` of ``arch`` from it."""
    record = out.parent / "records" / f"{out.stem}.npz"
    rc = infer(prepared, ckpts, record, *extra)
    if rc != 0:
        return rc
    argv = ["evaluate", "--dataset", "demo", "--target", "demo", "--arch", arch]
    argv += ["--predictions", str(record), "--config-hash", "abc123", "--out", str(out)]
    return cli.main(argv)


def test_cli_writes_a_schema_valid_result_atomically(fake_prepared, ckpts, tmp_path, capsys):
    prepared = fake_prepared(n_per_class=3)
    out = tmp_path / "results" / "demo" / "demo_fused.json"
    assert run(prepared, ckpts, out, "fused", "--within") == 0
    result = json.loads(out.read_text())
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(result)
    files = [p.name for p in out.parent.iterdir() if p.is_file()]
    assert files == [out.name]  # no temp file left behind
    prov = result["provenance"]
    assert prov["config_hash"] == "abc123" and prov["checkpoints"]["roi"]["model"] == "roi"
    assert prov["input_resize"] == {"global/faces": [32, 48]}
    assert prov["versions"]["torch"] == torch.__version__
    assert "demo → demo [fused]" in capsys.readouterr().out


def test_schema_describes_every_property():
    def walk(node, where):
        if isinstance(node, dict):
            for name, sub in (node.get("properties") or {}).items():
                assert "description" in sub, f"{where}.{name} lacks a description"
            for key, sub in node.items():
                walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    walk(schema, "$")


def test_cli_reports_bad_input_as_one_line_error(fake_prepared, ckpts, tmp_path, capsys):
    prepared = fake_prepared(n_per_class=2)
    (prepared / "eye.npy").unlink()
    assert run(prepared, ckpts, tmp_path / "x.json") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "eye.npy" in err and err.count("\n") == 1
    missing = {"global": tmp_path / "nope.pt", "roi": ckpts["roi"]}
    assert run(fake_prepared("p2", n_per_class=2), missing, tmp_path / "x.json") == 2
    assert "nope.pt" in capsys.readouterr().err
    wrong_kind = {"global": ckpts["roi"], "roi": ckpts["roi"]}
    assert run(fake_prepared("p3", n_per_class=2), wrong_kind, tmp_path / "x.json") == 2
    assert "'roi' checkpoint where 'global' expected" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_cli_needs_both_models_for_fused(fake_prepared, ckpts, tmp_path, capsys):
    only_global = {"global": ckpts["global"]}
    assert run(fake_prepared(n_per_class=2), only_global, tmp_path / "r" / "x.json") == 2
    err = capsys.readouterr().err
    assert "x.npz: arch fused needs the roi model's logits" in err, err


def test_real_models_fused_predictions_match_hand_fusion(fake_prepared, ckpts):
    """With real networks: fused argmax = argmax(0.55·x_roi + 0.45·z_global) on ROI rows."""
    from fer.contracts import ROI_NAMES
    from fer.evaluate import InferJob
    from fer.evaluate.infer import infer
    from fer.fusion import REFERENCE
    from fer.models.inference import load_checkpoints
    from fer.models.transforms import eval_transform
    from fer.prepared import open_prepared

    data = open_prepared(fake_prepared(n_per_class=2, roi_fraction=0.5))
    g = load_checkpoints([ckpts["global"]], "global")[0]
    r = load_checkpoints([ckpts["roi"]], "roi")[0]
    rows = data.rows()
    has = data.index["has_roi"].to_numpy()[rows] == 1
    with torch.inference_mode():
        zg = g.model(eval_transform(torch.from_numpy(data.faces[rows]), 48)).numpy()
        rois = {k: eval_transform(torch.from_numpy(data.rois[k][rows]), 16) for k in ROI_NAMES}
        zr = r.model(eval_transform(torch.from_numpy(data.faces[rows]), 32), **rois)[0].numpy()
    paths = {"global_ckpts": (g.path,), "roi_ckpts": (r.path,)}
    job = InferJob("train", "demo", data.root, **paths, device="cpu", batch_size=7, progress=False)
    record = infer(job)
    expect = np.where(has, (0.55 * zr + 0.45 * zg).argmax(1), zg.argmax(1))
    assert record.predicted("fused", REFERENCE).tolist() == expect.tolist()
