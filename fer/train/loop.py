"""The training loop of `fer train`: one trainer for every data set and both models (reference §3).

Shape of torchvision's references/classification/train.py: :func:`train_one_epoch`,
:func:`evaluate`, :func:`fit` (the command line is :mod:`fer.train.cli`). The recipe
(``--recipe`` JSON, :mod:`fer.train.recipe`) holds every knob; data comes from ``fer.prepared``
through :mod:`fer.train.data`; the checkpoint is chosen on the validation split (``selection:
val``), or, to reproduce the reference's table only, on the test split (``selection: test``,
marked everywhere).

After every epoch the full training state is written atomically to ``--state-dir``; a killed run
restarted with the same arguments resumes there and ends with the same metrics.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fer.errors import FerError
from fer.models import create_model
from fer.train.augment import augment, prepare_eval
from fer.train.data import Batches, Split, epoch_order
from fer.train.recipe import Recipe
from fer.train.state import RunState, save_state

NAN_CHECK_EVERY = 10  # steps between host syncs that look for a non-finite loss


class Criterion(nn.Module):
    """Reference loss: CE with label smoothing (or BCE on vote vectors); for the Global-ROI Net
    ``w_main·L(x) + w_whole·L(x_whole) + w_roi·L(x_roi)``."""

    def __init__(self, recipe: Recipe):
        super().__init__()
        self.bce = recipe.loss == "bce"
        self.base = (nn.BCEWithLogitsLoss() if self.bce
                     else nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing))  # fmt: skip
        self.weights = recipe.loss_weights

    def forward(self, outputs, target: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, tuple | list):
            return sum(w * self.base(o.float(), target)
                       for w, o in zip(self.weights, outputs, strict=True))  # fmt: skip
        return self.base(outputs.float(), target)


def _inputs(batch: dict, model, sizes, device, gen: torch.Generator | None, cl: bool) -> dict:
    """Move a uint8 batch to ``device`` and build the model's keyword inputs."""
    out = {}
    for key in ("face", "eye", "nose", "mouth") if model.uses_rois else ("face",):
        t = torch.as_tensor(batch[key]).to(device, non_blocking=True)
        size = sizes[0] if key == "face" else sizes[1]
        out[key] = augment(t, size, gen, cl) if gen is not None else prepare_eval(t, size, cl)
    return out


