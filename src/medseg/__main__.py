"""``python -m medseg`` runs the command line."""

import sys

from medseg.cli import main

sys.exit(main())
