"""``python -m fer.report``: the same as ``fer report``."""

import sys

from fer.errors import FerError
from fer.report import main

try:
    sys.exit(main())
except FerError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
