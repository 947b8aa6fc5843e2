"""``fer check-config FILE...``: is a workflow config valid YAML? Where it is not, the file, line
and column of the first problem, in one line.

Snakemake reads ``--configfile`` files before the workflow runs and then reports only "Config
file is not valid JSON or YAML"; this names the place. Keys, types and recipes are checked by
``snakemake -n --configfile=FILE``, which stops at the first wrong one with one line.

A config is parsed with limits (docs/safety.md, rule 4): a regular file of at most 1 MiB, nested
at most :data:`MAX_DEPTH` levels, holding at most :data:`MAX_VALUES` values once its YAML aliases
are expanded (an "alias bomb" of a few lines would otherwise expand to billions when the
workflow validates and hashes it). The workflow checks the same limits at planning.
"""

from __future__ import annotations

from pathlib import Path

from fer import cliargs
from fer.errors import FerError
from fer.paths import read_small

MAX_DEPTH = 64
MAX_VALUES = 100_000


def structure_problem(data, where: str) -> str | None:
    """Why a parsed config is refused (too deep, or too many values with aliases expanded: each
    appearance of a shared node counts, as a reader that walks it sees it), else None. Walks at
    most :data:`MAX_VALUES` nodes, whatever the aliases would expand to."""
    stack, seen = [(data, 0)], 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return (
                f"{where}: more than {MAX_VALUES:,} values (YAML aliases expanded, as the "
                "workflow reads them); refused"
            )
        if depth > MAX_DEPTH:
            return f"{where}: nested more than {MAX_DEPTH} levels deep; refused"
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list | tuple):
            stack.extend((v, depth + 1) for v in node)
    return None


def yaml_error(path: str | Path) -> str | None:
    """``"FILE:LINE:COLUMN: problem"`` for a file that is not a YAML mapping within the limits,
    else None."""
    import yaml

    try:
        text = read_small(path, what="config")
    except FerError as exc:
        return str(exc)
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        return f"{path}: nested too deeply to parse; refused"
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        return f"{where}: {exc.problem or exc.context} (not valid YAML)"
    except yaml.YAMLError as exc:
        return f"{path}: not valid YAML ({exc})"
    if not isinstance(data, dict):
        return (
            f"{path}:1:1: expected a mapping of config keys at the top, got {type(data).__name__}"
        )
    return structure_problem(data, str(path))


def main(argv: list[str] | None = None) -> int:
    p = cliargs.parser("fer check-config", __doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", type=Path, help="workflow config files (YAML or JSON)")
    args = p.parse_args(argv)
    for path in args.files:
        problem = yaml_error(path)
        if problem:
            raise FerError(problem)
        print(f"{path}: valid YAML; `snakemake -n --configfile={path}` checks its keys")
    return 0
