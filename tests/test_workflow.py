"""The workflow's grammar, config validation and a real end-to-end demo run, through Snakemake."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess

import pandas as pd
import pytest
import yaml

from fer.cli import VERBS
from fer.contracts import ARCHS
from tests.conftest import BIN, REPO, smk


def job_counts(stdout: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table."""
    counts, in_table = {}, False
    for line in stdout.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                if parts[0] == "total":
                    break
                counts[parts[0]] = int(parts[1])
    return counts


def test_lint_and_format_are_clean():
    assert smk("--lint").returncode == 0
    fmt = subprocess.run(
        [str(BIN / "snakefmt"), "--check", str(REPO / "workflow")], capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stderr


def test_demo_plans():
    r = smk("-n", "reports/all.html")
    assert r.returncode == 0, r.stderr
    assert job_counts(r.stdout) == {
        "generate_demo": 1,
        "build_manifest": 1,
        "prepare_faces": 1,
        "train_model": 2,
        # both models once over the test split (the prediction record) and once over the
        # validation rows (the fused weight's choice)
        "infer_record": 2,
        "evaluate_cell": 3,
        "pair_models": 1,  # models/demo/fusion.json
        "render_report": 1,
    }


def test_paper_grid_plans_every_cell_without_data():
    r = smk("-n", "--configfile=config/paper.yaml", "reports/all.html")
    assert r.returncode == 0, r.stderr
    counts = job_counts(r.stdout)
    # 4 holdout sets x 2 models, CK+ 10 folds x 2 models, 7 prepared sets,
    # cells: (1 + 4 + 4 + 1 + 1) targets x 3 archs.
    assert counts == {
        "build_manifest": 7,
        "prepare_faces": 7,
        "train_model": 8 + 20,  # CK+: one per fold and model
        "infer_record": 11 + 5,  # one prediction record per table row, a validation one per pair
        "evaluate_cell": 33,
        "pair_models": 5,  # one fusion.json per trained pair
        "render_report": 1,
    }


def test_single_cell_plans_exactly_its_chain():
    r = smk("-n", "--configfile=config/paper.yaml", "results/rafdb/sfew_fused.json")
    assert r.returncode == 0, r.stderr
    assert job_counts(r.stdout) == {
        "build_manifest": 2,
        "prepare_faces": 2,
        "train_model": 2,
        "infer_record": 2,
        "evaluate_cell": 1,
    }
    assert "resources/rafdb/prepared/index.csv" in r.stdout
    assert "resources/sfew/prepared/index.csv" in r.stdout
    assert "affectnet" not in r.stdout


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "foo=1",
            ["--config: foo: unknown key; known: title, report, datasets, train_on, targets"],
        ),
        (
            'preprocess={"chip_size": "big"}',
            ["--config: preprocess.chip_size: 'big' is not of type 'integer'"],
        ),
        (
            'preprocess={"face_size": 96}',
            [
                "--config: preprocess.face_size: now preprocess.chip_size (the stored chip's "
                "side; a model's input side is its recipe's face_size)"
            ],
        ),
        (
            'train={"defaults": {"epochz": 3}}',
            ["--config: train.defaults.epochz: unknown key (did you mean 'epochs'?)"],
        ),
        (
            "train_on=[nosuch]",
            [
                "--config: train_on.0: 'nosuch' is not a key of datasets (['demo'])",
                "config/config.yaml:27: targets.demo: 'demo' is not in train_on",
            ],
        ),
    ],
)
def test_bad_config_fails_fast_with_every_problem_one_line_each(override, expected):
    """Where each wrong key was set (the command line, or the file and line), its key path."""
    r = smk("-n", "--config", override)
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("config error")]
    assert len(errors) == len(expected), errors
    for line, want in zip(errors, expected, strict=True):
        assert line.startswith(f"config error: {want}"), (line, want)
    assert "Traceback" not in r.stderr


