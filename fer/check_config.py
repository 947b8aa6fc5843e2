"""``fer check-config FILE...``: is a workflow config valid YAML? Where it is not, the file, line
and column of the first problem, in one line.

Snakemake reads ``--configfile`` files before the workflow runs and then reports only "Config
file is not valid JSON or YAML"; this names the place. Keys, types and recipes are checked by
``snakemake -n --configfile=FILE``, which stops at the first wrong one with one line.
"""

from __future__ import annotations

from pathlib import Path

from fer import cliargs
from fer.errors import FerError


def yaml_error(path: str | Path) -> str | None:
    """``"FILE:LINE:COLUMN: problem"`` for a file that is not a YAML mapping, else None."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"{path}: cannot read ({exc})"
    try:
        data = yaml.safe_load(text)
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
    return None


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
