"""Dry-run planning time of the paper grid and of a generated grid ten times larger.

Snakemake parses the Snakefile and builds the job graph once to plan a run (and parses it again
inside every cluster job), so planning must stay fast as the grid grows. Goals (issue 9): the paper
grid plans in < 3 s, the 10x grid in < 15 s. This script prints the measured figures; it asserts
nothing (tests/test_planning.py checks that both grids plan, with the expected job counts).

    .venv/bin/python benchmarks/bench_planning.py [--repeat 3] [--factor 10]
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
PAPER_CONFIG = REPO / "config" / "paper.yaml"
TARGET = "reports/all.html"
GOALS_S = {"paper": 3.0, "10x": 15.0}


def scale_config(cfg: dict, factor: int) -> dict:
    """A grid `factor` times larger: `factor` renamed copies of every data set and its cells.

    Copy `i` of data set `rafdb` is `rafdb{i}`; `train_on`, `targets` and per-data-set training
    recipes are copied with the same renaming, so every job of the grid appears `factor` times
    (only the final aggregating jobs stay single).
    """
    out = copy.deepcopy(cfg)
    rename = [{name: f"{name}{i}" for name in cfg["datasets"]} for i in range(factor)]
    out["datasets"] = {r[n]: copy.deepcopy(e) for r in rename for n, e in cfg["datasets"].items()}
    out["train_on"] = [r[n] for r in rename for n in cfg["train_on"]]
    out["targets"] = {
        r[n]: [r[t] for t in targets] for r in rename for n, targets in cfg["targets"].items()
    }
    recipes = cfg.get("train", {}).get("recipes", {})
    if recipes:
        out["train"]["recipes"] = {
            r[n]: copy.deepcopy(v) for r in rename for n, v in recipes.items()
        }
    return out


def write_config(cfg: dict, path: Path) -> Path:
    """Write `cfg` as YAML to `path` and return `path`."""
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake_cmd(configfile: Path, workdir: Path, *extra: str, args: tuple = ()) -> list:
    """The command line of a dry run of the repository's Snakefile in `workdir`.

    `extra` are Python options (`-X importtime`), `args` more Snakemake options (`--profile`).
    The target comes first: `--configfile` takes several values and would swallow it.
    """
    return [
        sys.executable,
        *extra,
        "-m",
        "snakemake",
        "-n",
        TARGET,
        "--snakefile",
        str(SNAKEFILE),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        *args,
    ]


def job_counts(stdout: str) -> dict[str, int]:
    """The "Job stats" table of a Snakemake run, as {rule: count} (with "total")."""
    table = stdout.split("Job stats:", 1)
    if len(table) < 2:
        raise ValueError("no 'Job stats:' table in Snakemake's output")
    counts = {}
    for line in table[1].splitlines()[3:]:
        m = re.fullmatch(r"\s*(\w+)\s+(\d+)\s*", line)
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


def dry_run(
    configfile: Path, workdir: Path, *extra: str, args: tuple = ()
) -> tuple[float, dict, subprocess.CompletedProcess]:
    """Dry-run once; returns (wall seconds, job counts, the completed process)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        snakemake_cmd(configfile, workdir, *extra, args=args),
        capture_output=True,
        text=True,
        env=env,
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"dry run of {configfile} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return seconds, job_counts(proc.stdout + proc.stderr), proc


def _time(cmd: list) -> float:
    """Wall seconds of one run of `cmd` (which must succeed)."""
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def bench(name: str, configfile: Path, repeat: int) -> None:
    """Print min / median planning time of `configfile` over `repeat` dry runs."""
    with tempfile.TemporaryDirectory(prefix="fer-plan-") as tmp:
        times, counts = [], {}
        for _ in range(repeat):
            seconds, counts, _ = dry_run(configfile, Path(tmp))
            times.append(seconds)
    goal = GOALS_S.get(name)
    verdict = "" if goal is None else ("  ok" if min(times) < goal else "  OVER GOAL")
    print(
        f"{name:>6}: {counts.get('total', 0):>6} jobs  min {min(times):6.2f} s  "
        f"median {statistics.median(times):6.2f} s  (goal < {goal} s){verdict}"
    )


def get_args_parser() -> argparse.ArgumentParser:
    """Command-line options of the benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--config",
        type=Path,
        default=PAPER_CONFIG,
        help="the grid to time and scale up (default: config/paper.yaml)",
    )
    p.add_argument(
        "--factor",
        type=int,
        default=10,
        help="how many times larger the generated grid is (default: 10)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="dry runs per grid; min and median are printed (default: 3)",
    )
    return p


def main(argv=None) -> int:
    """Time the dry runs and print one line per grid."""
    args = get_args_parser().parse_args(argv)
    cfg = yaml.safe_load(args.config.read_text())
    print(f"snakemake -n {TARGET}, wall time incl. Python start-up, {os.cpu_count()} CPUs")
    startup = min(
        _time([sys.executable, "-m", "snakemake", "--version"]) for _ in range(args.repeat)
    )
    print(f"start-up alone (snakemake --version): {startup:.2f} s")
    bench("paper", args.config, args.repeat)
    with tempfile.TemporaryDirectory(prefix="fer-grid-") as tmp:
        big = write_config(scale_config(cfg, args.factor), Path(tmp) / "grid.yaml")
        bench(f"{args.factor}x", big, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
