"""``python -m engine.sop`` runs the SOP command line."""

from engine.sop.cli import main

raise SystemExit(main())
