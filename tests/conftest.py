"""Shared fixtures: where the real data lives, and synthetic prepared data."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Real faces for the tests that need them (CK+48, FER2013's image folders): FER_TEST_DATA, else
# ../shared/data beside the checkout; tests that need them skip where neither holds them.
SHARED_DATA = Path(os.environ.get("FER_TEST_DATA") or REPO.parent / "shared" / "data")
BIN = Path(sys.executable).parent
# fer's cache (the networks' ONNX graphs, fer.models.graphs) for this test run only: one folder
# the tests and the commands they start share, removed at the end, never the user's ~/.cache/fer
if "FER_CACHE" not in os.environ:
    os.environ["FER_CACHE"] = tempfile.mkdtemp(prefix="fer-cache-")
    atexit.register(shutil.rmtree, os.environ["FER_CACHE"], True)


def smk(*args, cwd=None, timeout=120):
    """Run the repository's workflow with Snakemake in ``cwd``; the venv's `fer` is on PATH.

    Without ``cwd`` it runs in a fresh scratch folder holding a copy of ``config/``: a test never
    sees what earlier runs (`make report`) left in the repository.
    """
    if cwd is None:
        cwd = Path(tempfile.mkdtemp(prefix="fer-smk-"))
        atexit.register(shutil.rmtree, cwd, True)
        shutil.copytree(REPO / "config", cwd / "config")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(BIN / "snakemake"), "--snakefile", str(REPO / "workflow" / "Snakefile"), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (read-only real faces); skips the test where it is absent."""
    if not (SHARED_DATA / "ckplus48").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def fake_prepared(tmp_path):
    """Factory: ``fake_prepared(**kwargs)`` writes synthetic prepared data (fer.synthetic)."""
    from fer.synthetic import write_prepared

    def make(name: str = "prepared", **kwargs):
        return write_prepared(tmp_path / name, **kwargs)

    return make


WHOLE_RUNS = {"demo_run", "features_run", "slurm_run"}  # fixtures that run the whole workflow


def pytest_collection_modifyitems(config, items):
    """A test that uses a whole workflow run is ``slow`` (``make test-fast`` leaves it out)."""
    for item in items:
        if WHOLE_RUNS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def run_workflow(
    work: Path, *args: str, model_jobs: int = 1, timeout: int = 1500
) -> subprocess.CompletedProcess:
    """The one end-to-end run of the test suite: Snakemake builds ``reports/all.html`` in
    ``work`` on 2 cores with ``args`` (config files, ...). ``model_jobs``: training / inference
    jobs at once (``gpu`` tokens); 2 runs two one-thread jobs side by side, as the README advises
    on a CPU. A failed run fails the calling test, with Snakemake's message and the tail of every
    job's log."""
    resources = ["--resources", f"gpu={model_jobs}"]
    if model_jobs > 1:
        resources += ["--set-threads", "train_model=1", "infer_record=1"]
    target = ["--", "reports/all.html"]
    r = smk(*args, "--cores", "2", *resources, *target, cwd=work, timeout=timeout)
    if r.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in (work / "logs").rglob("*.log"))
        pytest.fail(f"workflow run in {work} failed:\n{r.stderr[-5000:]}\n{logs}")
    return r


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The real demo workflow (``make report``'s), end to end, in a scratch working directory."""
    work = tmp_path_factory.mktemp("demo_run")
    shutil.copytree(REPO / "config", work / "config")
    run_workflow(work)
    return work


@dataclass
class FeaturesRun:
    """The features run: its folder, config and Snakemake's process."""

    work: Path
    config: dict
    process: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def features_run(tmp_path_factory) -> FeaturesRun:
    """One workflow run of tests/features.py's config: replicate seeds, the authors' imported
    checkpoints, a user's class folders and a k-fold set of real faces, in one report (the real
    faces' sets where ../shared/data is at hand)."""
    pytest.importorskip("dlib")
    from tests.features import write_config

    work = tmp_path_factory.mktemp("features_run")
    shared = SHARED_DATA if (SHARED_DATA / "ckplus48").is_dir() else None
    config = write_config(work, shared)
    run = run_workflow(work, "--configfile=features.yaml", model_jobs=2)
    return FeaturesRun(work, config, run)


@pytest.fixture
def full_disk(tmp_path):
    """Factory: ``full_disk(free=4096)`` mounts a 2 MB tmpfs, fills it until about ``free``
    bytes are left and returns its folder; skips where tmpfs cannot be mounted (not root)."""
    mounts = []

    def make(free: int = 4096) -> Path:
        where = tmp_path / f"disk{len(mounts)}"
        where.mkdir()
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}")
        mounts.append(where)
        room = shutil.disk_usage(where).free - free
        if room > 0:
            with open(where / "filler", "wb") as fh:
                fh.write(b"\0" * room)
        return where

    yield make
    for where in mounts:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
