"""The restricted unpickler of the authors' checkpoints: their whole-module pickles read without
importing or running any of their code.

Only the globals the reference's files are known to name are accepted (:data:`ALLOWED`): pure
data constructors as themselves, every module class as an inert placeholder that keeps only its
pickled state; any other global is refused before it is looked up, so no ``__reduce__`` of
anything else runs. :func:`reference_state` then reads the tensors off the placeholders.
"""

from __future__ import annotations

import collections
import pickle
import types
from pathlib import Path

import torch

from fer.errors import FerError

# Every global the reference's checkpoint files name (facts measured on re-created models, plain
# and in nn.DataParallel), and torch.device, which a DataParallel saved on a GPU records.
MODULE_CLASSES = frozenset(
    {
        "package.cbam.BasicConv",
        "package.cbam.CBAM",
        "package.cbam.ChannelGate",
        "package.cbam.ChannelPool",
        "package.cbam.Flatten",
        "package.cbam.SpatialGate",
        "package.resnet_cbam.Resnet",
        "package.model1.ResNet",
        "package.resnet_cbam1.BasicBlock",
        "package.transformer_layer.CausalSelfAttention",
        "package.transformer_layer.GELU2",
        "package.transformer_layer.my_Block_2",
        "torch.nn.modules.activation.ReLU",
        "torch.nn.modules.batchnorm.BatchNorm1d",
        "torch.nn.modules.batchnorm.BatchNorm2d",
        "torch.nn.modules.container.Sequential",
        "torch.nn.modules.conv.Conv2d",
        "torch.nn.modules.dropout.Dropout",
        "torch.nn.modules.linear.Linear",
        "torch.nn.modules.normalization.LayerNorm",
        "torch.nn.modules.pooling.AdaptiveAvgPool2d",
        "torch.nn.modules.pooling.AdaptiveMaxPool2d",
        "torch.nn.modules.pooling.MaxPool2d",
        "torch.nn.parallel.data_parallel.DataParallel",
        "torchvision.models.resnet.BasicBlock",
    }
)
DATA_GLOBALS = {  # pure data constructors, used as they are
    "collections.OrderedDict": collections.OrderedDict,
    "__builtin__.set": set,
    "builtins.set": set,
    "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
    "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
    "torch.device": torch.device,
}
# torch.FloatStorage / torch.LongStorage are resolved by torch.load itself, as storage types.
ALLOWED = MODULE_CLASSES | set(DATA_GLOBALS) | {"torch.FloatStorage", "torch.LongStorage"}

ROOTS = {"global": "package.resnet_cbam.Resnet", "roi": "package.model1.ResNet"}
NAMES = {"global": "Global Net", "roi": "Global-ROI Net"}


class Inert:
    """What a module class of the pickle becomes: an object that only keeps its pickled state."""

    _fer_name = "?"

    def __setstate__(self, state):
        self.__dict__["_fer_state"] = state

    def __call__(self, *args, **kwargs):  # an inert object is never run
        raise FerError(f"{self._fer_name}: a placeholder of the reference's pickle cannot run")


def _placeholder(qualified: str) -> type:
    module, _, name = qualified.rpartition(".")
    return type(name, (Inert,), {"__module__": module, "_fer_name": qualified})


class _Unpickler(pickle.Unpickler):
    """Resolves only :data:`ALLOWED` globals: data constructors as themselves, module classes
    as :class:`Inert` placeholders; anything else is refused before it is looked up."""

    def find_class(self, module: str, name: str):
        qualified = f"{module}.{name}"
        if qualified in DATA_GLOBALS:
            return DATA_GLOBALS[qualified]
        if qualified in MODULE_CLASSES:
            return _placeholder(qualified)
        raise pickle.UnpicklingError(f"REFUSED:{qualified}")


def _restricted_load(handle, **kwargs):
    """``pickle.load`` through :class:`_Unpickler` (torch's legacy format reads its header so)."""
    return _Unpickler(handle, **kwargs).load()


# What torch.load gets as its pickle_module: every pickle it reads goes through _Unpickler.
RESTRICTED = types.SimpleNamespace(Unpickler=_Unpickler, load=_restricted_load, __name__="fer")


def read_pickle(path: Path):
    """The root object of a reference checkpoint, unpickled with :class:`_Unpickler` (CPU)."""
    try:
        return torch.load(path, map_location="cpu", pickle_module=RESTRICTED, weights_only=False)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if text.startswith("REFUSED:"):
            refused = text.removeprefix("REFUSED:")
            raise FerError(
                f"{path}: refused: the pickle names {refused}, which no reference checkpoint "
                "names (nothing of it was run)"
            ) from None
        raise FerError(f"{path}: not a readable checkpoint ({text.splitlines()[0]})") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FerError(f"{path}: not a readable PyTorch checkpoint ({reason})") from None


def _tensors(obj, prefix: str, path: Path) -> dict[str, torch.Tensor]:
    state = getattr(obj, "_fer_state", None)
    if not isinstance(state, dict):
        raise FerError(f"{path}: {prefix or 'the root'} is not a pickled module")
    skip = set(state.get("_non_persistent_buffers_set") or ())
    out = {}
    for kind in ("_parameters", "_buffers"):
        for name, value in (state.get(kind) or {}).items():
            if value is None or name in skip:
                continue
            if not isinstance(value, torch.Tensor):
                raise FerError(f"{path}: {prefix}{name} is a {type(value).__name__}, not a tensor")
            out[prefix + name] = value.detach().clone()
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out |= _tensors(child, f"{prefix}{name}.", path)
    return out


def reference_state(path: Path, arch: str) -> tuple[dict[str, torch.Tensor], bool]:
    """The reference model's tensors by its own names (``module.`` stripped), and whether it
    was inside ``nn.DataParallel``; a file of the other architecture is a FerError."""
    root = read_pickle(path)
    name = getattr(root, "_fer_name", type(root).__name__)
    wrapped = name == "torch.nn.parallel.data_parallel.DataParallel"
    if wrapped:
        root = ((getattr(root, "_fer_state", None) or {}).get("_modules") or {}).get("module")
        name = getattr(root, "_fer_name", type(root).__name__)
    if name != ROOTS[arch]:
        other = next((a for a, r in ROOTS.items() if r == name), None)
        what = f"the {NAMES[other]} ({name})" if other else name
        raise FerError(
            f"{path}: holds {what}; --arch {arch} expects the {NAMES[arch]} ({ROOTS[arch]})"
        )
    return _tensors(root, "", path), wrapped
