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
