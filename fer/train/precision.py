"""The training step's precision: the recipe's ``amp`` resolved for the device at hand.

``amp: auto`` (the default) runs bf16 autocast only where the device computes bf16 natively and
fp32 everywhere else; ``bf16`` and ``none`` force one or the other. Emulated bf16 is a slowdown,
not a speed-up: ``benchmarks/bench_train.py`` measured the bf16 + channels_last step at 0.11x
(Global Net) and 0.08x (Global-ROI Net) of the fp32 step on a 2-core AMD EPYC with AVX2 only, and
0.44x (Global-ROI Net) on a Xeon with AVX-512 but neither AVX512_BF16 nor AMX. Native bf16 means a
CUDA device that supports it without emulation, or an x86 CPU with AVX512_BF16 or AMX tiles (what
oneDNN's bf16 kernels use); any other device (an ARM CPU, MPS) gets fp32, the choice that is never
slower than the reference's step.

The resolved choice is part of a run's resume fingerprint (a state saved in bf16 is not resumed in
fp32: the run starts over, saying why) and is recorded in ``run.json`` with the reason.

The memory format follows the precision (:func:`memory_format`, recipe ``channels_last: null``,
the default): channels_last for a bf16 step and on a GPU, where oneDNN's and cuDNN's fast kernels
want it; NCHW for an fp32 step on the CPU, where channels_last is mostly a slowdown. Measured with
``benchmarks/bench_train.py``'s step on 2 cores of an AMD EPYC with AVX-512 (fp32 channels_last /
fp32 NCHW): Global Net 1.14x at 224 px but 0.83x at 48 px, Global-ROI Net 0.80x at 224 / 90 px
and 0.88x at 48 / 24 px; bf16 channels_last / bf16 NCHW 1.11x, 1.09x, 1.08x, 1.00x. So the
default step is never slower than the reference's fp32 NCHW one where the CPU has no native bf16.
The format changes float rounding only; ``run.json`` records it, and it is a function of the
recipe, the precision and the device type, which the resume fingerprint holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Precision:
    """What one run computes in: ``bf16`` autocast or not, and why."""

    bf16: bool
    why: str

    @property
    def name(self) -> str:
        """``bf16`` or ``fp32``: the value run.json and the resume fingerprint record."""
        return "bf16" if self.bf16 else "fp32"


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` computes bf16 natively, and the fact that says so."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported(including_emulation=False)
        name = torch.cuda.get_device_name(device)
        return ok, f"{name} {'supports' if ok else 'lacks'} native bf16"
    if device.type == "cpu":
        found = [
            flag
            for flag, test in (
                ("AVX512_BF16", torch.cpu._is_avx512_bf16_supported),
                ("AMX", torch.cpu._is_amx_tile_supported),
            )
            if test()
        ]
        if found:
            return True, f"the CPU has {' and '.join(found)}"
        return False, "the CPU has neither AVX512_BF16 nor AMX (bf16 would be emulated)"
    return False, f"no native bf16 known for device type {device.type!r}"


def resolve(amp: str, device: torch.device) -> Precision:
    """The precision that recipe key ``amp`` (auto, bf16 or none) gives on ``device``."""
    if amp == "bf16":
        return Precision(True, "amp: bf16 (forced)")
    if amp == "none":
        return Precision(False, "amp: none (forced)")
    if amp != "auto":
        raise ValueError(f"amp {amp!r}: expected auto, bf16 or none")
    ok, fact = native_bf16(device)
    return Precision(ok, f"amp: auto, {fact}")


@dataclass(frozen=True)
class MemoryFormat:
    """The memory format of one run's model and inputs, and why."""

    channels_last: bool
    why: str

    @property
    def name(self) -> str:
        """``channels_last`` or ``nchw``: the value run.json records."""
        return "channels_last" if self.channels_last else "nchw"


def memory_format(setting: bool | None, precision: Precision, device: torch.device) -> MemoryFormat:
    """The format recipe key ``channels_last`` (true, false, or null: chosen) gives a run in
    ``precision`` on ``device``."""
    if setting is not None:
        return MemoryFormat(bool(setting), f"channels_last: {str(setting).lower()} (forced)")
    if precision.bf16:
        return MemoryFormat(True, "channels_last: null, a bf16 step")
    if device.type == "cuda":
        return MemoryFormat(True, "channels_last: null, a GPU step")
    return MemoryFormat(False, f"channels_last: null, an fp32 step on the {device.type.upper()}")
