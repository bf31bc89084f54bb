"""`publisher inbound`: one pass over the mailbox that unsubscribe requests, bounces and
complaints come back to."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from publisher.cli.options import add_wait

if TYPE_CHECKING:
    from publisher.cli.main import Context


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "inbound",
        help="handle unsubscribe requests, bounces and complaints in the [inbound] mailbox",
        description="Make one pass over inbound.maildir (and/or the IMAP folder [inbound] names): "
        "unsubscribe requests sent to the List-Unsubscribe mailto address and complaints (RFC 5965) "
        "unsubscribe the subscriber; permanent delivery failures (RFC 3464) count toward "
        "delivery.bounce_after. Handled messages are marked seen (never deleted); anything else is "
        "left untouched and counted. Prints one summary line per mailbox. See docs/inbound.md.",
    )
    add_wait(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from publisher.lock import state_lock
    from publisher.pipeline import inbound_pass

    settings = ctx.settings
    with state_lock(settings, wait=args.wait, purpose="publisher inbound"):
        reports = inbound_pass(settings, ctx.clock.now())
    if not args.quiet:
        for report in reports:
            print(report.summary())
    return 0
