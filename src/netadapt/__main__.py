"""``python -m netadapt``: the command line (also the entry point for ``torchrun -m netadapt``)."""

import sys

from netadapt.cli import main

sys.exit(main())
