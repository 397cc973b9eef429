"""``python -m vitnotes``: the command line (``explain``, ``sweep``); see ``vitnotes/cli/``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
