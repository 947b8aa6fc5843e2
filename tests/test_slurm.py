"""The demo workflow on a real one-node SLURM cluster (scripts/slurm-up.sh, profiles/slurm-ci).

Runs `snakemake --profile profiles/slurm-ci` on a copy of workflow/ and config/ in tmp_path (never
the developer's results/), checks that every non-local job went through SLURM (a SLURM job id, the
job's kept SLURM log, and squeue's record of it with one GPU), and that reports/all.html shows the
same result cells as the local demo run (the `demo_run` fixture). A second test preempts a
training job (`scontrol requeue`) and checks that SLURM restarts it and `fer train` resumes mid-way.
Skipped when no cluster is up, unless $CI is set (then they fail).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm-ci"
TARGET = "reports/all.html"
TIMEOUT_S = int(os.environ.get("FER_SLURM_TIMEOUT", "1800"))  # the whole SLURM run
# the demo's gpu=1 rules (evaluate_cell is a SLURM job too, without a GPU: it reads records)
GPU_RULES = {"prepare_faces", "train_model", "infer_record"}

pytestmark = pytest.mark.slurm


def cluster_problem() -> str | None:
    """Why the local SLURM cluster cannot take jobs, or None when it can."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "sinfo/sbatch not found (start the cluster: sudo bash scripts/slurm-up.sh)"
    r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return f"sinfo failed: {r.stderr.strip() or r.stdout.strip()}"
    if not {"idle", "mixed", "allocated"} & set(r.stdout.split()):
        return f"no SLURM node is up (sinfo: {r.stdout.split()})"
    return None


@pytest.fixture(scope="module")
def slurm_cluster():
    """Skips (or, with $CI set, fails) when the cluster of scripts/slurm-up.sh is not up."""
    problem = cluster_problem()
    if problem and os.environ.get("CI"):
        pytest.fail(f"CI is set but the SLURM cluster is not usable: {problem}")
    if problem:
        pytest.skip(problem)