def plan_edited(folder, edit, *args):
    """Dry-run the demo config changed by ``edit(cfg)`` in ``folder`` (a fresh one)."""
    shutil.copytree(REPO / "config", folder / "config")
    cfg = yaml.safe_load((folder / "config" / "config.yaml").read_text())
    edit(cfg)
    (folder / "edited.yaml").write_text(yaml.safe_dump(cfg))
    return smk("-n", "--configfile=edited.yaml", *args, cwd=folder)


def plan_errors(tmp_path, edit) -> list[str]:
    """The `config error` lines of a dry run of the demo config changed by ``edit(cfg)``."""
    r = plan_edited(tmp_path, edit)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    return [ln for ln in r.stderr.splitlines() if ln.startswith("config error")]


def test_a_changed_setting_changes_the_commands_of_only_the_jobs_it_affects(tmp_path):
    """Settings travel as params, and config hashes cover only what a job depends on: so a
    changed evaluation setting reruns the evaluations (Snakemake's params trigger), not the
    trainings, and a changed recipe reruns the trainings."""

    def commands(name, edit):
        r = plan_edited(tmp_path / name, edit, "--printshellcmds", "--forceall")
        assert r.returncode == 0, r.stderr
        lines = [ln.split("fer --log", 1)[1] for ln in r.stdout.splitlines() if "fer --log" in ln]
        jobs = {verb: sorted(ln for ln in lines if f" {verb} " in ln) for verb in VERBS}
        assert jobs["train"] and jobs["evaluate"] and jobs["prepare"], r.stdout
        return jobs

    base = commands("base", lambda cfg: None)
    boot = commands("boot", lambda cfg: cfg.setdefault("evaluate", {}).update(bootstrap=10))
    lr = commands("lr", lambda cfg: cfg["train"]["defaults"].update(lr=0.02))
    assert base["train"] == boot["train"] and base["evaluate"] != boot["evaluate"]
    assert base["prepare"] == lr["prepare"] and base["train"] != lr["train"]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "milestones",
            [5, 3],
            "config error: edited.yaml:LINE: train.defaults: recipe key "
            "'milestones' is [5, 3]; expected strictly increasing epochs",
        ),
        (
            "face_size",
            4,
            "config error: edited.yaml:LINE: train.defaults.face_size: 4 is less than the "
            "minimum of 8",
        ),
        (
            "warmup_epochs",
            40,
            "config error: edited.yaml:LINE: train.defaults: recipe key 'warmup_epochs' is 40; "
            "expected fewer than epochs (20)",
        ),
        (
            "ema_decay",
            1.0,
            "config error: edited.yaml:LINE: train.defaults.ema_decay: 1.0 is greater than or "
            "equal to the maximum of 1",
        ),
        (
            "augment",
            True,
            "config error: edited.yaml:LINE: train.defaults.augment: True is not one of "
            "['reference', 'standard', 'none']",
        ),
        (
            "workers",
            -1,
            "config error: edited.yaml:LINE: train.defaults.workers: -1 is less than the "
            "minimum of 0",
        ),
    ],
)
def test_a_bad_recipe_fails_at_planning_like_fer_train_would(tmp_path, key, value, expected):
    """The recipe's one declaration (fer/train/recipe.py) is checked before any job runs, once,
    at the recipe layer that holds the problem (here the defaults)."""
    errors = plan_errors(tmp_path, lambda cfg: cfg["train"]["defaults"].update({key: value}))
    assert [re.sub(r"yaml:\d+:", "yaml:LINE:", e) for e in errors] == [expected]


def test_an_unregistered_adapter_fails_at_planning(tmp_path):
    errors = plan_errors(tmp_path, lambda cfg: cfg["datasets"]["demo"].update(adapter="nosuch"))
    assert len(errors) == 1
    assert re.match(
        r"config error: edited\.yaml:\d+: datasets\.demo\.adapter: 'nosuch' is not registered",
        errors[0],
    )


