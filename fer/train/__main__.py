"""``python -m fer.train``: the same as ``fer train`` (errors printed as one line)."""

import sys

from fer.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
