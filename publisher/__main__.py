"""Allows `python -m publisher`."""

from publisher.cli.main import main

raise SystemExit(main())
