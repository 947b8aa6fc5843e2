"""``python -m fer.report``: the same as ``fer report`` (errors printed as one line)."""

import sys

from fer.cli import main

sys.exit(main(["report", *sys.argv[1:]]))
