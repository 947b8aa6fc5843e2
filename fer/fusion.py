"""The fused score, one value: ``w_roi · z_roi + w_global · z_global`` on the raw logits of a face
with ROIs, the Global Net's logits alone on a face without (reference §5.1).

:class:`Fusion` is the one place that parses, checks, writes and applies the weights. Every
consumer goes through it: scoring a cell and the validation grid (:mod:`fer.evaluate`),
``fer pair`` and ``fusion.json``, ``fer predict`` and the exported graph (:mod:`fer.predict`), the
report and the workflow's rules. Changing the fused score is a change to this file and its test.

Nothing here imports numpy or torch at module level: the workflow reads it at planning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fer.errors import FerError

# the validation search's grid: w_roi in 0, 0.05, …, 1 (w_global = 1 − w_roi)
GRID = tuple(round(0.05 * i, 2) for i in range(21))


@dataclass(frozen=True)
class Fusion:
    """The weights of the fused logits; each in [0, 1], not both 0.

    >>> Fusion.parse("roi=0.6,global=0.4").to_dict()
    {'roi': 0.6, 'global': 0.4}
    """

    w_roi: float = 0.55  # the reference's weights (§5.1)
    w_global: float = 0.45

    def __post_init__(self):
        given = f"roi={self.w_roi!r}, global={self.w_global!r}"
        for name in ("w_roi", "w_global"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FerError(f"fusion weights {given}: expected numbers")
            object.__setattr__(self, name, float(value))
        ok = all(math.isfinite(w) and 0 <= w <= 1 for w in (self.w_roi, self.w_global))
        if not ok or self.w_roi + self.w_global == 0:
            raise FerError(f"fusion weights {given}: expected each in [0, 1], not both 0")

    def __str__(self) -> str:
        """The command-line form, ``roi=0.55,global=0.45`` (what :meth:`parse` reads)."""
        return f"roi={self.w_roi!r},global={self.w_global!r}"

    @classmethod
    def parse(cls, text: str) -> Fusion:
        """``"roi=0.55,global=0.45"`` (``--fusion-weights``); both keys, numbers."""
        found: dict[str, float] = {}
        for part in str(text).split(","):
            key, sep, value = part.partition("=")
            try:
                found[key.strip()] = float(value)
            except ValueError:
                sep = ""
            if not sep:
                raise FerError(f"fusion weights {text!r}: expected roi=W,global=W with numbers")
        if set(found) != {"roi", "global"}:
            raise FerError(f"fusion weights {text!r}: expected exactly the keys roi and global")
        return cls(found["roi"], found["global"])

    @classmethod
    def from_dict(cls, spec, where: str | None = None) -> Fusion:
        """``{"roi": w, "global": w}`` (``fusion.json``, a result's provenance); anything else
        is a FerError, prefixed with ``where`` (the file) when given."""
        prefix = f"{where}: " if where else ""
        try:
            return cls(spec["roi"], spec["global"])
        except (KeyError, TypeError, IndexError) as exc:
            raise FerError(f"{prefix}expected {{'roi': W, 'global': W}}, got {spec!r}") from exc
        except FerError as exc:
            raise FerError(f"{prefix}{exc}") from None

    @classmethod
    def from_config(cls, evaluate: dict) -> Fusion:
        """The workflow config's ``evaluate.fusion_roi`` / ``evaluate.fusion_global`` (each
        defaulting to :data:`REFERENCE`'s)."""
        return cls(
            evaluate.get("fusion_roi", REFERENCE.w_roi),
            evaluate.get("fusion_global", REFERENCE.w_global),
        )

    def to_dict(self) -> dict[str, float]:
        """``{"roi": w, "global": w}``: how result JSONs and ``fusion.json`` record it."""
        return {"roi": self.w_roi, "global": self.w_global}

    @property
    def roi_share(self) -> float:
        """``w_roi / (w_roi + w_global)``: the fused argmax depends on this ratio only."""
        return self.w_roi / (self.w_roi + self.w_global)

    def combine(self, z_roi, z_global):
        """``w_roi · z_roi + w_global · z_global`` for faces that all have ROIs: numpy arrays or
        torch tensors alike (the exported graph bakes it in)."""
        return self.w_roi * z_roi + self.w_global * z_global

    def apply(self, z_roi, z_global, has_roi):
        """Fused logits (float64 numpy) of a batch: :meth:`combine` where ``has_roi``, else
        ``z_global``; rows of ``z_roi`` without ROIs are ignored (they may hold NaN)."""
        import numpy as np

        z = np.array(z_global, dtype=np.float64, copy=True)
        m = np.asarray(has_roi, dtype=bool)
        z[m] = self.combine(np.asarray(z_roi, dtype=np.float64)[m], z[m])
        return z

    @staticmethod
    def grid() -> list[Fusion]:
        """The weights the validation search tries (:data:`GRID`), w_global = 1 − w_roi."""
        return [Fusion(w, 1.0 - w) for w in GRID]


REFERENCE = Fusion()  # the reference's 0.55 / 0.45: every default in fer is this value
