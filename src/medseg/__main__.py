"""``python -m medseg`` runs the command line."""

import sys

from medseg.cli import main

if __name__ == "__main__":  # not when a spawned worker process imports this module
    sys.exit(main())
