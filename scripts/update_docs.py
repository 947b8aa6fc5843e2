#!/usr/bin/env python3
"""Rewrite the generated parts of the docs from their one declaration (`make docs`).

config/README.md's recipe table comes from fer/train/recipe.py (markdown_table); it sits between
the markers below. tests/test_recipe.py fails when the committed text is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fer.train.recipe import markdown_table

BEGIN = "<!-- recipe-keys: generated from fer/train/recipe.py by `make docs` -->\n"
END = "<!-- end of recipe-keys -->\n"


def main() -> int:
    path = Path(__file__).resolve().parents[1] / "config" / "README.md"
    text = path.read_text()
    if BEGIN not in text or END not in text:
        print(f"{path}: markers for the recipe table not found", file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = head + BEGIN + "\n" + markdown_table() + "\n" + END + tail
    if new != text:
        path.write_text(new)
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
