"""`publisher serve`: serve feeds/ over HTTP, with the subscribe and unsubscribe pages."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from publisher.cli.main import Context


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="serve feeds/ over HTTP, with subscribe and one-click unsubscribe",
        description="Serve the files in feeds/ (conditional GETs, gzip, cache headers) and the "
        "subscribe (double opt-in), confirm and unsubscribe (RFC 8058 one-click) pages, until "
        "interrupted. Reads feeds/, writes only the state folder (subscribers, outbox). Defaults for "
        "host and port come from the [serve] settings. Exit status: 0 after Ctrl-C or SIGTERM, 1 "
        "when the address cannot be listened on, feeds/ does not exist (run `publisher build` first) or "
        "the state database or state/secret.key was lost, 2 on "
        "a configuration error.",
    )
    parser.add_argument("--host", metavar="ADDRESS", help="address to listen on (default: serve.host)")
    parser.add_argument(
        "--port", type=int, metavar="PORT", help="port to listen on, 0 for any free one (default: serve.port)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from publisher import server

    settings = ctx.settings
    host = args.host if args.host is not None else settings.serve.host
    port = args.port if args.port is not None else settings.serve.port
    if not 0 <= port <= 65535:
        print(f"Error: --port: {port} is not a port number (0-65535)", file=sys.stderr)
        return 2

    def ready(url: str) -> None:
        # One line on stdout, flushed, so a supervisor or a test knows where to connect.
        print(f"Serving {settings.feeds_dir} on {url}", flush=True)

    server.run(settings, ctx.clock, host, port, on_ready=ready)
    return 0
