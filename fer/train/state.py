"""Training run state for `fer train`: atomic per-epoch resume files and the final outputs.

The state file (``<state folder>/last.pt``, read with ``weights_only=True``) holds everything
that makes a resumed run continue bit-for-bit: model, optimizer and LR scheduler (each its
``state_dict()``), the epoch, the global, sampler and augmentation RNG states, the history and
the best weights so far. It is written through :mod:`fer.atomic`, so a kill at any moment leaves
the last complete epoch on disk.
"""

from __future__ import annotations

import csv
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fer.atomic import atomic_write, save_torch, write_json
from fer.contracts import HISTORY_COLUMNS
from fer.models.meta import checkpoint_meta as meta_of
from fer.provenance import git_sha, versions
from fer.train.precision import memory_format

STATE_FORMAT = 3  # bump when the resume file's layout changes: older files then start over
# what a fingerprint difference means, for the line that says why a run starts over
CHANGES = {
    "state_format": "an older fer (another resume format)",
    "recipe": "another recipe",
    "arch": "another model",
    "fold": "another fold",
    "classes": "other classes",
    "sizes": "other input sizes",
    "n_train": "another training split",
    "n_val": "another validation split",
    "device": "another device type",
    "precision": "another precision (amp: auto chose differently on this machine)",
    "data": "other prepared data (its index or arrays changed since)",
}
TEST_WARNING = (
    "selection: test - the best epoch was chosen on the TEST split, as the reference did, so "
    "test accuracies of this checkpoint are optimistically biased; use only to reproduce the "
    "reference's table"
)


@dataclass
class RunState:
    """Everything one training run carries between epochs (and across a resume)."""

    job: Any  # fer.train.TrainJob
    data: Any  # fer.prepared.PreparedData
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    criterion: torch.nn.Module
    step: Any  # fer.train.loop.Step: device, input sizes, memory format, autocast
    n_train: int
    n_val: int
    ema: Any = None  # torch.optim.swa_utils.AveragedModel of model (recipe ema_decay), or None
    epochs_done: int = 0
    history: list = field(default_factory=list)
    best_epoch: int = 0
    best_acc: float = -1.0
    best_state: dict | None = None
    elapsed: float = 0.0
    resumed_from: int | None = None
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self):
        self.sampler_gen = torch.Generator().manual_seed(self.recipe.seed)
        self.aug_gen = torch.Generator(device=self.device).manual_seed(self.recipe.seed + 1)

    @property
    def recipe(self):
        return self.job.recipe

    @property
    def selected_model(self) -> torch.nn.Module:
        """The weights validated, selected and saved: the EMA's when the recipe keeps one."""
        return self.model if self.ema is None else self.ema.module

    def selected_weights(self) -> dict:
        """A CPU copy of :attr:`selected_model`'s state_dict (the best weights so far)."""
        return {
            k: v.detach().to("cpu", copy=True) for k, v in self.selected_model.state_dict().items()
        }

    @property
    def arch(self) -> str:
        return self.job.arch

    @property
    def device(self) -> torch.device:
        return self.step.device

    @property
    def sizes(self) -> tuple[int, int]:
        return self.step.sizes

    @property
    def dataset(self) -> str:
        """The workflow's name for the data set, else the one its manifest recorded."""
        return self.recipe.dataset or str(self.data.summary.get("dataset") or "")

    @property
    def state_path(self) -> Path:
        """The resume file, ``<state folder>/last.pt``."""
        return self.job.state_folder / "last.pt"

    @property
    def memory_format(self):
        """The step's memory format and why (:func:`fer.train.precision.memory_format`)."""
        return memory_format(self.recipe.channels_last, self.step.precision, self.device)

    def fingerprint(self) -> dict:
        """What must match for a saved state to be resumed (else training starts over); the
        device type too, as CPU and CUDA generator states differ."""
        return {
            "state_format": STATE_FORMAT,
            "recipe": self.recipe.fingerprint(),
            "arch": self.arch,
            "fold": self.job.fold,
            "classes": list(self.data.classes),
            "sizes": list(self.sizes),
            "n_train": self.n_train,
            "n_val": self.n_val,
            "device": self.device.type,
            "precision": self.step.precision.name,
            "data": self.data.fingerprint(),  # the prepared content: re-prepared data starts over
        }

    def record(self, epoch: int, lr: float, stats: dict, ev: dict) -> None:
        """Append one history row; keep a CPU copy of the weights when val accuracy improves."""
        self.history.append(
            {
                "epoch": epoch,
                "lr": lr,
                "train_loss": stats["loss"],
                "train_acc": stats["acc"],
                "val_loss": ev["loss"],
                "val_acc": ev["acc"],
                "seconds": stats["seconds"],
                "img_per_s": stats["images"] / max(stats["seconds"], 1e-9),
            }
        )
        self.epochs_done = epoch
        if ev["acc"] > self.best_acc:
            self.best_epoch, self.best_acc = epoch, ev["acc"]
            self.best_state = self.selected_weights()

    def wall_time(self) -> float:
        """Seconds of training so far, over every resumed attempt."""
        return self.elapsed + time.perf_counter() - self.started


def save_state(run: RunState) -> None:
    """Write the resume state after a complete epoch."""
    save_torch(
        {
            "fingerprint": run.fingerprint(),
            "epochs_done": run.epochs_done,
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "rng": torch.get_rng_state(),
            "sampler_rng": run.sampler_gen.get_state(),
            "aug_rng": run.aug_gen.get_state(),
            "scheduler": run.scheduler.state_dict(),
            "ema": None if run.ema is None else run.ema.state_dict(),
            "history": run.history,
            "best_epoch": run.best_epoch,
            "best_acc": run.best_acc,
            # the best weights are the current (or EMA) ones when this epoch improved: no copy
            "best_state": None if run.best_epoch == run.epochs_done else run.best_state,
            "elapsed": run.wall_time(),
        },
        run.state_path,
    )


