"""Milestone lines that a person watching a long run should see.

:func:`say` prints to stderr, which ``fer --log FILE`` sends to the log; under ``--log`` it also
writes the line, prefixed by the log's path, to the terminal, so a workflow run shows each
training epoch (and where its log is) without flooding the screen with progress bars.
"""

from __future__ import annotations

import sys
from typing import TextIO

_terminal: TextIO | None = None
_prefix = ""


def to_terminal(stream: TextIO | None, prefix: str = "") -> None:
    """Copy later :func:`say` lines to ``stream`` (None: stop), each prefixed by ``prefix``."""
    global _terminal, _prefix
    _terminal, _prefix = stream, prefix


def say(text: str, stream: TextIO | None = None) -> None:
    """A milestone line: on ``stream`` (stderr by default), and on the terminal when the verb's
    output goes to a log."""
    print(text, file=stream or sys.stderr, flush=True)
    if _terminal is not None:
        print(f"{_prefix}{text}", file=_terminal, flush=True)
