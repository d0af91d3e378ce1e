"""Run the command line: ``python -m hotfolder``."""

from hotfolder.cli import main

raise SystemExit(main())
