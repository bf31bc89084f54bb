"""Options shared by several commands."""

from __future__ import annotations

import argparse
import math


def seconds(text: str) -> float:
    """A number of seconds, 0 or more: `nan`, `inf` and negative numbers are usage errors (a wait
    of nan seconds never ends or never starts, depending on the comparison)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (a finite one: 0 or more)")
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more seconds")
    return value


def add_wait(parser: argparse.ArgumentParser) -> None:
    """`--wait SECONDS`: how long to wait for another publisher to release the state folder."""
    parser.add_argument(
        "--wait",
        type=seconds,
        default=0,
        metavar="SECONDS",
        help="wait this long for another publisher to release the state folder (default: refuse at once)",
    )
