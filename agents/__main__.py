"""Lets ``python -m agents`` run the ``vmalign`` command line."""

from agents.cli import main

raise SystemExit(main())
