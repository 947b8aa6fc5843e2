"""The declaration of one recipe key (:func:`key`) and what follows from it (:class:`KeySpec`):
JSON type checks, bounds and choices, the words of error messages and docs, the JSON-Schema.

:mod:`fer.train.recipe` declares every key with :func:`key`; nothing else here knows the keys.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from fer.errors import FerError


def key(
    default: Any,
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    open_below: bool = False,
    open_above: bool = False,
    choices: tuple[str, ...] = (),
    trains: bool = True,
    workflow_sets: bool = False,
):
    """Declare one recipe key: a dataclass field whose metadata holds its rules.

    ``minimum``/``maximum`` bound a number (each item of a list), exclusive with ``open_below`` /
    ``open_above``; ``choices`` lists a string's values. ``trains=False`` keeps a key out of the
    resume fingerprint (it does not change what is learned); ``workflow_sets`` marks metadata the
    workflow fills in, not a config key.
    """
    rules = {
        "help": help,
        "minimum": minimum,
        "maximum": maximum,
        "open_below": open_below,
        "open_above": open_above,
        "choices": tuple(choices),
        "trains": trains,
        "workflow_sets": workflow_sets,
    }
    return field(default=default, metadata=rules)


@dataclass(frozen=True)
class KeySpec:
    """One key's declaration, read off a dataclass field: its JSON kind and :func:`key` rules."""

    name: str
    kind: str  # integer | number | boolean | string
    nullable: bool
    length: int | None  # None: a scalar; -1: a list of any length; n: a list of exactly n
    default: Any
    help: str
    minimum: float | None
    maximum: float | None
    open_below: bool
    open_above: bool
    choices: tuple[str, ...]
    trains: bool
    workflow_sets: bool

    def coerce(self, value, where: str):
        """The value a JSON value becomes (lists → tuples, ints → floats where numbers)."""
        if value is None and self.nullable:
            return None
        if self.length is not None:
            if not isinstance(value, list) or not all(_is(self.kind, v) for v in value):
                bad_value(where, self.name, value, self.expected())
            if self.length >= 0 and len(value) != self.length:
                bad_value(where, self.name, value, self.expected())
            return tuple(float(v) if self.kind == "number" else v for v in value)
        if not _is(self.kind, value):
            bad_value(where, self.name, value, self.expected())
        return float(value) if self.kind == "number" else value

    def check(self, value, where: str) -> None:
        """Bounds and choices of a coerced value."""
        if value is None:
            return
        items = value if self.length is not None else (value,)
        if self.choices and value not in self.choices:
            bad_value(where, self.name, value, self.expected())
        for item in items if self.kind in ("integer", "number") else ():
            if not (math.isfinite(item) and self._within(item)):
                bad_value(where, self.name, list(value) if self.length else value, self.expected())

    def _within(self, x: float) -> bool:
        lo, hi = self.minimum, self.maximum
        ok_lo = lo is None or (x > lo if self.open_below else x >= lo)
        return ok_lo and (hi is None or (x < hi if self.open_above else x <= hi))

    def bounds(self) -> str:
        """The range in words: ``>= 1``, ``in (0, 0.5]``."""
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            left, right = "(" if self.open_below else "[", ")" if self.open_above else "]"
            return f"in {left}{_num(lo)}, {_num(hi)}{right}"
        if lo is not None:
            return f"{'>' if self.open_below else '>='} {_num(lo)}"
        if hi is not None:
            return f"{'<' if self.open_above else '<='} {_num(hi)}"
        return ""

    def expected(self) -> str:
        """What a valid value looks like, for error messages and the docs."""
        word = {
            "integer": "an integer",
            "number": "a number",
            "boolean": "true or false",
            "string": "a string",
        }[self.kind]
        if self.choices:
            word = f"one of {list(self.choices)}"
        if self.length is not None:
            count = "" if self.length < 0 else f"{self.length} "
            word = f"a list of {count}{self.kind}s"
        bounds = self.bounds()
        text = f"{word} {bounds}".strip()
        return f"null or {text}" if self.nullable else text

    def schema(self) -> dict:
        """The key's JSON-Schema (2020-12) property."""
        bounds = {}
        for name, value, exclusive in (
            ("minimum", self.minimum, self.open_below),
            ("maximum", self.maximum, self.open_above),
        ):
            if value is not None:
                bounds[f"exclusive{name.title()}" if exclusive else name] = value
        if self.length is not None:
            prop = {"type": "array", "items": {"type": self.kind, **bounds}}
            if self.length >= 0:
                prop |= {"minItems": self.length, "maxItems": self.length}
        elif self.choices:
            prop = {"enum": list(self.choices)}
        else:
            prop = {"type": [self.kind, "null"] if self.nullable else self.kind, **bounds}
        return prop | {"description": self.help}


_KINDS = {int: "integer", float: "number", bool: "boolean", str: "string"}


def spec_of(f: dataclasses.Field, hint) -> KeySpec:
    """The :class:`KeySpec` of a field declared with :func:`key` and its resolved type hint."""
    nullable, length = False, None
    if isinstance(hint, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable, hint = True, args[0]
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        length = -1 if args[-1] is Ellipsis else len(args)
        hint = args[0]
    return KeySpec(f.name, _KINDS[hint], nullable, length, f.default, **f.metadata)


def _num(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def default_text(value) -> str:
    """A default as the docs write it: ``null``, ``true``, ``[1, 2]``, ``\"ce\"``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(_num(v) for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else _num(value)


def bad_value(where: str, name: str, value, expected: str):
    """Raise the one-line error of a bad recipe value."""
    raise FerError(f"{where}: recipe key {name!r} is {value!r}; expected {expected}")


def _is(kind: str, value) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, {"boolean": bool, "string": str}[kind])
