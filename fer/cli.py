"""The ``fer`` command: one verb per pipeline stage, each a module with ``main(argv)``.

``fer --log FILE <verb> ...`` sends everything the verb prints (and what libraries and worker
processes write to the same descriptors) to FILE; milestone lines (:mod:`fer.progress`: each
training epoch) also reach the terminal, prefixed by FILE, and when the verb fails its last line,
fer's one-line error, does too. The workflow runs every job this way.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import io
import os
import signal
import sys
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path

from fer import __version__, progress
from fer.errors import FerError, FerWarning

# verb -> (module, one-line help). Modules are imported only when their verb runs, so that
# ``fer --help`` stays fast (no torch import).
VERBS: dict[str, tuple[str, str]] = {
    "demo": ("fer.demo", "generate the synthetic demo data set (deterministic from a seed)"),
    "manifest": ("fer.data.manifest", "list a data set in its publisher layout into a manifest"),
    "prepare": ("fer.preprocess.prepare", "detect, align and crop ROIs into prepared arrays"),
    "train": ("fer.train.cli", "train a Global Net or Global-ROI Net from prepared data"),
    "infer": (
        "fer.evaluate.infer_cli",
        "run both models once over a target into a prediction record",
    ),
    "evaluate": ("fer.evaluate.cli", "score one table cell from prediction records into a JSON"),
    "report": ("fer.report", "render the HTML report of every accuracy table"),
    "predict": ("fer.predict.cli", "predict expressions in images, folders and videos"),
    "pair": ("fer.predict.models", "write a models folder's fusion.json (the fused weights)"),
    "export": ("fer.predict.export", "export the fused pair as one ONNX or TorchScript graph"),
    "check-config": (
        "fer.config.check",
        "check workflow config files: YAML, schema, rules across keys; every problem at once",
    ),
    "fetch-weights": (
        "fer.models.fetch",
        "download (or copy) ResNet-18 ImageNet weights to the cache",
    ),
    "import-reference": ("fer.train.reference", "import the authors' checkpoint files, safely"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fer",
        description="Facial expression recognition by global and ROI features fused CNN "
        "(reproducible pipeline). Run `fer <verb> --help` for a verb's options.",
    )
    parser.add_argument("--version", action="version", version=f"fer {__version__}")
    parser.add_argument(
        "--log",
        metavar="FILE",
        help="write everything the verb prints to FILE; on failure also print its last line "
        "(the error) to the terminal",
    )
    sub = parser.add_subparsers(dest="verb", metavar="<verb>")
    for verb, (_, text) in VERBS.items():
        sub.add_parser(verb, help=text, add_help=False)
    return parser


class Terminated(BaseException):
    """SIGTERM (a scheduler's cancel or preemption), raised in the main thread like Ctrl-C's
    KeyboardInterrupt so that every ``with`` and ``finally`` cleans up on the way out."""


def _terminator(main_pid: int):
    """A SIGTERM handler raising :class:`Terminated` in process ``main_pid``; a forked worker
    that inherited it dies as SIGTERM means (the parent reports)."""

    def terminate(signum, frame):
        if os.getpid() != main_pid:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated()

    return terminate


def quiet_worker() -> None:
    """For a worker process (a pool initializer): Ctrl-C reaches the whole process group, and
    only the parent reports it; SIGTERM ends the worker at once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _unwind(exc: BaseException) -> None:
    """Let go of the interrupted frames now, so that what they hold (a progress bar, a staged
    file) is closed before the last line is printed, not after it."""
    traceback.clear_frames(exc.__traceback__)
    gc.collect()


def run_verb(verb: str, argv: list[str]) -> int:
    """Run one verb; a :class:`FerError` becomes ``error: <message>`` on stderr and exit 2.

    Every failure ends cleanly (docs/safety.md, rule 5): Ctrl-C prints ``interrupted`` and exits
    130, SIGTERM ``terminated`` and 143 (128 + the signal, as a shell reports them), a closed
    output pipe (``fer predict ... | head``) ends quietly; half-written files are removed by the
    writers' own cleanup (:mod:`fer.atomic`) on the way out."""
    try:
        previous = signal.signal(signal.SIGTERM, _terminator(os.getpid()))
    except ValueError:  # not the main thread (a library caller's): leave signals to it
        previous = None
    try:
        module = importlib.import_module(VERBS[verb][0])
        with warnings.catch_warnings():
            warnings.showwarning = _one_line(warnings.showwarning)
            return int(module.main(argv) or 0)
    except FerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        _unwind(exc)
        print(f"fer {verb}: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        _unwind(exc)
        print(f"fer {verb}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except BrokenPipeError:
        try:  # no second error when Python flushes stdout on the way out
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
        return 141
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _one_line(show):
    """``warnings.showwarning`` that prints a :class:`FerWarning` as one ``warning:`` line (no
    file, line or source) and leaves every other warning to ``show``."""

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, FerWarning):
            print(f"warning: {message}", file=file or sys.stderr, flush=True)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


@contextmanager
def _redirected(path: Path):
    """Point file descriptors 1 and 2 (and sys.stdout/err) at ``path``; yields the terminal's
    stderr as a writable file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "w", buffering=1, encoding="utf-8", errors="replace") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        terminal = os.fdopen(os.dup(saved[1]), "w", buffering=1)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            terminal.close()


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def run_logged(log: Path, verb: str, argv: list[str]) -> int:
    """:func:`run_verb` with its output in ``log``; a failure's last line also on the terminal."""
    try:
        with _redirected(log) as terminal:
            progress.to_terminal(terminal, f"{log}: ")
            try:
                rc = run_verb(verb, argv)
            except SystemExit as exc:  # argparse's usage errors, sys.exit in a verb
                rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
            except Exception:  # a bug: the traceback goes to the log, its last line out
                traceback.print_exc()
                rc = 1
            finally:
                progress.to_terminal(None)
            if rc != 0:
                print(f"{_last_line(log)} (log: {log})", file=terminal)
            return rc
    except OSError as exc:
        print(f"error: {log}: cannot write the log ({exc.strerror or exc})", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    log = None
    if argv[:1] == ["--log"] and len(argv) > 1:
        log, argv = Path(argv[1]), argv[2:]
    elif argv and argv[0].startswith("--log="):
        log, argv = Path(argv[0].removeprefix("--log=")), argv[1:]
    parser = build_parser()
    if not argv or argv[0] not in VERBS:
        parser.parse_args(argv or ["--help"])
        return 2
    if log is not None:
        return run_logged(log, argv[0], argv[1:])
    return run_verb(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
