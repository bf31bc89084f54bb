"""`publisher subscribers`: add, remove, delete, list, import and export the people the digest goes to."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.errors import SubscriberError

if TYPE_CHECKING:
    from publisher.cli.main import Context


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "subscribers",
        help="manage the digest's subscribers (add, remove, delete, list, import, export)",
        description="Manage the people the email digest goes to. Addresses are validated and "
        "normalised (lower case, IDNA domain); each is active, unsubscribed, bounced or pending.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="subscribe one address (re-activates an unsubscribed one)")
    add.add_argument("address", metavar="ADDRESS")
    add.add_argument("--name", default=None, help="the subscriber's name (used in the greeting)")
    add.set_defaults(handler=_add)
    remove = actions.add_parser(
        "remove", help="unsubscribe one address (kept as unsubscribed, so no import re-adds it)"
    )
    remove.add_argument("address", metavar="ADDRESS")
    remove.set_defaults(handler=_remove)
    delete = actions.add_parser(
        "delete",
        help="erase one address and its send records (to forget someone; an import can re-add it)",
    )
    delete.add_argument("address", metavar="ADDRESS")
    delete.set_defaults(handler=_delete)
    listing = actions.add_parser("list", help="show every address with its status")
    listing.add_argument(
        "--status", choices=("pending", "active", "unsubscribed", "bounced"), help="only this status"
    )
    listing.set_defaults(handler=_list)
    imp = actions.add_parser(
        "import",
        help="import a CSV file with a header row (email, optional name and status); idempotent",
        description="Import subscribers from a CSV file whose header row names an email column and "
        "optionally name and status columns (as export writes them). A status of unsubscribed, "
        "bounced or pending is kept: a new address comes in with it, and a known active or pending "
        "one is moved to unsubscribed or bounced; nothing is ever re-subscribed. Each bad row is "
        "reported by line number and the rest imported; the exit status is 1 when any row was bad.",
    )
    imp.add_argument("file", metavar="FILE.csv", type=Path)
    imp.set_defaults(handler=_import)
    export = actions.add_parser("export", help="write every subscriber as CSV (email,name,status) to stdout")
    export.set_defaults(handler=_export)
    for action in (add, remove, delete, listing, imp, export):
        _loudness(action)


def _loudness(parser: argparse.ArgumentParser) -> None:
    """`publisher subscribers list -q` works like `publisher -q subscribers list` (as in cli.main)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="say more (repeat for debug)"
    )
    group.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="say less")


def _connect(ctx: Context) -> Any:
    from publisher.store import db

    return db.connect(ctx.settings.db_path)


def _add(args: argparse.Namespace, ctx: Context) -> int:
    from publisher import subscriptions as subscribers

    conn = _connect(ctx)
    try:
        sub, outcome = subscribers.add(conn, args.address, args.name, ctx.clock.now())
    finally:
        conn.close()
    words = {"added": "added", "reactivated": "re-activated", "unchanged": "already subscribed:"}
    if not args.quiet:
        print(f"{words[outcome]} {sub.email}")
    return 0


def _remove(args: argparse.Namespace, ctx: Context) -> int:
    from publisher import subscriptions as subscribers

    conn = _connect(ctx)
    try:
        sub = subscribers.remove(conn, args.address, ctx.clock.now())
    finally:
        conn.close()
    if not args.quiet:
        print(f"unsubscribed {sub.email}")
    return 0


def _delete(args: argparse.Namespace, ctx: Context) -> int:
    from publisher import subscriptions as subscribers

    conn = _connect(ctx)
    try:
        email, records = subscribers.delete(conn, args.address)
    finally:
        conn.close()
    if not args.quiet:
        print(f"deleted {email} and {records} send record{'s' if records != 1 else ''}")
    return 0


def _list(args: argparse.Namespace, ctx: Context) -> int:
    from publisher.store import subscribers as store

    conn = _connect(ctx)
    try:
        everyone = store.all_subscribers(conn)
    finally:
        conn.close()
    shown = [s for s in everyone if args.status is None or s.status == args.status]
    width = max((len(s.email) for s in shown), default=0)
    for sub in shown:
        line = f"{sub.email:<{width}}  {sub.status:<12}  {sub.name}".rstrip()
        print(line)
    if not args.quiet:
        counts: dict[str, int] = {}
        for sub in everyone:
            counts[sub.status] = counts.get(sub.status, 0) + 1
        detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        total = len(everyone)
        print(f"{total} subscriber{'s' if total != 1 else ''}" + (f": {detail}" if detail else ""))
    return 0


MAX_IMPORT_BYTES = 256 * 2**20  # about 4 million addresses with names


def _import(args: argparse.Namespace, ctx: Context) -> int:
    from publisher import subscriptions as subscribers

    path: Path = args.file
    try:
        with path.open("rb") as file:  # read bounded: /dev/zero or a wrong file must not fill memory
            data = file.read(MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise SubscriberError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(data) > MAX_IMPORT_BYTES:
        raise SubscriberError(
            f"{path}: larger than {MAX_IMPORT_BYTES // 2**20} MiB, more than any list of subscribers; "
            "nothing was imported (split it, or check that it is the right file)"
        )
    conn = _connect(ctx)
    try:
        report = subscribers.import_csv(conn, data, str(path), ctx.clock.now())
    finally:
        conn.close()
    for problem in report.problems:
        print(problem, file=sys.stderr)
    if not args.quiet or report.bad:
        kept_out = f" ({report.kept_out} of them unsubscribed, bounced or pending)" if report.kept_out else ""
        moved = f" ({report.moved_out} of them now unsubscribed or bounced, as the file says)"
        moved = moved if report.moved_out else ""
        print(
            f"{report.added} added{kept_out}, {report.existing} already present{moved}, "
            f"{report.duplicates} duplicate{'s' if report.duplicates != 1 else ''} in file, {report.bad} bad"
        )
    return 1 if report.bad else 0


def _export(args: argparse.Namespace, ctx: Context) -> int:
    from publisher import subscriptions as subscribers
    from publisher.store import subscribers as store

    conn = _connect(ctx)
    try:
        text = subscribers.export_csv(store.all_subscribers(conn))
    finally:
        conn.close()
    sys.stdout.write(text)
    return 0
