"""The package's shape, checked: small modules, no import cycle at any level (function-level
imports included), no import from a lower stage up to a higher one, no Snakemake inside `fer`,
and the modules the workflow reads at planning time free of torch."""

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


def imported(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The fer modules ``name`` imports anywhere: at module level or inside a function."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            found |= {
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            }
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {n: imported(n, t, set(mods)) for n, t in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """An import cycle of ``graph`` as a path, or None. A package importing its own submodule
    is no edge of a cycle: the submodule never runs the package's code again."""
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, node])):
                return found
        state[node] = 2
        return None

    for name in graph:
        if name not in state and (found := visit(name, [])):
            return found
    return None


def test_no_module_is_over_400_lines():
    long = {
        p.name: n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long


def test_no_import_cycle_at_any_level():
    cycle = find_cycle(import_graph())
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_the_cycle_finder_sees_function_level_imports():
    tree = ast.parse("def f():\n    from fer.b import x\n")
    graph = {"fer.a": imported("fer.a", tree, {"fer.a", "fer.b"}), "fer.b": {"fer.a"}}
    assert find_cycle(graph) == ["fer.a", "fer.b", "fer.a"]


# The stages, each a package of fer, and the stages each may import (besides the shared modules
# fer/*.py, which import no stage). Lower stages never import higher ones: the inference core is
# fer.models, below both of its consumers (fer.evaluate and fer.predict), which never import
# each other.
MAY_IMPORT = {
    "data": set(),
    "preprocess": {"data"},
    "models": set(),
    "train": {"data", "models"},
    "evaluate": {"models", "train"},
    "report": {"data", "evaluate"},
    "config": {"data", "train"},  # the workflow config's checks: adapters, recipes
    "predict": {"data", "models", "preprocess"},
}
EXEMPT = {("fer", "fer.predict")}  # the lazy ``fer.Predictor`` export


def stage(module: str) -> str | None:
    """The stage a module belongs to (None: a shared module, fer/*.py)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in MAY_IMPORT else None


def test_no_stage_imports_a_higher_one():
    upward = []
    for name, deps in import_graph().items():
        mine = stage(name)
        allowed = {mine, None} | MAY_IMPORT.get(mine, set()) if mine else {None}
        upward += [
            f"{name} -> {dep}"
            for dep in sorted(deps)
            if stage(dep) not in allowed and (name, dep) not in EXEMPT
        ]
    assert not upward, upward


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
        "import fer.imagenet, fer.config.check, fer.fusion, fer.evaluate.jobs, fer.train.job\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'PIL', 'pandas') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_make_lint_checks_the_format():
    lint = (REPO / "Makefile").read_text().split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "ruff format --check" in lint and "snakefmt --check" in lint
