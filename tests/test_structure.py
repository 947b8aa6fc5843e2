"""The package's shape, checked: small modules, no import cycles, no Snakemake inside `fer`, and
the modules the workflow reads at planning time free of torch."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import REPO

PACKAGE = REPO / "fer"
MAX_LINES = 400


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), str(path))
    return out


def imported(name: str, tree: ast.Module, known: set[str], top_level: bool) -> set[str]:
    """The fer modules ``name`` imports (at module level only, or anywhere)."""
    nodes = tree.body if top_level else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            found |= {
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            }
    return {m for m in found if m in known and m != name}


def test_no_module_is_over_400_lines():
    long = {
        p.name: n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long


def test_module_level_imports_have_no_cycle():
    mods = modules()
    graph = {n: imported(n, t, set(mods), top_level=True) for n, t in mods.items()}
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + "."):  # a package importing its own submodule
                continue
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*path, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


def test_the_package_never_imports_snakemake():
    for name, tree in modules().items():
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] == "snakemake" for n in names), name


def test_what_the_workflow_reads_at_planning_imports_no_torch():
    code = (
        "import sys, fer.train.recipe, fer.data, fer.contracts, fer.evaluate, fer.train\n"
        "import fer.imagenet, fer.check_config\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'PIL', 'pandas') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_make_lint_checks_the_format():
    lint = (REPO / "Makefile").read_text().split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "ruff format --check" in lint and "snakefmt --check" in lint
