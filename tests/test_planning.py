"""Dry-run planning at scale: the paper grid and a generated grid ten times larger plan, with
exactly the jobs their configs declare, and parsing the Snakefile never imports torch.

Timings are printed by benchmarks/bench_planning.py, not asserted here (2 shared CPU cores).
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "config" / "paper.yaml"
DEMO = REPO / "config" / "config.yaml"


def _load_bench():
    spec = importlib.util.spec_from_file_location(
        "bench_planning", REPO / "benchmarks" / "bench_planning.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def expected_jobs(cfg: dict) -> Counter:
    """Jobs per rule that `reports/all.html` needs from scratch, computed from the config alone."""
    archs = cfg.get("archs", ["global", "roi", "fused"])
    used = set(cfg["train_on"]) | {t for d in cfg["train_on"] for t in cfg["targets"].get(d, [d])}
    n = Counter(build_manifest=len(used), prepare_faces=len(used), render_report=1)
    n["generate_demo"] = sum(bool(cfg["datasets"][d].get("generate")) for d in used)
    search = (cfg.get("evaluate") or {}).get("fusion_search", True) and "fused" in archs
    for d in cfg["train_on"]:
        k = cfg["datasets"][d].get("kfold")
        seeds = cfg["datasets"][d].get("seeds") or cfg.get("seeds") or [None]
        s, targets = len(seeds), len(cfg["targets"].get(d, [d]))
        n["train_model"] += 2 * (k or 1) * s  # global + roi, per fold and replicate seed
        n["evaluate_cell"] += targets * len(archs)  # a cell pools its replicates
        n["pair_models"] += s  # models/{d}[/seed{s}]/fusion.json
        n["infer_record"] += targets * s  # one prediction record per target and seed
        n["infer_record"] += s if search else 0  # and one of the validation rows per seed
    n = Counter({rule: count for rule, count in n.items() if count})
    n["total"] = sum(n.values())
    return n


def plan(configfile: Path, workdir: Path, *extra: str, args: tuple = ()):
    """Dry-run `reports/all.html` for `configfile` in `workdir`; returns (job counts, process)."""
    _, counts, proc = bench.dry_run(configfile, workdir, *extra, args=args)
    return Counter(counts), proc


def test_scale_config_renames_every_cell():
    cfg = yaml.safe_load(PAPER.read_text())
    big = bench.scale_config(cfg, 3)
    assert len(big["datasets"]) == 3 * len(cfg["datasets"])
    assert big["targets"]["rafdb2"] == [f"{t}2" for t in cfg["targets"]["rafdb"]]
    assert big["train"]["recipes"]["ckplus1"] == cfg["train"]["recipes"]["ckplus"]
    assert cfg["train_on"][0] in cfg["datasets"]  # the input is left untouched


def test_job_counts_parses_the_stats_table():
    text = (
        "Job stats:\njob      count\n-----  -------\n"
        "make         3\nall          1\ntotal        4\n\nReasons:\n"
    )
    assert bench.job_counts(text) == {"make": 3, "all": 1, "total": 4}
    with pytest.raises(ValueError):
        bench.job_counts("Nothing to be done.")


def test_paper_grid_plans_every_cell_without_importing_torch(tmp_path):
    counts, proc = plan(PAPER, tmp_path, "-X", "importtime")
    cfg = yaml.safe_load(PAPER.read_text())
    assert counts == expected_jobs(cfg)
    assert counts["evaluate_cell"] == 33  # the reference's tables
    assert counts["infer_record"] == 11 + 5  # a record per table row, a validation one per set
    assert counts["total"] == 81 + 11 + 5  # + a prediction record per row, a validation one per set
    imported = re.findall(r"^import time:.*\|\s*([\w.]+)\s*$", proc.stderr, re.MULTILINE)
    assert "snakemake" in imported  # the import log is really there
    heavy = sorted({m for m in imported if m.split(".")[0] in {"torch", "torchvision"}})
    assert heavy == [], f"the Snakefile imports {heavy[:5]} at parse time"


def test_ten_times_larger_grid_plans(tmp_path):
    cfg = yaml.safe_load(PAPER.read_text())
    big = bench.scale_config(cfg, 10)
    configfile = bench.write_config(big, tmp_path / "grid10.yaml")
    (tmp_path / "work").mkdir()
    counts, _ = plan(configfile, tmp_path / "work")
    assert counts == expected_jobs(big)
    assert counts["evaluate_cell"] == 10 * expected_jobs(cfg)["evaluate_cell"]
    assert counts["total"] == 10 * (expected_jobs(cfg)["total"] - 1) + 1  # one report


def test_demo_config_plans(tmp_path):
    counts, _ = plan(DEMO, tmp_path)
    assert counts == expected_jobs(yaml.safe_load(DEMO.read_text()))
    assert counts["generate_demo"] == 1


def test_replicate_grid_plans_per_seed(tmp_path):
    """`seeds: [0, 1, 2]` trains and predicts every model once per seed; the cells stay one per
    (set, target, arch) and pool the seeds; a set's own `seeds` overrides the top level. Planned
    through the SLURM profile, unchanged: its GPU settings reach the replicates' jobs."""
    cfg = yaml.safe_load(PAPER.read_text()) | {"seeds": [0, 1, 2]}
    cfg["datasets"]["affectnet7"]["seeds"] = [4]
    configfile = bench.write_config(cfg, tmp_path / "seeds.yaml")
    (tmp_path / "work").mkdir()
    slurm = ("--profile", str(REPO / "profiles" / "slurm"), "--printshellcmds")
    counts, proc = plan(configfile, tmp_path / "work", args=slurm)
    assert counts == expected_jobs(cfg)
    assert counts["train_model"] == 3 * 20 + 3 * 2 * 3 + 2 and counts["evaluate_cell"] == 33
    assert "models/ckplus/seed2/roi.fold9.pt" in proc.stdout
    assert "results/rafdb/seed1/predictions/sfew.npz" in proc.stdout
    assert "models/affectnet7/global.pt" in proc.stdout  # one seed keeps the single-run paths
    assert '"seed": 4' in proc.stdout
    for rule, job in (
        ("train_model", "models/ckplus/seed2/roi.fold9.pt"),
        ("infer_record", "results/rafdb/seed1/predictions/sfew.npz"),
        ("infer_record", "results/rafdb/seed1/predictions/validation.npz"),
    ):
        block = proc.stdout.split(f"output: {job}", 1)[1].split("\n\n", 1)[0]
        assert "gpu=1" in block and "gpu_model=CHANGE_ME_gpu_model" in block, rule


@pytest.mark.parametrize("profile", ["local", "slurm", "slurm-ci"])
def test_profiles_plan_the_paper_grid(profile, tmp_path):
    """Every key of each profile is an option the installed Snakemake and SLURM plugin know."""
    args = ("--profile", str(REPO / "profiles" / profile), "--printshellcmds")
    counts, proc = plan(PAPER, tmp_path, args=args)
    assert counts == expected_jobs(yaml.safe_load(PAPER.read_text()))
    if profile == "slurm":  # the GPU rules carry the site's GPU model placeholder
        train = proc.stdout.split("rule train_model:", 1)[1].split("\n\n", 1)[0]
        assert "gpu_model=CHANGE_ME_gpu_model" in train and "slurm_account=CHANGE_ME" in train
