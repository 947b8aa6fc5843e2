"""The one canonical label order, its spellings, and the scoring protocols.

Everything that needs to know about classes asks this module: adapters map native spellings
with :func:`canonical_name` and their publisher's integer codes (each adapter owns its table) with
:func:`from_code`; each declares the classes it can label when it registers. The evaluator scores
cross-dataset targets with :func:`scored_classes`.

The canonical order is the reference's (AffectNet expression codes 0-7). A model's output index
``i`` means ``classes[i]`` where ``classes`` is the list in its checkpoint metadata: the canonical
names of the data set it was trained on, in canonical order.
"""

from __future__ import annotations

CANONICAL: tuple[str, ...] = (
    "neutral",
    "happy",
    "sad",
    "surprise",
    "fear",
    "disgust",
    "anger",
    "contempt",
)

# Native label spellings the publishers use, lower-cased, -> canonical name.
SYNONYMS: dict[str, str] = {
    "neutral": "neutral",
    "ne": "neutral",
    "normal": "neutral",
    "happy": "happy",
    "happiness": "happy",
    "ha": "happy",
    "sad": "sad",
    "sadness": "sad",
    "sa": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "su": "surprise",
    "fear": "fear",
    "fe": "fear",
    "afraid": "fear",
    "disgust": "disgust",
    "di": "disgust",
    "disgusted": "disgust",
    "anger": "anger",
    "angry": "anger",
    "an": "anger",
    "contempt": "contempt",
}

SEVEN = CANONICAL[:7]

# Named evaluation protocols: classes dropped from a target on top of the general rule.
# "reference" reproduces the reference code (JAFFE scored without Neutral, ref doc §4.3).
PROTOCOLS: dict[str, dict[str, tuple[str, ...]]] = {
    "shared": {},
    "reference": {"jaffe": ("neutral",)},
}


class LabelError(ValueError):
    """A label that is not one of the known spellings or codes."""


def canonical_name(native: str) -> str:
    """Canonical name of a native label spelling (``'Angry'``, ``'SA'``, ``'surprised'``)."""
    key = str(native).strip().lower()
    if key not in SYNONYMS:
        raise LabelError(f"unknown label {native!r}; expected one of {sorted(SYNONYMS)}")
    return SYNONYMS[key]


def canonical_index(name: str) -> int:
    """Canonical index (0-7) of a label given by any known spelling."""
    return CANONICAL.index(canonical_name(name))


def from_code(table: dict[int, str], code: int, publisher: str) -> str:
    """Canonical name of a publisher's integer label ``code`` in its adapter's ``table``."""
    if int(code) not in table:
        raise LabelError(
            f"unknown {publisher} label code {code!r}; expected one of {sorted(table)}"
        )
    return table[int(code)]


def scored_classes(
    model_classes: list[str] | tuple[str, ...],
    target_classes: list[str] | tuple[str, ...],
    target: str | None = None,
    protocol: str = "shared",
) -> list[str]:
    """Classes a model is scored on for a target: those both share, minus the protocol's drops.

    Logits of the other model classes are excluded before argmax; target images whose label is
    not in the returned list are left out (and counted) by the evaluator.
    """
    if protocol not in PROTOCOLS:
        raise LabelError(
            f"unknown evaluation protocol {protocol!r}; expected one of {list(PROTOCOLS)}"
        )
    dropped = set(PROTOCOLS[protocol].get(target or "", ()))
    shared = set(model_classes) & set(target_classes)
    return [c for c in CANONICAL if c in shared and c not in dropped]
