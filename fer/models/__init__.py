"""The models: registry and checkpoints (:mod:`fer.models.registry`: ``create_model``,
``list_models``, ``register_model``, ``save_checkpoint``, ``load_checkpoint``…), the two
networks, their inference core (:mod:`fer.models.inference`) and ONNX graphs
(:mod:`fer.models.graphs`).

``fer.models.create_model`` and the other registry names load torch and torchvision (about 2 s
on 2 cores) on first use, not on ``import fer.models``: ``fer predict`` with cached graphs runs its
checkpoints' metadata and graphs without them (:mod:`fer.models.graphs`).
"""

from __future__ import annotations

import importlib

__all__ = [
    "META_REQUIRED",
    "create_model",
    "example_inputs",
    "gflops_per_image",
    "list_models",
    "load_checkpoint",
    "register_model",
    "save_checkpoint",
]


def __getattr__(name: str):
    # only the registry's names: ``from fer.models import graphs`` asks here first, then imports
    # the submodule, and must not load torch on the way
    if name not in __all__:
        raise AttributeError(f"module 'fer.models' has no attribute {name!r}")
    return getattr(importlib.import_module("fer.models.registry"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
