"""Model registry and checkpoints: ``create_model``, ``list_models``, ``save/load_checkpoint``
(imported as ``fer.models.<name>``: :mod:`fer.models` loads this module on first use, and its
``__all__`` lists the public names).

Contract: docs/design.md "Models". Checkpoints are ``{"state_dict", "meta"}`` dicts read with
``torch.load(weights_only=True)``: never pickled modules.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from fer import __version__
from fer.atomic import save_torch
from fer.contracts import MIN_SIDE
from fer.errors import FerError
from fer.models.global_net import GlobalNet
from fer.models.roi_net import GlobalRoiNet
from fer.models.weights import load_finetune, resolve_weights

_MODELS: dict[str, Callable[..., nn.Module]] = {}
META_REQUIRED = ("model", "classes", "face_size", "roi_size", "fer_version")
_PLAIN = (str, int, float, bool, type(None))


def register_model(name: str) -> Callable:
    """Decorator: register ``fn(num_classes, face_size, roi_size) -> nn.Module`` as ``name``."""

    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} already registered")
        _MODELS[name] = fn
        return fn

    return decorate


@register_model("global")
def _global(num_classes: int, face_size: int, roi_size: int) -> nn.Module:
    return GlobalNet(num_classes, face_size, roi_size)


@register_model("roi")
def _roi(num_classes: int, face_size: int, roi_size: int) -> nn.Module:
    return GlobalRoiNet(num_classes, face_size, roi_size)


def list_models() -> list[str]:
    """Registered model names, in registration order (``["global", "roi"]``)."""
    return list(_MODELS)


def create_model(
    name: str,
    num_classes: int,
    face_size: int = 224,
    roi_size: int = 90,
    weights: str | os.PathLike | None = None,
) -> nn.Module:
    """Build model ``name`` for ``num_classes`` outputs and the given input sizes.

    ``weights``: None/"none" (random init), "imagenet" (torch hub cache, no download), a path
    to a torchvision ResNet-18 state_dict, or a checkpoint of ``fer train`` to fine-tune from
    (all but its class head); see fer.models.weights. What was loaded is in ``model.fer_init``.
    """
    if name not in _MODELS:
        raise FerError(f"unknown model {name!r}: expected one of {', '.join(_MODELS)}")
    for what, value, least in (
        ("num_classes", num_classes, 2),
        ("face_size", face_size, MIN_SIDE),
        ("roi_size", roi_size, MIN_SIDE),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise FerError(f"model {name!r}: {what} must be an integer >= {least}, got {value!r}")
    model = _MODELS[name](num_classes, face_size, roi_size)
    init = resolve_weights(weights)
    model.fer_init = None
    if init is not None and init.meta is None:
        n = model.load_backbone(init.state, source=init.source)
        model.fer_init = {"weights": init.source, "kind": "resnet18", "tensors": n}
    elif init is not None:
        n = load_finetune(model, init)
        keep = (
            "dataset",
            "classes",
            "fold",
            "best_epoch",
            "best_val_acc",
            "config_hash",
            "git_sha",
            "selected_on_test",
        )
        upstream = {f"from_{k}": init.meta[k] for k in keep if k in init.meta}
        model.fer_init = {
            "weights": init.source,
            "kind": "fer checkpoint",
            "tensors": n,
            **upstream,
        }
    return model


def example_inputs(model: nn.Module, batch_size: int = 2, device="cpu") -> dict[str, torch.Tensor]:
    """Random ``forward`` keyword inputs at the model's sizes (face, and ROIs if it uses them)."""
    f, r = model.face_size, model.roi_size
    inputs = {"face": torch.randn(batch_size, 3, f, f, device=device)}
    if model.uses_rois:
        inputs.update(
            {k: torch.randn(batch_size, 3, r, r, device=device) for k in ("eye", "nose", "mouth")}
        )
    return inputs


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    # FlopCounterMode has no formula for the CPU flash-attention kernel: count QK^T and AV
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def gflops_per_image(model: nn.Module) -> float:
    """Forward GFLOPs for one image (multiply-add = 2; conv, linear, matmul, attention), as the
    reference's §8 counts them: 3.63 (global, 224) and 12.62 (roi, 224 + 3×90)."""
    custom = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=custom) as counter:
        model(**example_inputs(model, 1, device=next(model.parameters()).device))
    model.train(was_training)
    return counter.get_total_flops() / 1e9


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside DataParallel/DDP (``.module``) or torch.compile (``._orig_mod``)."""
    for attr in ("module", "_orig_mod", "module"):
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module):
            model = inner
    return model


def _check_plain(value, where: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"checkpoint meta key {k!r} at {where} is not a string")
            _check_plain(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise ValueError(f"checkpoint meta {where} is a {type(value).__name__}; use plain types")


def save_checkpoint(path: str | os.PathLike, model: nn.Module, meta: dict) -> dict:
    """Atomically write ``{"state_dict", "meta"}`` to ``path``; returns the meta written.

    ``model``, ``face_size``, ``roi_size`` and ``fer_version`` are filled from the model when
    absent; ``classes`` is required and must have one name per output. Meta must hold plain
    types only (so ``weights_only`` loading accepts it).
    """
    model = _unwrap(model)
    full = {
        "model": model.arch,
        "face_size": model.face_size,
        "roi_size": model.roi_size,
        "fer_version": __version__,
        **meta,
    }
    classes = full.get("classes")
    if not isinstance(classes, list | tuple) or len(classes) != model.num_classes:
        raise ValueError(f"meta['classes'] must list {model.num_classes} names, got {classes!r}")
    if (full["model"], full["face_size"], full["roi_size"]) != (
        model.arch,
        model.face_size,
        model.roi_size,
    ):
        raise ValueError(
            f"meta {full['model'], full['face_size'], full['roi_size']} "
            f"does not describe the model {model.arch, model.face_size, model.roi_size}"
        )
    full["classes"] = list(classes)
    _check_plain(full, "meta")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch({"state_dict": state, "meta": full}, path)
    return full


def _read_checkpoint(path: Path, map_location) -> tuple[dict, dict]:
    if not path.is_file():
        raise FerError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # UnpicklingError for pickled objects; zip/IO errors otherwise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FerError(
            f"checkpoint {path} refused: it is not a plain {{state_dict, meta}} file loadable "
            f"with weights_only=True (pickled modules/objects are never loaded): {first}"
        ) from exc
    if not (
        isinstance(ckpt, dict)
        and isinstance(ckpt.get("state_dict"), dict)
        and isinstance(ckpt.get("meta"), dict)
    ):
        raise FerError(f"checkpoint {path}: expected a dict with 'state_dict' and 'meta'")
    missing = [k for k in META_REQUIRED if k not in ckpt["meta"]]
    if missing:
        raise FerError(f"checkpoint {path}: meta lacks {', '.join(missing)}")
    classes = ckpt["meta"]["classes"]
    if not isinstance(classes, list | tuple) or not all(isinstance(c, str) for c in classes):
        raise FerError(
            f"checkpoint {path}: meta 'classes' must be a list of names, got {classes!r}"
        )
    return ckpt["state_dict"], ckpt["meta"]


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model from a checkpoint's meta and load its weights; returns (model, meta).

    The model is returned in eval mode, on ``map_location`` when that names a device. Pickled
    objects, missing meta and a state_dict that does not fit the model raise FerError.
    """
    path = Path(path)
    state, meta = _read_checkpoint(path, map_location)
    try:
        with torch.device("meta"):  # no random init to overwrite: the weights are assigned
            model = create_model(
                meta["model"], len(meta["classes"]), meta["face_size"], meta["roi_size"]
            )
    except FerError as exc:
        raise FerError(f"checkpoint {path}: {exc}") from exc
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()]
        detail = "; ".join(lines)[:300]
        raise FerError(
            f"checkpoint {path}: state_dict does not fit model {meta['model']!r} "
            f"with {len(meta['classes'])} classes: {detail}"
        ) from exc
    if isinstance(map_location, str | torch.device):
        model.to(map_location)
    return model.eval(), meta
