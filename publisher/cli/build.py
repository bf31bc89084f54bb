"""`publisher build`: not written yet."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("build", help="(not available yet)", description="Not available yet.")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace, ctx: Any) -> int:
    print("publisher build: not available in this release yet")
    return 1
