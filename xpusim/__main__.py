"""``python -m xpusim`` runs the CLI."""

import sys

from xpusim.cli import main

sys.exit(main())
