"""Allows ``python -m rwconsole``."""

from rwconsole.cli import main

raise SystemExit(main())
