"""The training loop of `fer train`: one trainer for every data set and both models (reference §3).

Shape of torchvision's references/classification/train.py: :func:`train_one_epoch`,
:func:`evaluate`, :func:`fit`, and :func:`run_job` for a whole :class:`~fer.train.TrainJob` (the
command line is :mod:`fer.train.cli`). The recipe (:mod:`fer.train.recipe`) holds every knob;
data comes from ``fer.prepared`` through :mod:`fer.train.data`; the checkpoint is chosen on the
validation split (``selection: val``), or, to reproduce the reference's table only, on the test
split (``selection: test``, marked everywhere).

After every epoch the full training state is written atomically to the job's state folder; a
killed run restarted with the same job resumes there and ends with the same metrics.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fer.errors import FerError
from fer.models import create_model
from fer.models.transforms import eval_transform
from fer.models.tta import logits as tta_logits
from fer.models.tta import main_logits
from fer.progress import say
from fer.provenance import resolve_device
from fer.train.augment import Mixing, augment
from fer.train.data import Batches, Split, build_splits, epoch_order, epoch_steps
from fer.train.job import TrainJob
from fer.train.precision import Precision, memory_format, resolve
from fer.train.recipe import Recipe
from fer.train.state import RunState, load_state, remove_state, save_state, write_outputs

NAN_CHECK_EVERY = 10  # steps between host syncs that look for a non-finite loss


@dataclass(frozen=True)
class Step:
    """How a batch becomes model inputs: the device, the (face, ROI) input sides, the memory
    format, the precision (:mod:`fer.train.precision`), the training augmentation chain
    (:func:`fer.train.augment.augment`), MixUp / CutMix and the test-time views of validation
    (:mod:`fer.models.tta`)."""

    device: torch.device
    sizes: tuple[int, int]
    channels_last: bool = True
    precision: Precision = Precision(False, "fp32")
    augment: str = "reference"
    mixing: Mixing = Mixing()
    tta: str = "none"

    @property
    def amp(self) -> bool:
        """bf16 autocast on."""
        return self.precision.bf16

    @classmethod
    def of(cls, recipe: Recipe, sizes: tuple[int, int], device: torch.device) -> Step:
        """The step settings a recipe asks for on ``device`` (``amp: auto`` and
        ``channels_last: null`` resolved)."""
        precision = resolve(recipe.amp, device)
        return cls(
            device,
            tuple(sizes),
            memory_format(recipe.channels_last, precision, device).channels_last,
            precision,
            recipe.augment,
            Mixing(recipe.mixup_alpha, recipe.cutmix_alpha),
            recipe.tta,
        )


class Criterion(nn.Module):
    """Reference loss: CE with label smoothing (or BCE on vote vectors); for the Global-ROI Net
    ``w_main·L(x) + w_whole·L(x_whole) + w_roi·L(x_roi)``."""

    def __init__(self, recipe: Recipe):
        super().__init__()
        self.bce = recipe.loss == "bce"
        self.base = (
            nn.BCEWithLogitsLoss()
            if self.bce
            else nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        )
        self.weights = recipe.loss_weights

    def forward(self, outputs, target: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, tuple | list):
            return sum(
                w * self.base(o.float(), target) for w, o in zip(self.weights, outputs, strict=True)
            )
        return self.base(outputs.float(), target)


def _inputs(batch: dict, model, step: Step, gen: torch.Generator | None) -> dict:
    """Move a uint8 batch to the step's device and build the model's keyword inputs."""
    out, cl = {}, step.channels_last
    for key in ("face", "eye", "nose", "mouth") if model.uses_rois else ("face",):
        t = torch.as_tensor(batch[key]).to(step.device, non_blocking=True)
        size = step.sizes[0] if key == "face" else step.sizes[1]
        out[key] = (
            augment(t, size, gen, cl, step.augment)
            if gen is not None
            else eval_transform(t, size, channels_last=cl)
        )
    return out


def _target(batch: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
    label = torch.as_tensor(batch["label"]).to(device, non_blocking=True)
    if "votes" in batch:
        return label, torch.as_tensor(batch["votes"]).to(device, non_blocking=True)
    return label, label


def _check_finite(losses: list, epoch: int, first_step: int, where: str) -> None:
    values = torch.stack(losses).float().cpu()
    bad = torch.nonzero(~torch.isfinite(values)).flatten()
    if len(bad):
        step = first_step + int(bad[0])
        raise FerError(
            f"non-finite loss ({values[bad[0]].item()}) at epoch {epoch} step {step}: training "
            f"stopped; last good state: {where} (lower the lr or check the data)"
        )


def train_one_epoch(
    model,
    criterion,
    optimizer,
    batches,
    step: Step,
    epoch: int,
    gen,
    bar=None,
    last_good="none",
    *,
    scheduler=None,
    ema=None,
) -> dict:
    """One pass over ``batches`` (iterable of uint8 batch dicts); returns loss, acc, images, s.

    ``gen`` draws the augmentation and the mixing (None: neither); ``last_good`` names the state
    a non-finite loss error points the user to; ``scheduler`` is stepped and ``ema`` (an
    ``AveragedModel``) updated after every optimizer step. Training accuracy counts the
    unmixed label of each picture.
    """
    model.train()
    device = step.device
    mixing = step.mixing if gen is not None and step.mixing.on else None
    losses, seen, correct = [], 0, torch.zeros((), device=device)
    start = time.perf_counter()
    for i, batch in enumerate(batches, start=1):
        inputs = _inputs(batch, model, step, gen)
        label, target = _target(batch, device)
        if mixing is not None:
            inputs, lam, perm = mixing.apply(inputs, gen)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=step.amp):
            outputs = model(**inputs)
        logits = main_logits(outputs)
        if mixing is not None:
            target = mixing.targets(target, lam, perm, logits.shape[1])
        loss = criterion(outputs, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update_parameters(getattr(model, "_orig_mod", model))
        losses.append(loss.detach())
        correct += (logits.argmax(1) == label).sum()
        seen += len(label)
        if i % NAN_CHECK_EVERY == 0:
            _check_finite(losses[-NAN_CHECK_EVERY:], epoch, i - NAN_CHECK_EVERY + 1, last_good)
            if bar is not None:
                rate = seen / (time.perf_counter() - start)
                bar.set_postfix(loss=f"{losses[-1].item():.3f}", img_s=f"{rate:.1f}")
        if bar is not None:
            bar.update(1)
    if not losses:
        raise FerError(f"epoch {epoch}: no training batch (too few rows for batch size?)")
    done = len(losses) - len(losses) % NAN_CHECK_EVERY
    if done < len(losses):
        _check_finite(losses[done:], epoch, done + 1, last_good)
    mean_loss = torch.stack(losses).float().mean().item()
    seconds = time.perf_counter() - start
    return {"loss": mean_loss, "acc": correct.item() / seen, "images": seen, "seconds": seconds}


@torch.inference_mode()
def evaluate(model, criterion, batches, step: Step) -> dict:
    """Main-head loss and accuracy over ``batches`` in eval mode (no augmentation; the step's
    test-time views)."""
    model.eval()
    device = step.device
    loss_sum, correct, n = torch.zeros((), device=device), torch.zeros((), device=device), 0
    for batch in batches:
        inputs = _inputs(batch, model, step, None)
        label, target = _target(batch, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=step.amp):
            logits = tta_logits(model, inputs, step.tta)
        loss_sum += criterion.base(logits.float(), target) * len(label)
        correct += (logits.argmax(1) == label).sum()
        n += len(label)
    return {"loss": loss_sum.item() / n, "acc": correct.item() / n}


def compiled(model: nn.Module, mode: str) -> nn.Module:
    """``model`` itself (``mode`` none) or a ``torch.compile`` wrapper sharing its parameters:
    steps run through the wrapper, states are saved from ``model``."""
    if mode == "none":
        return model
    return torch.compile(model, mode=None if mode == "default" else mode, dynamic=False)


def build_model(arch: str, recipe: Recipe, n_classes: int, sizes, device, steps_per_epoch: int = 1):
    """The seeded model, its optimizer (reference §3.1: SGD) and learning-rate scheduler, stepped
    once per batch of ``steps_per_epoch`` (:func:`build_scheduler`)."""
    torch.manual_seed(recipe.seed)
    weights = None if recipe.weights == "none" else recipe.weights
    model = create_model(arch, n_classes, sizes[0], sizes[1], weights=weights)
    model.to(device)
    if memory_format(recipe.channels_last, resolve(recipe.amp, device), device).channels_last:
        model.to(memory_format=torch.channels_last)
    if recipe.optimizer == "adamw":
        optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=recipe.lr,
            weight_decay=recipe.weight_decay,
            **fused_option(device),
        )
    else:
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
            **fused_option(device),
        )
    return model, optimizer, build_scheduler(optimizer, recipe, steps_per_epoch)


def build_scheduler(optimizer, recipe: Recipe, steps_per_epoch: int):
    """The recipe's learning-rate schedule as torch schedulers, stepped after every batch.

    ``multistep``: MultiStepLR at the milestone epochs' first steps (the reference's values,
    epoch by epoch); ``cosine``: CosineAnnealingLR to 0 over the steps after the warm-up;
    ``onecycle``: OneCycleLR peaking at ``lr`` after ``warmup_epochs`` (0: its default 30 %),
    momentum not cycled. A warm-up before multistep or cosine is LinearLR from ``lr / steps``,
    chained with SequentialLR.
    """
    sched = torch.optim.lr_scheduler
    spe = max(1, steps_per_epoch)
    total = recipe.epochs * spe
    warm = recipe.warmup_epochs * spe
    if recipe.schedule == "onecycle":
        return sched.OneCycleLR(
            optimizer,
            max_lr=recipe.lr,
            total_steps=total,
            pct_start=warm / total if warm else 0.3,
            cycle_momentum=False,
        )
    if recipe.schedule == "cosine":
        main = sched.CosineAnnealingLR(optimizer, T_max=total - warm, eta_min=0.0)
    else:
        steps = [m * spe - warm for m in recipe.milestones]
        main = sched.MultiStepLR(optimizer, milestones=steps, gamma=recipe.gamma)
    if not warm:
        return main
    ramp = sched.LinearLR(optimizer, start_factor=1.0 / warm, end_factor=1.0, total_iters=warm)
    return sched.SequentialLR(optimizer, [ramp, main], milestones=[warm])


def build_ema(model: nn.Module, recipe: Recipe):
    """The recipe's exponential moving average of ``model`` (``ema_decay``; None: off):
    torch's ``AveragedModel`` with the EMA update, BatchNorm buffers averaged too."""
    if recipe.ema_decay is None:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(
        model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True
    )


