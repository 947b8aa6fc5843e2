"""``python -m fer.evaluate``: the same as ``fer evaluate`` (errors printed as one line)."""

import sys

from fer.cli import main

sys.exit(main(["evaluate", *sys.argv[1:]]))
