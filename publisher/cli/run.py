"""`publisher run`: the daemon in the foreground (by hand, under systemd, in a container)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from publisher.cli.options import add_wait

if TYPE_CHECKING:
    from publisher.cli.main import Context


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "run",
        help="keep the feeds fresh and send the digest on schedule, until stopped",
        description="Build once, then watch seeds/: a new or changed file is published once it has "
        "stopped changing; an embargoed article goes live at its time; the digest goes out on "
        "[digest] schedule in the site's timezone (a digest missed while stopped is sent at start when "
        "it is within [digest] grace_period, else skipped). One instance per state folder. SIGTERM or "
        "Ctrl-C finishes the current step and exits 0; SIGHUP reloads the configuration. Exit status: 0 "
        "after a clean stop, 2 configuration error, 3 another publisher holds the lock.",
    )
    add_wait(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from publisher.config_file import load_settings
    from publisher.daemon.runner import run as run_daemon

    ctx.settings.require_site_identity("the daemon builds and mails the site under them")
    return run_daemon(
        ctx.settings, ctx.clock, reload=lambda: load_settings(ctx.config_path, required=True), wait=args.wait
    )
