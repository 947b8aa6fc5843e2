"""Every `snakemake` and `fer` command the docs give runs as written.

Commands are taken from the fenced code blocks of README.md, config/README.md and docs/*.md, and
from the indented command lines of the comments heading workflow/Snakefile and config/*.yaml. Each
`snakemake` command is dry-run (`-n` added right after `snakemake`) in a scratch copy of the
workflow, configs and profiles, holding the config files the docs ask a reader to write (a fenced
`yaml` block whose first line is `# config/<name>.yaml`); each `fer` command must name a verb and
only options its `--help` lists.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, REPO, smk

DOCS = [REPO / "README.md", REPO / "config" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMMENTED = [REPO / "workflow" / "Snakefile", *sorted((REPO / "config").rglob("*.yaml"))]
FENCE = re.compile(r"^([ \t]*)```(\w*)[^\n]*\n(.*?)^\1```", re.S | re.M)


def join_continued(lines: list[str]) -> list[str]:
    out, pending = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    return out


def commands(text: str) -> list[list[str]]:
    """`snakemake` / `fer` commands in shell lines, split as the shell would (comments dropped)."""
    found = []
    for line in join_continued(text.splitlines()):
        line = line.strip().removeprefix("$ ")
        if re.match(r"^(snakemake|fer)( |$)", line):
            found.append(shlex.split(line, comments=True))
    return found


def from_docs() -> tuple[list[tuple[str, list[str]]], dict[str, str]]:
    """(where, argv) of every documented command, and the config files the docs show."""
    found, files = [], {}
    for doc in DOCS:
        for _, lang, body in FENCE.findall(doc.read_text()):
            first = body.splitlines()[0] if body.strip() else ""
            if lang == "yaml" and re.match(r"^# (config/\S+\.ya?ml)$", first):
                files[first[2:]] = body
            if lang in ("", "bash", "sh", "console", "shell"):
                found += [(doc.name, argv) for argv in commands(body)]
    for source in COMMENTED:
        header = [ln[1:] for ln in source.read_text().splitlines() if ln.startswith("#")]
        found += [(source.name, argv) for argv in commands("\n".join(header))]
    return found, files


FOUND, FILES = from_docs()
UNIQUE = list({tuple(a): (w, a) for w, a in reversed(FOUND)}.values())[::-1]  # each once
SNAKEMAKE = [(w, a) for w, a in UNIQUE if a[0] == "snakemake"]
FER = [(w, a) for w, a in UNIQUE if a[0] == "fer"]


def test_the_docs_hold_the_commands_a_user_needs():
    assert len(SNAKEMAKE) >= 8 and len(FER) >= 2, FOUND
    assert {"config/mine.yaml", "config/authors.yaml"} <= set(FILES)  # the examples' configs


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A fresh copy of what the docs' commands run in: workflow, configs, profiles, and the
    config files and profile copies the docs tell the reader to make."""
    root = tmp_path_factory.mktemp("docs")
    for folder in ("workflow", "config", "profiles"):
        shutil.copytree(REPO / folder, root / folder)
    shutil.copytree(REPO / "profiles" / "slurm", root / "profiles" / "mysite")  # docs/slurm.md
    for name, text in FILES.items():
        (root / name).write_text(text)
        recipes = (yaml.safe_load(text).get("train") or {}).get("recipes") or {}
        for by_arch in recipes.values():  # the authors' files the docs tell a reader to download
            for recipe in by_arch.values():
                if recipe.get("reference"):
                    (root / recipe["reference"]).parent.mkdir(parents=True, exist_ok=True)
                    (root / recipe["reference"]).write_bytes(b"")
    return root


@pytest.mark.parametrize(("where", "argv"), SNAKEMAKE, ids=[" ".join(a) for _, a in SNAKEMAKE])
def test_every_documented_snakemake_command_plans(where, argv, scratch):
    r = smk("-n", *argv[1:], cwd=scratch, timeout=300)
    assert r.returncode == 0, f"{where}: {shlex.join(argv)}\n{r.stderr[-2000:]}"


@pytest.mark.parametrize(("where", "argv"), FER, ids=[" ".join(a) for _, a in FER])
def test_every_documented_fer_command_names_a_verb_and_its_options(where, argv):
    from fer.cli import VERBS

    verb = next((a for a in argv[1:] if not a.startswith("-")), None)
    assert verb in VERBS, f"{where}: {shlex.join(argv)}: no verb {verb!r}"
    r = subprocess.run([str(BIN / "fer"), verb, "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for option in (a.split("=")[0] for a in argv[1:] if a.startswith("--")):
        if option != "--log":
            assert option in r.stdout, f"{where}: {shlex.join(argv)}: `fer {verb}` has no {option}"