def fused_option(device: torch.device) -> dict:
    """``fused=True`` for SGD and AdamW on CUDA (one kernel for every parameter's update); the
    default (foreach) elsewhere."""
    return {"fused": True} if device.type == "cuda" else {}


def fit(run: RunState, data, train: Split, val: Split) -> None:
    """Run the remaining epochs of ``run``, saving its state after each one."""
    r = run.recipe
    n_classes = len(data.classes)
    pin = run.device.type == "cuda"
    train_b = Batches(data, run.arch, train, r.global_input, pin)
    val_b = Batches(data, run.arch, val, r.global_input, pin)
    val_order = np.arange(len(val))
    model = compiled(run.model, r.compile)
    for epoch in range(run.epochs_done + 1, r.epochs + 1):
        lr = run.optimizer.param_groups[0]["lr"]
        last_good = (
            f"{run.state_path} (after epoch {run.epochs_done}, intact)"
            if run.epochs_done
            else "none (no epoch completed)"
        )
        order = epoch_order(train, r, n_classes, run.sampler_gen)
        with tqdm(
            total=-(-len(order) // r.batch_size),
            desc=f"{run.arch} epoch {epoch}/{r.epochs}",
            unit="batch",
            file=sys.stderr,
            disable=not run.job.progress,
            leave=False,
            mininterval=0.5 if sys.stderr.isatty() else 30,
        ) as bar:
            batches = train_b.iterate(order, r.batch_size, r.workers, True)
            stats = train_one_epoch(
                model,
                run.criterion,
                run.optimizer,
                batches,
                run.step,
                epoch,
                run.aug_gen,
                bar,
                last_good,
                scheduler=run.scheduler,
                ema=run.ema,
            )
        batches = val_b.iterate(val_order, r.eval_batch_size, r.workers)
        scored = model if run.ema is None else run.ema.module  # the EMA: validated and kept
        ev = evaluate(scored, run.criterion, batches, run.step)
        run.record(epoch, lr, stats, ev)
        save_state(run)
        say(
            f"epoch {epoch}/{r.epochs} lr {lr:.3g} train_loss {stats['loss']:.4f} train_acc "
            f"{stats['acc']:.4f} {val.name}_loss {ev['loss']:.4f} {val.name}_acc "
            f"{ev['acc']:.4f} ({stats['images'] / stats['seconds']:.1f} img/s)"
        )


def run_job(job: TrainJob) -> RunState:
    """Train ``job`` to the end: resume its state if one fits, fit, write the outputs."""
    from fer.prepared import open_prepared

    if job.threads:
        torch.set_num_threads(job.threads)
    device = resolve_device(job.device)
    data = open_prepared(job.prepared)
    recipe = job.recipe
    train, val = build_splits(data, job.arch, recipe, job.fold)
    sizes = (recipe.face_size or data.chip_size, recipe.roi_size or data.crop_size)
    spe = epoch_steps(len(train), recipe, len(data.classes))
    model, optimizer, scheduler = build_model(
        job.arch, recipe, len(data.classes), sizes, device, spe
    )
    run = RunState(
        job=job,
        data=data,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        ema=build_ema(model, recipe),
        criterion=Criterion(recipe).to(device),
        step=Step.of(recipe, sizes, device),
        n_train=len(train),
        n_val=len(val),
    )
    layout = run.memory_format
    say(
        f"precision {run.step.precision.name} ({run.step.precision.why}); memory format "
        f"{layout.name} ({layout.why})"
    )
    if load_state(run):
        say(f"resuming {job.out} after epoch {run.epochs_done} from {run.state_path}")
    try:
        fit(run, data, train, val)
        run.model.load_state_dict(run.best_state)
        write_outputs(run, train, val)
    except BaseException:
        remove_state(run, keep_file=True)  # no empty folders left by a run that never saved
        raise
    if not job.keep_state:
        remove_state(run)
    say(f"wrote {job.out} (best epoch {run.best_epoch}, {val.name}_acc {run.best_acc:.4f})")
    return run