def workflow_copy(dest: Path) -> Path:
    """A copy of the repository's workflow/ and config/ in `dest`, to run in isolation."""
    for name in ("workflow", "config"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def snakemake(workdir: Path, *args: str, timeout_s: int) -> subprocess.CompletedProcess:
    """`snakemake TARGET --configfile config/config.yaml ARGS` in `workdir`, under timeout -k."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [
        "timeout",
        "-k",
        "30",
        str(timeout_s),
        sys.executable,
        "-m",
        "snakemake",
        TARGET,
        "--configfile",
        "config/config.yaml",
        *args,
    ]
    return subprocess.run(
        cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout_s + 60
    )


def main_log(workdir: Path) -> str:
    """The newest Snakemake main log of `workdir`."""
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    assert logs, f"no Snakemake log under {workdir}/.snakemake/log"
    return logs[-1].read_text()


def executed_jobs(log: str) -> dict[int, tuple[str, bool]]:
    """{snakemake job id: (rule, ran locally)} for every job the run executed."""
    jobs, current = {}, None
    for line in log.splitlines():
        if m := re.fullmatch(r"(localrule|rule) (\w+):", line):
            current = (m.group(2), m.group(1) == "localrule")
        elif current and (m := re.fullmatch(r"\s+jobid: (\d+)", line)):
            jobs[int(m.group(1))] = current
            current = None
    return jobs


def slurm_submissions(log: str) -> dict[int, tuple[str, Path]]:
    """{snakemake job id: (SLURM job id, SLURM log path)} as the executor plugin logged them."""
    pattern = r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\."
    return {int(j): (s, Path(p)) for j, s, p in re.findall(pattern, log)}


def report_cells(html: str) -> dict[str, str | None]:
    """{"dataset/target/arch": accuracy string, or None where the report marks it missing}."""
    cells = {}
    for m in re.finditer(r'<td class="cell[^"]*" data-cell="([^"]+)"([^>]*)>', html):
        acc = re.search(r'data-accuracy="([^"]*)"', m.group(2))
        cells[m.group(1)] = acc.group(1) if acc else None
    return cells


def squeue_states(job_ids: list[str]) -> dict[str, str]:
    """SLURM's state of each job it still remembers (MinJobAge=3600 s in slurm-up.sh)."""
    return {i: state for i, (state, _) in squeue_jobs(job_ids).items()}


def squeue_jobs(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """{SLURM job id: (state, GRES asked per job, e.g. "gres:gpu:1")} from squeue."""
    fmt = "JobID:20,State:20,tres-per-job:40"
    r = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", ",".join(job_ids), "-O", fmt],
        capture_output=True,
        text=True,
        timeout=30,
    )
    rows = (line.split() for line in r.stdout.splitlines() if line.strip())
    return {row[0]: (row[1], row[2] if len(row) > 2 else "") for row in rows}


def cancel_run(log: str) -> None:
    """Cancel the SLURM jobs of a failed run (by its run UUID, the jobs' name)."""
    if m := re.search(r"SLURM run ID: ([\w-]+)", log):
        subprocess.run(["scancel", "--name", m.group(1)], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    """The demo workflow run through SLURM: (workdir, process, wall seconds)."""
    workdir = workflow_copy(tmp_path_factory.mktemp("slurm"))
    t0 = time.perf_counter()
    proc = snakemake(workdir, "--profile", str(PROFILE), timeout_s=TIMEOUT_S)
    wall = time.perf_counter() - t0
    print(f"SLURM demo run: exit {proc.returncode} in {wall:.1f} s")
    if proc.returncode != 0:
        cancel_run(main_log(workdir))
    return workdir, proc, wall


def test_demo_workflow_completes_on_slurm(slurm_run):
    workdir, proc, _ = slurm_run
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, f"snakemake via SLURM exited {proc.returncode}:\n{tail}"
    assert (workdir / TARGET).is_file()


def test_every_non_local_job_went_through_slurm(slurm_run):
    workdir, proc, _ = slurm_run
    assert proc.returncode == 0
    log = main_log(workdir)
    jobs = executed_jobs(log)
    remote = {j: rule for j, (rule, local) in jobs.items() if not local}
    assert GPU_RULES <= set(remote.values()), f"expected SLURM jobs of {GPU_RULES}, ran {jobs}"
    submitted = slurm_submissions(log)
    assert set(remote) <= set(submitted), f"jobs without a SLURM id: {set(remote) - set(submitted)}"
    local_submitted = {jobs[j][0] for j in submitted if j in jobs and jobs[j][1]}
    assert not local_submitted, f"local rules went to SLURM: {local_submitted}"
    for job, rule in remote.items():
        slurm_id, slurm_log = submitted[job]
        assert slurm_log.name == f"{slurm_id}.log" and slurm_log.is_file(), slurm_log
        assert f"rule_{rule}" in slurm_log.parts, slurm_log  # .snakemake/slurm_logs/rule_<rule>/
    ids = [submitted[j][0] for j in remote]
    known = squeue_jobs(ids)  # slurm-up.sh keeps finished jobs for an hour (MinJobAge)
    assert {i: state for i, (state, _) in known.items()} == dict.fromkeys(ids, "COMPLETED"), known
    gpu_jobs = [submitted[j][0] for j, rule in remote.items() if rule in GPU_RULES]
    assert all(known[i][1] == "gres:gpu:1" for i in gpu_jobs), known  # gpu=1 -> --gpus=1


def test_report_cells_match_a_local_run(slurm_run, demo_run):
    """Same cells as the local demo run (the session's `demo_run` fixture, tests/conftest.py)."""
    workdir, proc, _ = slurm_run
    assert proc.returncode == 0
    on_slurm = report_cells((workdir / TARGET).read_text())
    expected = {f"demo/demo/{arch}" for arch in ("global", "roi", "fused")}
    assert expected <= set(on_slurm), sorted(on_slurm)
    assert all(on_slurm[c] is not None for c in expected), on_slurm
    assert on_slurm == report_cells((demo_run / TARGET).read_text())


RESUME_SNAKEFILE = """
import json

RECIPE = json.dumps({"epochs": 20, "batch_size": 16, "lr": 0.05, "milestones": [15],
                     "samples_per_class": 24, "workers": 1})


rule train:
    input:
        "prepared/index.csv",
    output:
        ckpt="models/global.pt",
        history="models/global.history.csv",
    log:
        "logs/train.log",
    threads: 1
    resources:
        gpu=1,
        mem_mb=1000,
        runtime=10,
    params:
        recipe=RECIPE,
    shell:
        "echo start job=$SLURM_JOB_ID >> {log};"
        " fer train --prepared prepared --arch global --recipe {params.recipe:q}"
        " --out {output.ckpt} --threads 1 --no-progress >> {log} 2>&1"
"""


def wait_for(predicate, timeout_s: float, what: str):
    """Poll `predicate` every 0.2 s until it returns a truthy value; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def preempt(slurm_id: str) -> None:
    """Requeue a running job as preemption does, and let it start again at once (SLURM would
    otherwise hold a requeued job for about two minutes)."""
    subprocess.run(["scontrol", "requeue", slurm_id], check=True, timeout=30)
    state = ["squeue", "-h", "-j", slurm_id, "-o", "%T"]
    wait_for(
        lambda: subprocess.run(state, capture_output=True, text=True).stdout.strip() == "PENDING",
        60,
        f"job {slurm_id} to be requeued",
    )
    subprocess.run(["scontrol", "update", f"JobId={slurm_id}", "StartTime=now"], check=True)


def test_preempted_training_job_is_requeued_and_resumes(slurm_cluster, tmp_path):
    from fer.synthetic import write_prepared

    write_prepared(tmp_path / "prepared", n_per_class=16)
    (tmp_path / "Snakefile").write_text(RESUME_SNAKEFILE)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [
        "timeout",
        "-k",
        "30",
        "600",
        sys.executable,
        "-m",
        "snakemake",
        "models/global.pt",
        "--profile",
        str(PROFILE),
    ]
    with open(tmp_path / "snakemake.out", "w") as sink:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        state = tmp_path / "models" / ".state" / "global" / "last.pt"
        wait_for(state.exists, 300, "the first epoch's training state")
        submitted = wait_for(lambda: slurm_submissions(main_log(tmp_path)), 30, "the job id")
        ((slurm_id, _),) = submitted.values()
        preempt(slurm_id)
        proc.wait(timeout=660)
    finally:
        if proc.poll() is None:
            proc.kill()
            cancel_run(main_log(tmp_path))
    assert proc.returncode == 0, (tmp_path / "snakemake.out").read_text()[-3000:]
    log = (tmp_path / "logs" / "train.log").read_text()  # the requeued run's log
    assert f"job={slurm_id}" in log and "resuming models/global.pt after epoch" in log, log
    run = json.loads((tmp_path / "models" / "global.run.json").read_text())
    assert 1 <= run["resumed_from_epoch"] < 20, log  # preempted mid-way
    job = subprocess.run(["scontrol", "show", "job", slurm_id], capture_output=True, text=True)
    assert "Restarts=1 " in job.stdout, job.stdout
    epochs = (tmp_path / "models" / "global.history.csv").read_text().splitlines()[1:]
    assert len(epochs) == 20
    assert squeue_states([slurm_id]) == {slurm_id: "COMPLETED"}
