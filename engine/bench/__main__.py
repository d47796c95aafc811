"""``python -m engine.bench``: the same as ``pgpbulk bench``."""

import sys

from engine.bench.cli import main

sys.exit(main())
