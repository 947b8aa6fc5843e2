"""What ``fer train`` is asked to do, as a frozen value (like :class:`fer.evaluate.jobs.InferJob`
and :class:`~fer.evaluate.jobs.EvaluateJob`). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fer.train.recipe import Recipe


@dataclass(frozen=True)
class TrainJob:
    """One training run: what to train on, with which recipe, where to write it, on what.

    ``fold``: for a k-fold data set, the fold held out (validation is carved from the others).
    ``state_dir``: where the per-epoch resume state lives (default ``<out dir>/.state/<stem>/``).
    ``device``: ``auto`` (CUDA when visible), ``cpu``, ``cuda`` or ``cuda:N``. ``threads``: torch
    CPU threads (None: torch's choice). ``progress``: a bar on stderr. ``keep_state``: keep the
    resume state after a successful run.
    """

    prepared: Path
    arch: str
    out: Path
    recipe: Recipe = field(default_factory=Recipe)
    fold: int | None = None
    state_dir: Path | None = None
    device: str = "auto"
    threads: int | None = None
    progress: bool = True
    keep_state: bool = False

    @property
    def state_folder(self) -> Path:
        """The resume state's folder."""
        return Path(self.state_dir or Path(self.out).parent / ".state" / Path(self.out).stem)