def test_schema_arch_names_are_the_contract_s():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert tuple(schema["properties"]["archs"]["items"]["enum"]) == ARCHS


def test_one_set_of_size_bounds_for_the_config_and_the_command_lines():
    """The stored sides and the model's input sides: each name's bounds are fer.contracts's,
    in the schema, `fer prepare` and the recipe alike."""
    from fer.contracts import MIN_CHIP, MIN_SIDE
    from fer.preprocess.prepare import get_args_parser
    from fer.train.recipe import json_schema

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    stored = schema["properties"]["preprocess"]["properties"]
    assert (stored["chip_size"]["minimum"], stored["crop_size"]["minimum"]) == (MIN_CHIP, MIN_SIDE)
    recipe = json_schema()["properties"]
    for key in ("face_size", "roi_size"):
        assert MIN_SIDE in [alt.get("minimum") for alt in recipe[key].get("anyOf", [recipe[key]])]
    prepare = {a.dest: a.type for a in get_args_parser()._actions}
    for dest, least in (("chip_size", MIN_CHIP), ("crop_size", MIN_SIDE)):
        with pytest.raises(argparse.ArgumentTypeError):
            prepare[dest](str(least - 1))
        assert prepare[dest](str(least)) == least


def train_fold_jobs(stdout: str) -> list[dict]:
    """The train_model jobs of one fold of a dry run: each one's input line, wildcards line and
    text."""
    jobs = []
    for chunk in stdout.split("rule train_model:")[1:]:
        text = re.split(r"\n\[|\n\s*\n", chunk, maxsplit=1)[0]
        line = {k: text.split(f"{k}:", 1)[1].split("\n", 1)[0] for k in ("input", "wildcards")}
        if "fold=.fold" in line["wildcards"]:
            jobs.append({**line, "text": text})
    return jobs


def _init_from(source: str) -> str:
    return f'train={{"recipes": {{"ckplus": {{"global": {{"init_from": "{source}"}}}}}}}}'


def test_init_from_trains_the_upstream_model_first():
    """Fine-tuning CK+ from the RAF-DB model: every fold waits for models/rafdb/global.pt."""
    r = smk(
        "-n",
        "--printshellcmds",
        "--configfile=config/paper.yaml",
        "--config",
        _init_from("rafdb"),
        "--",
        "results/ckplus/ckplus_global.json",
    )
    assert r.returncode == 0, r.stderr
    assert job_counts(r.stdout)["train_model"] == 1 + 20  # rafdb/global, nothing else of rafdb's
    jobs = train_fold_jobs(r.stdout)
    global_folds = [job for job in jobs if "model=global," in job["wildcards"]]
    assert len(global_folds) == 10 and len(jobs) == 20
    for job in global_folds:
        assert "models/rafdb/global.pt" in job["input"]
        assert '"weights": "models/rafdb/global.pt"' in job["text"]  # the recipe fer train gets
    assert all("models/rafdb" not in job["input"] for job in jobs if job not in global_folds)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("nosuch", "--config: train.recipes.ckplus.global.init_from: 'nosuch' is not a key of"),
        ("ckplus", "--config: train.recipes.ckplus.global.init_from: names the data set itself"),
        ("jaffe", None),  # a set with a test split: fine
    ],
)
def test_bad_init_from_fails_at_planning(source, expected):
    r = smk(
        "-n",
        "--configfile=config/paper.yaml",
        "--config",
        _init_from(source),
        "--",
        "results/ckplus/ckplus_global.json",
    )
    errors = [line for line in r.stderr.splitlines() if line.startswith("config error")]
    if expected is None:
        assert r.returncode == 0 and errors == [], r.stderr
    else:
        assert r.returncode != 0 and len(errors) == 1 and expected in errors[0], r.stderr