def _target(batch: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
    label = torch.as_tensor(batch["label"]).to(device, non_blocking=True)
    if "votes" in batch:
        return label, torch.as_tensor(batch["votes"]).to(device, non_blocking=True)
    return label, label


def _main_logits(outputs) -> torch.Tensor:
    return outputs[0] if isinstance(outputs, tuple | list) else outputs


def _check_finite(losses: list, epoch: int, first_step: int, where: str) -> None:
    values = torch.stack(losses).float().cpu()
    bad = torch.nonzero(~torch.isfinite(values)).flatten()
    if len(bad):
        step = first_step + int(bad[0])
        raise FerError(
            f"non-finite loss ({values[bad[0]].item()}) at epoch {epoch} step {step}: training "
            f"stopped; last good state: {where} (lower the lr or check the data)"
        )


def train_one_epoch(model, criterion, optimizer, batches, ctx, epoch: int, gen, bar=None) -> dict:
    """One pass over ``batches`` (iterable of uint8 batch dicts); returns loss, acc, images, s."""
    model.train()
    device, sizes, cl = ctx["device"], ctx["sizes"], ctx["channels_last"]
    losses, seen, correct = [], 0, torch.zeros((), device=device)
    start = time.perf_counter()
    for step, batch in enumerate(batches, start=1):
        inputs = _inputs(batch, model, sizes, device, gen, cl)
        label, target = _target(batch, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=ctx["amp"]):
            outputs = model(**inputs)
        loss = criterion(outputs, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        correct += (_main_logits(outputs).argmax(1) == label).sum()
        seen += len(label)
        if step % NAN_CHECK_EVERY == 0:
            _check_finite(losses[-NAN_CHECK_EVERY:], epoch, step - NAN_CHECK_EVERY + 1,
                          ctx["state_where"])  # fmt: skip
            if bar is not None:
                rate = seen / (time.perf_counter() - start)
                bar.set_postfix(loss=f"{losses[-1].item():.3f}", img_s=f"{rate:.1f}")
        if bar is not None:
            bar.update(1)
    if not losses:
        raise FerError(f"epoch {epoch}: no training batch (too few rows for batch size?)")
    done = len(losses) - len(losses) % NAN_CHECK_EVERY
    if done < len(losses):
        _check_finite(losses[done:], epoch, done + 1, ctx["state_where"])
    mean_loss = torch.stack(losses).float().mean().item()
    seconds = time.perf_counter() - start
    return {"loss": mean_loss, "acc": correct.item() / seen, "images": seen, "seconds": seconds}


@torch.inference_mode()
def evaluate(model, criterion, batches, ctx) -> dict:
    """Main-head loss and accuracy over ``batches`` in eval mode (no augmentation)."""
    model.eval()
    device = ctx["device"]
    loss_sum, correct, n = torch.zeros((), device=device), torch.zeros((), device=device), 0
    for batch in batches:
        inputs = _inputs(batch, model, ctx["sizes"], device, None, ctx["channels_last"])
        label, target = _target(batch, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=ctx["amp"]):
            logits = _main_logits(model(**inputs))
        loss_sum += criterion.base(logits.float(), target) * len(label)
        correct += (logits.argmax(1) == label).sum()
        n += len(label)
    return {"loss": loss_sum.item() / n, "acc": correct.item() / n}


def build_model(arch: str, recipe: Recipe, n_classes: int, sizes, device):
    """The seeded model, optimizer and MultiStepLR scheduler (reference §3.1)."""
    torch.manual_seed(recipe.seed)
    weights = None if recipe.weights == "none" else recipe.weights
    model = create_model(arch, n_classes, sizes[0], sizes[1], weights=weights)
    model.to(device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)  # fmt: skip
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(recipe.milestones), gamma=recipe.gamma
    )
    return model, optimizer, scheduler


def fit(run: RunState, data, train: Split, val: Split, progress: bool) -> None:
    """Run the remaining epochs of ``run``, saving its state after each one."""
    r, ctx = run.recipe, run.ctx
    n_classes = len(data.classes)
    pin = run.device.type == "cuda"
    train_b = Batches(data, run.arch, train, r.global_input, pin)
    val_b = Batches(data, run.arch, val, r.global_input, pin)
    val_order = np.arange(len(val))
    for epoch in range(run.epochs_done + 1, r.epochs + 1):
        lr = run.optimizer.param_groups[0]["lr"]
        ctx["state_where"] = (f"{run.state_path} (after epoch {run.epochs_done}, intact)"
                              if run.epochs_done else "none (no epoch completed)")  # fmt: skip
        order = epoch_order(train, r, n_classes, run.sampler_gen)
        steps = -(-len(order) // r.batch_size)
        with tqdm(total=steps, desc=f"{run.arch} epoch {epoch}/{r.epochs}", unit="batch",
                  file=sys.stderr, disable=not progress, leave=False,
                  mininterval=0.5 if sys.stderr.isatty() else 30) as bar:  # fmt: skip
            stats = train_one_epoch(run.model, run.criterion, run.optimizer,
                                    train_b.iterate(order, r.batch_size, r.workers, True),
                                    ctx, epoch, run.aug_gen if r.augment else None,
                                    bar)  # fmt: skip
        run.scheduler.step()
        ev = evaluate(run.model, run.criterion,
                      val_b.iterate(val_order, r.eval_batch_size, r.workers), ctx)  # fmt: skip
        run.record(epoch, lr, stats, ev)
        save_state(run)
        print(f"epoch {epoch}/{r.epochs} lr {lr:.3g} train_loss {stats['loss']:.4f} train_acc "
              f"{stats['acc']:.4f} {val.name}_loss {ev['loss']:.4f} {val.name}_acc "
              f"{ev['acc']:.4f} ({stats['images'] / stats['seconds']:.1f} img/s)",
              file=sys.stderr, flush=True)  # fmt: skip
