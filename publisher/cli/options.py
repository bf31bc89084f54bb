"""Options shared by several commands."""

from __future__ import annotations

import argparse


def add_wait(parser: argparse.ArgumentParser) -> None:
    """`--wait SECONDS`: how long to wait for another publisher to release the state folder."""
    parser.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="wait this long for another publisher to release the state folder (default: refuse at once)",
    )
