"""Command-line pieces the verbs share: number types that fail the way argparse does (one line
naming the option), the common options, and a help formatter that shows every default.

A bad number never reaches the code: ``fer demo --size 0`` stops with
``fer demo: error: argument --size: expected an integer >= 48, got 0``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


class HelpFormatter(argparse.HelpFormatter):
    """``(default: X)`` after each option that has one; paragraphs of the description and epilog
    wrapped, except lists (lines that start with spaces), which are kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text, default = action.help or "", action.default
        unset = default is None or default is False or default in ([], "", argparse.SUPPRESS)
        if "%(default)" in text or unset or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for block in text.split("\n\n"):
            lines = block.splitlines()
            if any(line.startswith(" ") for line in lines[1:]) or block.startswith(" "):
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(super()._fill_text(block, width, indent))
        return "\n\n".join(paragraphs)


def parser(prog: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` for a ``fer`` verb, with :class:`HelpFormatter`."""
    return argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=HelpFormatter
    )


def integer(least: int | None = None, most: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer within [least, most]."""
    return _number(int, "an integer", least, most)


def number(least: float | None = None, most: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite number within [least, most]."""
    return _number(float, "a number", least, most)


def _number(kind, word: str, least, most):
    bounds = " and ".join(f"{op} {v}" for op, v in ((">=", least), ("<=", most)) if v is not None)
    wanted = f"{word} {bounds}".strip()

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if (
            (kind is float and not math.isfinite(value))
            or (least is not None and value < least)
            or (most is not None and value > most)
        ):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text}")
        return value

    parse.__name__ = wanted  # argparse names the type in its messages
    return parse


def integer_or_auto(least: int = 0) -> Callable[[str], int | str]:
    """An argparse type: ``auto`` or an integer >= ``least``."""
    whole = integer(least)
    wanted = f"'auto' or {whole.__name__}"

    def parse(text: str):
        if text == "auto":
            return text
        try:
            return whole(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None

    parse.__name__ = wanted
    return parse


def checked(parse: Callable, name: str) -> Callable[[str], object]:
    """An argparse type from a parser that raises FerError (e.g. ``Fusion.parse``): its message
    becomes argparse's one-line ``argument --x: ...`` error. ``name`` is what the value is."""
    from fer.errors import FerError

    def convert(text: str):
        try:
            return parse(text)
        except FerError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


def add_fusion_weights(p: argparse.ArgumentParser, default, what: str) -> None:
    """``--fusion-weights roi=W,global=W``: a :class:`fer.fusion.Fusion` (``default``: one, or
    None where absent means something else, which ``what`` says)."""
    from fer.fusion import Fusion

    kind = checked(Fusion.parse, "roi=W,global=W")
    p.add_argument("--fusion-weights", type=kind, default=default, help=what)


def add_device(p: argparse.ArgumentParser, what: str = "torch device") -> None:
    """``--device``: auto (CUDA when visible), cpu, cuda or cuda:N."""
    help = f"{what}: auto (cuda when visible), cpu, cuda or cuda:N"
    p.add_argument("--device", default="auto", help=help)


def add_threads(p: argparse.ArgumentParser, help: str = "CPU threads for torch (default: torch's)"):
    """``--threads``: torch's CPU threads (default: torch's own choice)."""
    p.add_argument("--threads", type=integer(1), help=help)


def add_stored_sizes(p: argparse.ArgumentParser) -> None:
    """``--chip-size`` and ``--crop-size``: the sides of the stored face chip and ROI crops
    (fer.contracts's bounds; a model's input sides are its recipe's face_size / roi_size)."""
    from fer.contracts import MIN_CHIP, MIN_SIDE

    chip = "side of the stored aligned face chip, pixels (reference 224)"
    p.add_argument("--chip-size", type=integer(MIN_CHIP), default=224, help=chip)
    crop = "side of the stored eye / nose / mouth crops, pixels (reference 90)"
    p.add_argument("--crop-size", type=integer(MIN_SIDE), default=90, help=crop)


def add_input_sizes(p: argparse.ArgumentParser, what: str) -> None:
    """``--face-size`` and ``--roi-size``: a model's input sides (benchmarks build models)."""
    from fer.contracts import MIN_SIDE

    p.add_argument("--face-size", type=integer(MIN_SIDE), default=224, help=f"face input {what}")
    p.add_argument("--roi-size", type=integer(MIN_SIDE), default=90, help=f"ROI input {what}")


def add_no_progress(p: argparse.ArgumentParser) -> None:
    """``--no-progress``: no progress bar on stderr (by default shown on a terminal)."""
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
