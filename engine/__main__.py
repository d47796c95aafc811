"""``python -m engine`` runs the ``pgpbulk`` command line."""

from engine.cli import main

raise SystemExit(main())
