"""`publisher build`: turn seeds/ into feeds/ (feeds, archives, pages), writing only what changed."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from publisher.cli.options import add_wait

if TYPE_CHECKING:
    from publisher.cli.main import Context


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "build",
        help="write the feeds and pages in feeds/ from the articles in seeds/",
        description="Read seeds/ (only files that changed since the last build), give every article its "
        "permanent identity, and write atom.xml, rss.xml, feed.json, the archive documents, index.html "
        "and one page per article into feeds/, each atomically and only when its bytes change. Prints "
        "every problem (one line each, like check) and a summary line. Exit status: 0, even when some "
        "files were rejected (they are reported and left out); 1 with --strict when any file was "
        "rejected; 1 when the seeds folder is missing or unreadable, or when more than half of the "
        "published articles' files are gone (nothing is changed; --allow-mass-removal to go ahead); 2 "
        "on a usage or configuration error; 3 when another publisher holds the state lock.",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="parse every file again (trusting no cached parse), re-render every output and remove "
        "stray pages (after a manual edit)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when any file was rejected")
    parser.add_argument(
        "--allow-mass-removal",
        action="store_true",
        help="publish even when more than half of the published articles' files are gone",
    )
    add_wait(parser)
    parser.set_defaults(handler=run)


# Why a build needs [site]: what it mints from it is permanent.
_MINTED = "every article's permanent id and the feeds' addresses are made from them"


def run(args: argparse.Namespace, ctx: Context) -> int:
    from publisher.lock import state_lock
    from publisher.pipeline import build, websub_ping

    settings = ctx.settings
    settings.require_site_identity(_MINTED)
    with state_lock(settings, wait=args.wait, purpose="publisher build"):
        report = build(settings, ctx.clock.now(), full=args.full, allow_mass_removal=args.allow_mass_removal)
        # Tell WebSub hubs of changed feeds; a hub's failure is a logged warning, never the build's.
        pings = websub_ping(settings, ctx.clock.now(), report.written)
    from publisher.models import grouped

    # The same problem in many files is one line (-v: one line per file).
    lines = [str(p) for p in report.problems] if ctx.verbosity > 0 else grouped(report.problems)
    for line in lines:
        print(line, file=sys.stdout)
    parts = [
        f"{report.published} published",
        f"{len(report.written)} written",
        f"{report.unchanged} unchanged",
        f"{report.rejected} rejected",
    ]
    if report.warnings:
        parts.append(f"{report.warnings} warning{'s' if report.warnings != 1 else ''}")
    if report.next_embargo is not None:
        parts.append(f"next scheduled {report.next_embargo.isoformat()}")
    if pings is not None:
        if pings.sent:
            parts.append(f"{pings.sent} hub ping{'s' if pings.sent != 1 else ''}")
        if pings.failed:
            parts.append(f"{len(pings.failed)} hub ping{'s' if len(pings.failed) != 1 else ''} failed")
    parts.append(f"{report.seconds:.2f} s")
    if not args.quiet or report.rejected:
        print(", ".join(parts))
    return 1 if args.strict and report.rejected else 0