def test_missing_root_fails_with_one_line_when_a_job_needs_it(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "datasets: {rafdb: {root: /nonexistent/RAF-DB}}\ntrain_on: [rafdb]\n"
        "targets: {rafdb: [rafdb]}\n"
    )
    assert smk("-n", f"--configfile={cfg}", cwd=tmp_path).returncode == 0  # plans without data
    r = smk("--cores", "1", f"--configfile={cfg}", "resources/rafdb/manifest.csv", cwd=tmp_path)
    assert r.returncode != 0
    log = (tmp_path / "logs" / "build_manifest" / "rafdb.log").read_text()
    assert log.strip().splitlines()[-1] == (
        "error: data set 'rafdb': root /nonexistent/RAF-DB does not exist"
    )


def test_demo_generator_is_deterministic(tmp_path):
    from fer.demo import generate

    generate(tmp_path / "a", seed=3, subjects=3, images_per_class=1, test_subjects=1, size=64)
    generate(tmp_path / "b", seed=3, subjects=3, images_per_class=1, test_subjects=1, size=64)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert len(files) == 3 * 7
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert "SYNTHETIC" in (tmp_path / "a" / "SYNTHETIC.txt").read_text()


def test_demo_workflow_runs_end_to_end(demo_run):
    report = (demo_run / "reports" / "all.html").read_text()
    assert "SYNTHETIC" in report.upper()
    assert 'id="reference"' not in report  # no paper data set: no published numbers
    # 3 test subjects: the sign-flip test cannot go below p = 0.25, and the report says so
    assert 'data-p-floor="0.25"' in report and "with 3 subjects no p below 0.25" in report
    # its head: the command that made it and the time its jobs took
    assert re.search(r"Made by <code>snakemake [^<]*reports/all\.html", report), report[:3000]
    span = float(re.search(r'data-span-seconds="([\d.]+)"', report).group(1))
    jobs = float(re.search(r'data-job-seconds="([\d.]+)"', report).group(1))
    assert 0 < span < 3600 and 0 < jobs
    for arch in ("global", "roi", "fused"):
        result = json.loads((demo_run / "results" / "demo" / f"demo_{arch}.json").read_text())
        assert result["synthetic"] is True
        assert result["n_images"] > 0
        # 7 classes: chance is ~14 %; the demo must be learnable well above it.
        assert result["accuracy"] > 0.4, (arch, result["accuracy"])
    summary = json.loads((demo_run / "resources/demo/prepared/summary.json").read_text())
    assert summary["classes"] == ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"]


def test_demo_rerun_does_nothing(demo_run):
    r = smk("-n", "reports/all.html", cwd=demo_run)
    assert r.returncode == 0
    assert "Nothing to be done" in r.stdout + r.stderr


