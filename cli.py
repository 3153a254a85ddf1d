"""``python cli.py ...`` is the ``brian2-autotune`` command (see autotune/cli.py)."""

import sys

from autotune.cli import main

if __name__ == "__main__":
    sys.exit(main())
