"""Check the stand-ins against the facts about the authors' checkpoint files.

For each model (num_classes=7), plain and wrapped in ``nn.DataParallel``: the globals that
``torch.save(model)`` names must equal the facts' ``pickle_globals`` as a set, and
``state_dict()`` must list the facts' keys in order with their shapes and dtypes. The 8-class
models must differ only in the head's shapes, and the pickles must load back. Then a forward
pass on random inputs (eval mode) prints the output shapes.

    python tests/reference_standins/check_standins.py [--facts PATH]
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import pickletools
import sys
import zipfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
FACTS = Path(__file__).resolve().parents[3] / "shared" / "docs" / "reference-checkpoints.json"
STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING"}
HEAD_KEYS = ("fc.", "bn.")


def build(arch: str, num_classes: int) -> torch.nn.Module:
    """The stand-in model: ``global`` (package.resnet_cbam.Resnet) or ``roi`` (package.model1)."""
    if arch == "global":
        return importlib.import_module("package.resnet_cbam").Resnet(num_classes)
    return importlib.import_module("package.model1").ResNet(num_classes, n_head=8, resnet_cbam=1)


def saved(model: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(model, buffer)
    return buffer.getvalue()


def pickle_globals(blob: bytes) -> set[str]:
    """Every ``module.name`` the pickle inside a ``torch.save`` zip names (GLOBAL, STACK_GLOBAL)."""
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        data = archive.read(name)
    found, pushed, memo = set(), [], {}
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            module, qualname = arg.split(" ", 1)
            found.add(f"{module}.{qualname}")
        elif op.name == "STACK_GLOBAL":
            found.add(f"{pushed[-2]}.{pushed[-1]}")
        if op.name in STRING_OPS:
            pushed.append(arg)
        elif op.name in {"BINPUT", "LONG_BINPUT", "PUT"}:
            memo[arg] = pushed[-1] if pushed else None
        elif op.name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif op.name in {"BINGET", "LONG_BINGET", "GET"}:
            pushed.append(memo.get(arg))
        else:
            pushed.append(None)
    return found


def state_facts(model: torch.nn.Module) -> list[list]:
    return [
        [key, list(t.shape), str(t.dtype).removeprefix("torch.")]
        for key, t in model.state_dict().items()
    ]


def first_difference(got: list, want: list) -> str:
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"entry {i}: got {g}, want {w}"
    return f"got {len(got)} entries, want {len(want)}"


def check(arch: str, facts: dict) -> list[str]:
    """Problems of one stand-in against the facts; prints one OK line per checked entry."""
    problems = []
    model = build(arch, 7)
    for entry, wrapped in ((arch, model), (f"{arch}_dataparallel", torch.nn.DataParallel(model))):
        blob = saved(wrapped)
        want_globals = set(facts[entry]["pickle_globals"])
        got_globals = pickle_globals(blob)
        want_state = facts[entry]["state_dict"]
        got_state = state_facts(wrapped)
        bad = []
        if got_globals != want_globals:
            bad.append(
                f"globals: extra {sorted(got_globals - want_globals)}, "
                f"missing {sorted(want_globals - got_globals)}"
            )
        if got_state != want_state:
            bad.append(f"state_dict: {first_difference(got_state, want_state)}")
        loaded = torch.load(io.BytesIO(blob), weights_only=False)
        if type(loaded) is not type(wrapped) or list(loaded.state_dict()) != list(
            wrapped.state_dict()
        ):
            bad.append("the pickle does not load back as the same module")
        if bad:
            problems += [f"{entry}: {b}" for b in bad]
        else:
            print(
                f"OK {entry}: {len(got_globals)} pickle globals, "
                f"{len(got_state)} state_dict tensors match the facts"
            )
    eight = state_facts(build(arch, 8))
    seven = state_facts(model)
    differ = [k for (k, s7, _), (_, s8, _) in zip(seven, eight, strict=True) if s7 != s8]
    if [k for k, _, _ in seven] != [k for k, _, _ in eight] or not all(
        k.startswith(HEAD_KEYS) for k in differ
    ):
        problems.append(f"{arch}: the 8-class model differs outside the head: {differ}")
    return problems


@torch.no_grad()
def forward_shapes() -> None:
    torch.manual_seed(0)
    model = build("global", 7).eval()
    out = model(torch.randn(2, 3, 224, 224))
    print(f"forward global: 2x3x224x224 -> logits {tuple(out.shape)}")
    model = build("roi", 7).eval()
    face = torch.randn(2, 3, 224, 224)
    eye, nose, mouth = (torch.randn(2, 3, 90, 90) for _ in range(3))
    x, x_whole, x_roi = model(face, eye, nose, mouth)
    print(
        "forward roi: face 2x3x224x224, eye/nose/mouth 2x3x90x90 -> "
        f"x {tuple(x.shape)}, x_whole {tuple(x_whole.shape)}, x_roi {tuple(x_roi.shape)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=Path, default=FACTS, help="reference-checkpoints.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    facts = json.loads(args.facts.read_text())
    problems = check("global", facts) + check("roi", facts)
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        return 1
    forward_shapes()
    return 0


if __name__ == "__main__":
    sys.exit(main())
