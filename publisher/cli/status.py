"""`publisher status`: what is published, what is rejected, the digest times, subscribers, the daemon."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from publisher.cli.main import Context
    from publisher.daemon.status import Status


# How many recipients who did not get the last digest are named before pointing at --report.
SHOWN_PROBLEMS = 5


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "status",
        help="show published and rejected files, digest times, subscribers and the daemon",
        description="Show how many articles are published, which files are rejected and why, when "
        "the last digest went out and when the next is due, subscriber counts by status, and whether "
        "a daemon holds the state folder and when it last did its work. Reads only; works while the "
        "daemon runs. Exit status: 0, or 1 when any file is rejected or the state database was lost "
        "(an empty file, or missing beside its marker: one Error: line).",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument(
        "--check",
        action="store_true",
        help="read every file in seeds/ now for rejected files (default: as of the last build; slow "
        "for a large folder)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from publisher.daemon.status import collect

    settings = ctx.settings
    now = ctx.clock.now()
    status = collect(settings, now, fresh=args.check)
    if args.json:
        print(json.dumps(status.as_json(), indent=2, ensure_ascii=False))
    else:
        print("\n".join(render(status, settings.site.tz, now)))
    return 1 if status.rejected else 0


def _when(moment: datetime | None, tz: tzinfo, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = (moment - now).total_seconds()
    span = abs(seconds)
    if span < 90:
        ago = f"{span:.0f} s"
    elif span < 5400:
        ago = f"{span / 60:.0f} min"
    elif span < 172800:
        ago = f"{span / 3600:.0f} h"
    else:
        ago = f"{span / 86400:.0f} days"
    relative = f"in {ago}" if seconds > 0 else f"{ago} ago"
    return f"{moment.astimezone(tz).strftime('%Y-%m-%d %H:%M %Z')} ({relative})"


def _size(count: int) -> str:
    """`812 bytes`, `4.2 MB`: decimal units, as `du --si` and file managers show them."""
    if count < 1000:
        return f"{count} bytes"
    size, unit = count / 1000, "KB"
    for bigger in ("MB", "GB", "TB"):
        if size < 1000:
            break
        size, unit = size / 1000, bigger
    return f"{size:.1f} {unit}"


def render(status: Status, tz: tzinfo, now: datetime) -> list[str]:
    from publisher.config import NOT_MAILED

    lines = [
        f"Articles:    {status.published} published, {status.waiting} waiting (embargoed or draft), "
        f"{status.removed} removed",
        f"Files:       {status.files} in seeds/, {len(status.rejected)} rejected"
        + (f" (as of {status.problems_from})" if status.problems_from == "the last build" else "")
        + (f", {status.warnings} warning{'s' if status.warnings != 1 else ''}" if status.warnings else ""),
    ]
    lines += [f"  {line}" for line in status.rejected]
    last = _when(status.last_digest, tz, now)
    if status.last_digest is not None:
        n = status.last_digest_articles
        last += f", {status.last_digest_subject!r}, {n} article{'s' if n != 1 else ''}"
        if not status.last_digest_complete:
            last += ", UNFINISHED (the next `publisher digest --send` or daemon start finishes it)"
    lines.append(f"Last digest: {last}")
    if status.last_send_digest is not None:
        written = status.transport == "outbox"  # "sent" to files: nothing was mailed
        counts = ", ".join(
            f"{n} written to {status.outbox}" if written and outcome == "sent" else f"{n} {outcome}"
            for outcome, n in status.last_send.items()
        )
        note = f" ({NOT_MAILED})" if written and status.last_send.get("sent") else ""
        lines.append(f"Last send:   {status.last_send_digest}: {counts or 'no recipients'}{note}")
        shown = status.last_send_problems[:SHOWN_PROBLEMS]
        lines += [f"  {line}" for line in shown]
        if len(status.last_send_problems) > len(shown):
            more = len(status.last_send_problems) - len(shown)
            lines.append(f"  … and {more} more (publisher digest --report {status.last_send_digest})")
    if status.last_slot is not None:
        lines.append(f"Last slot:   {_when(status.last_slot, tz, now)}: {status.last_slot_outcome or '?'}")
    lines.append(f"Next digest: {_when(status.next_digest, tz, now)} (schedule {status.schedule!r})")
    if status.subscribers:
        counts = ", ".join(f"{n} {state}" for state, n in status.subscribers.items())
        lines.append(f"Subscribers: {counts}")
    else:
        lines.append("Subscribers: none")
    if status.daemon_holder:
        daemon = f"running ({status.daemon_holder}), started {_when(status.daemon_started, tz, now)}"
        if status.daemon_reloaded is not None:
            daemon += f", configuration reloaded {_when(status.daemon_reloaded, tz, now)}"
    elif status.daemon_stopped:
        daemon = f"stopped {_when(status.daemon_stopped, tz, now)}"
    elif status.daemon_started:
        daemon = f"not running (last started {_when(status.daemon_started, tz, now)}; did not stop cleanly)"
    else:
        daemon = "never run"
    lines.append(f"Daemon:      {daemon}")
    work = status.last_work
    if work is not None:
        outcome = "ok" if work.ok else "FAILED"
        lines.append(f"Last work:   {work.job} {_when(work.at, tz, now)}, {outcome}: {work.detail}")
    lines.append(f"State size:  {_size(status.state_bytes)}")
    if status.state:
        lines.append(f"State:       {status.state}")
    return lines