def load_state(run: RunState) -> bool:
    """Restore ``run`` from its state file when one for the same run exists; True if resumed."""
    path = run.state_path
    if not path.is_file():
        return False
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file: never trust it, start over
        print(f"warning: {path} unreadable ({type(exc).__name__}); starting over", file=sys.stderr)
        return False
    saved = state.get("fingerprint") if isinstance(state, dict) else None
    now = run.fingerprint()
    if saved != now:
        changed = sorted(k for k in now if not isinstance(saved, dict) or saved.get(k) != now[k])
        why = ", ".join(CHANGES.get(k, k) for k in changed) or "it is not a fer resume state"
        print(f"warning: {path} was saved for {why}; starting over", file=sys.stderr)
        return False
    run.model.load_state_dict(state["model"])
    fused = [group.get("fused") for group in run.optimizer.param_groups]
    run.optimizer.load_state_dict(state["optimizer"])
    for group, flag in zip(run.optimizer.param_groups, fused, strict=True):
        group["fused"] = flag  # this device's choice (a CUDA state may resume on the CPU)
    run.epochs_done = run.resumed_from = int(state["epochs_done"])
    run.scheduler.load_state_dict(state["scheduler"])
    if run.ema is not None:
        run.ema.load_state_dict(state["ema"])
    torch.set_rng_state(state["rng"])
    run.sampler_gen.set_state(state["sampler_rng"])
    run.aug_gen.set_state(state["aug_rng"])
    run.history = list(state["history"])
    run.best_epoch, run.best_acc = int(state["best_epoch"]), float(state["best_acc"])
    run.best_state = state["best_state"]
    if run.best_state is None:
        run.best_state = run.selected_weights()
    run.elapsed = float(state["elapsed"])
    return True


def remove_state(run: RunState, keep_file: bool = False) -> None:
    """Delete the resume file (after a successful run; ``keep_file`` after a failed one, whose
    last good state may resume), and its folders when left empty."""
    if not keep_file:
        run.state_path.unlink(missing_ok=True)
    folder = run.state_path.parent
    for candidate in (folder, folder.parent if folder.parent.name == ".state" else None):
        if candidate is None or not candidate.is_dir() or any(candidate.iterdir()):
            break
        candidate.rmdir()


def hardware(device: torch.device) -> dict:
    """Where the run ran."""
    info = {
        "device": str(device),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def checkpoint_meta(run: RunState, sha: str) -> dict:
    """The checkpoint's meta (:func:`fer.models.meta.checkpoint_meta`) of a finished run."""
    r = run.recipe
    return meta_of(
        model=run.arch,
        classes=run.data.classes,
        sizes=run.sizes,
        dataset=run.dataset,
        adapter=run.data.adapter or run.dataset,
        selection=r.selection,
        preprocess=run.data.preprocess,
        seed=r.seed,
        global_input=r.global_input,
        fold=run.job.fold,
        best_epoch=run.best_epoch,
        best_val_acc=run.best_acc,
        git_sha=sha,
        config_hash=r.config_hash or r.fingerprint(),
        recipe=r.to_dict(),
        init=getattr(run.model, "fer_init", None),
        warning=TEST_WARNING if r.selection == "test" else None,
        synthetic=bool(run.data.summary.get("synthetic", False)),
        tta=r.tta,
    )


def write_outputs(run: RunState, train, val) -> None:
    """Write ``{out stem}.history.csv``, ``{out stem}.run.json``, then the checkpoint ``{out}``."""
    from fer.models import save_checkpoint

    out = Path(run.job.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.parent / out.stem
    sha = git_sha()
    meta = checkpoint_meta(run, sha)
    with atomic_write(f"{stem}.history.csv", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows({**row, "validated_on": val.name} for row in run.history)
    info = {
        "recipe": run.recipe.to_dict(),
        "dataset": run.dataset,
        "arch": run.arch,
        "prepared": str(run.job.prepared),
        "out": str(out),
        "fold": run.job.fold,
        "seed": run.recipe.seed,
        "git_sha": sha,
        "versions": versions(),
        "hardware": hardware(run.device),
        "precision": {"amp": run.step.precision.name, "why": run.step.precision.why},
        "memory_format": {"format": run.memory_format.name, "why": run.memory_format.why},
        "selection": run.recipe.selection,
        "validated_on": val.name,
        "selected_on_test": run.recipe.selection == "test",
        "best_epoch": run.best_epoch,
        "best_val_acc": run.best_acc,
        "synthetic": bool(run.data.summary.get("synthetic", False)),
        "classes": list(run.data.classes),
        "face_size": run.sizes[0],
        "roi_size": run.sizes[1],
        "n_train": len(train),
        "n_val": len(val),
        "train_counts": train.counts(run.data.classes),
        "val_counts": val.counts(run.data.classes),
        "epochs": run.epochs_done,
        "val_groups": sorted(set(run.data.index["group"].astype(str).to_numpy()[val.rows])),
        "resumed_from_epoch": run.resumed_from,
        "wall_time_s": round(run.wall_time(), 3),
        "init": getattr(run.model, "fer_init", None),
        "checkpoint_meta": {k: v for k, v in meta.items() if k != "recipe"},
    }
    if run.recipe.selection == "test":
        info["warning"] = TEST_WARNING
    write_json(f"{stem}.run.json", info)
    save_checkpoint(out, run.model, meta)