def test_snakemake_report_bundles_the_html(demo_run):
    r = smk("--report", "report.zip", cwd=demo_run, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    import zipfile

    with zipfile.ZipFile(demo_run / "report.zip") as zf:
        names = zf.namelist()
    assert any(n.endswith("all.html") for n in names), names
    assert any(n.endswith("contact_sheet.png") for n in names), names


def test_demo_goes_through_the_in_the_wild_code_path(demo_run):
    """The demo's detector fallback (MTCNN box -> dlib 68 points, dlib HOG finds few drawings) is
    the path in-the-wild data takes; images MTCNN misses keep a resized face and no ROIs."""
    import numpy as np

    from fer.prepared import open_prepared

    prepared = open_prepared(demo_run / "resources/demo/prepared")
    assert prepared.params["detector"] == "mtcnn"
    summary = prepared.summary
    assert summary["roi_coverage"] > 0.85, summary["counts_by_status"]
    index = prepared.index
    for row in np.flatnonzero((index["status"] == "no_face").to_numpy()):
        assert prepared.faces[row].any() and not prepared.rois["eye"][row].any()


def test_ckplus48_config_plans_ten_folds_fine_tuned_from_fer2013():
    r = smk("-n", "reports/ckplus48.html", "--configfile=config/ckplus48.yaml")
    assert r.returncode == 0, r.stderr
    assert job_counts(r.stdout) == {
        "build_manifest": 2,
        "prepare_faces": 2,
        "train_model": 2 + 20,
        "infer_record": 2 + 2,
        "evaluate_cell": 6,
        "pair_models": 2,
        "render_report": 1,
    }
    jobs = train_fold_jobs(r.stdout)
    for model in ("global", "roi"):
        inputs = [job["input"] for job in jobs if f"model={model}," in job["wildcards"]]
        assert len(inputs) == 10 and all(f"models/fer2013/{model}.pt" in i for i in inputs)


def test_ckplus48_starts_from_the_fer2013_laptop_pair():
    """config/ckplus48.yaml's FER2013 stage is config/fer2013.yaml's, key for key (data set,
    preprocessing, both merged recipes): the same jobs, so one run's pair serves both."""
    from fer.config.check import merged_recipe

    ck, laptop = (
        yaml.safe_load((REPO / "config" / f).read_text()) for f in ("ckplus48.yaml", "fer2013.yaml")
    )
    assert ck["datasets"]["fer2013"] == laptop["datasets"]["fer2013"]
    assert ck["preprocess"] == laptop["preprocess"]
    for model in ("global", "roi"):
        assert merged_recipe(ck, "fer2013", model) == merged_recipe(laptop, "fer2013", model)


def test_fer2013_laptop_config_plans_both_models_and_their_modern_recipe():
    r = smk("-n", "--printshellcmds", "reports/fer2013.html", "--configfile=config/fer2013.yaml")
    assert r.returncode == 0, r.stderr
    assert job_counts(r.stdout) == {
        "build_manifest": 1,
        "prepare_faces": 1,
        "train_model": 2,
        "infer_record": 2,
        "evaluate_cell": 3,
        "pair_models": 1,
        "render_report": 1,
    }
    recipes = [
        json.loads(ln.split("--recipe ", 1)[1].split("'")[1])
        for ln in r.stdout.splitlines()
        if " train " in ln and "--recipe " in ln
    ]
    assert len(recipes) == 2
    for recipe in recipes:
        modern = {k: recipe[k] for k in ("schedule", "augment", "tta", "weights")}
        assert modern == {
            "schedule": "cosine",
            "augment": "standard",
            "tta": "flip",
            "weights": "none",
        }
        assert recipe.get("selection", "val") == "val"  # chosen on the validation carve


def test_kfold_workflow_on_real_faces(shared_data, features_run):
    """CK+48 through every stage with subject-grouped 3-fold CV (the ``ckplus`` set of the
    features run, tests/features.py: tiny training, the path, not the accuracy): one
    train_model job per fold and model, per-fold results pooled per cell."""
    work = features_run.work
    assert len(list((work / "models" / "ckplus").glob("*.fold*.pt"))) == 6
    result = json.loads((work / "results/ckplus/ckplus_fused.json").read_text())
    assert result["n_images"] == 981
    assert [f["fold"] for f in result["folds"]] == [0, 1, 2]
    assert sum(f["n"] for f in result["folds"]) == 981
    assert "neutral" not in result["classes"]  # the 48x48 copy has no neutral class


def test_demo_pair_predicts_what_evaluation_scored(demo_run):
    """`make report` leaves models/demo/ ready for fer predict (fusion.json from the config), and
    the predictor, run on the demo's image files, gives every result JSON's confusion matrix."""
    pytest.importorskip("dlib")
    from fer.predict import Predictor

    models = demo_run / "models" / "demo"
    spec = json.loads((models / "fusion.json").read_text())
    assert spec["weights"] == {"roi": 0.55, "global": 0.45}
    assert sorted(spec["checkpoints"]) == ["global.pt", "roi.pt"]
    index = pd.read_csv(demo_run / "resources/demo/prepared/index.csv")
    raw = demo_run / "resources" / "demo" / "raw"
    from fer.errors import FerWarning

    with pytest.warns(FerWarning, match="trained on synthetic pictures"):  # the demo's pair
        predictor = Predictor.from_dir(models, device="cpu", batch_size=32, progress=False)
    table = predictor.predict([raw / p for p in index.path])  # prepare's order and chunks
    assert set(table.model_data) == {"synthetic"}
    test = (index.split == "test").to_numpy()
    truth = index.label_name.to_numpy()[test]
    for arch in ("global", "roi", "fused"):
        result = json.loads((demo_run / "results" / "demo" / f"demo_{arch}.json").read_text())
        keep = table.status.to_numpy()[test] == "ok" if arch == "roi" else slice(None)
        y, got = truth[keep], table[f"{arch}_label"].to_numpy()[test][keep]
        classes = result["classes"]
        matrix = [[int(((y == a) & (got == b)).sum()) for b in classes] for a in classes]
        assert matrix == result["confusion_matrix"], arch
        assert len(y) == result["n_images"]


def test_demo_cells_equal_a_fresh_inference_of_the_trained_models(demo_run):
    """The workflow scores each cell from the prediction record `fer infer` wrote; the trained
    models run again here, in this process, and scored alike give bit-for-bit the same cells."""
    from fer.evaluate import EvaluateJob, InferJob, evaluate
    from fer.evaluate.infer import infer

    models = demo_run / "models" / "demo"
    ckpts = {"global_ckpts": (models / "global.pt",), "roi_ckpts": (models / "roi.pt",)}
    prepared = demo_run / "resources/demo/prepared"
    job = InferJob("demo", "demo", prepared, **ckpts, rows="within", device="cpu", progress=False)
    record = infer(job)
    for arch in ("global", "roi", "fused"):
        written = json.loads((demo_run / "results" / "demo" / f"demo_{arch}.json").read_text())
        assert written["provenance"]["predictions"] == ["results/demo/predictions/demo.npz"]
        boot = written["provenance"]["bootstrap"]
        direct = evaluate(EvaluateJob("demo", "demo", arch, (record,), bootstrap=boot))
        for key in ("accuracy", "accuracy_ci95", "confusion_matrix", "per_class", "paired"):
            assert direct[key] == written[key], (arch, key)
    fused = json.loads((demo_run / "results/demo/demo_fused.json").read_text())
    assert fused["validated_fusion"]["per_seed"][0]["n_val"] > 0  # chosen on the val split


def test_a_training_jobs_runtime_follows_its_recipe(tmp_path):
    """`snakemake -n` shows each training job's runtime as fer.train.estimate gives it from the
    recipe: ten times the epochs, about ten times the minutes."""

    def runtimes(name, edit):
        r = plan_edited(tmp_path / name, edit, "--forceall")
        assert r.returncode == 0, r.stderr
        blocks = r.stdout.split("rule train_model:")[1:]
        return {
            re.search(r"model=(\w+)", b).group(1): int(re.search(r"runtime=(\d+)", b).group(1))
            for b in blocks
        }

    base = runtimes("base", lambda cfg: None)
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    epochs = {
        m: {**cfg["train"]["defaults"], **cfg["train"][f"defaults_{m}"]}["epochs"] for m in base
    }
    longer = runtimes(
        "longer", lambda c: c["train"]["defaults_global"].update(epochs=10 * epochs["global"])
    )
    assert set(base) == {"global", "roi"} and base["roi"] > base["global"]  # the heavier net
    assert 5 * base["global"] < longer["global"] <= 10 * base["global"]
    assert longer["roi"] == base["roi"]


def test_a_report_whose_inputs_were_deleted_says_how_to_rebuild(tmp_path):
    """Snakemake keeps an existing report whose results and models were deleted since; the plan
    says so, and that --forcerun render_report rebuilds them."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "all.html").write_text("<html></html>")
    r = smk("-n", "reports/all.html", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("note: reports/all.html exists")]
    assert len(notes) == 1 and "--forcerun render_report" in notes[0], r.stderr
    assert "files it was made from are gone (e.g. results/demo/demo_" in notes[0]
