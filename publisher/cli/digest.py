"""`publisher digest`: preview the next digest, send it (resuming any interrupted one), or send one
test copy to an address."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import tzinfo
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from publisher.cli.options import add_wait

if TYPE_CHECKING:
    from publisher.cli.main import Context
    from publisher.config import Settings
    from publisher.delivery.engine import Progress
    from publisher.delivery.report import DigestReport


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "digest",
        help="preview or send the email digest of new articles",
        description="--preview renders the next digest (the articles published since the last "
        "digest) to files in state/preview/ and prints their paths; it sends nothing and changes no "
        "state. --send first finishes any digest an earlier run left unfinished, then builds and "
        "sends the next one if there are new articles, each message recorded in the send ledger so "
        "that nobody gets it twice or not at all; a progress bar shows on a terminal and a summary "
        "line ends the run. --to ADDRESS sends one test copy to ADDRESS only, outside the ledger, marked "
        "[Test]: the next digest, or when there is nothing new the latest one sent (or a sample "
        "of the latest articles). --report [ID] prints who got a digest (the latest when no ID is "
        "given) and who did not, with the server's answer for each failure; --json prints it as "
        "JSON. Exit status: 0 when done; 1 on an error or when the run was stopped "
        "with messages left pending (run --send again to resume); 2 on a usage or configuration "
        "error; 3 when another publisher process holds the state lock.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--preview", action="store_true", help="render the next digest to files")
    action.add_argument("--send", action="store_true", help="send the next digest to every subscriber")
    action.add_argument("--to", metavar="ADDRESS", help="send one test copy to ADDRESS only")
    action.add_argument(
        "--report",
        nargs="?",
        const="",
        metavar="ID",
        help="show every recipient of a digest (default: the latest) with what happened to them",
    )
    parser.add_argument("--json", action="store_true", help="with --report: print JSON instead of a table")
    parser.add_argument(
        "--backfill",
        type=_count,
        metavar="N",
        help="the very first digest includes the N latest articles (default: digest.backfill)",
    )
    add_wait(parser)
    parser.set_defaults(handler=run)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


# How many recipients a send's summary names before it points at --report (-v names them all).
SHOWN_PROBLEMS = 10


def run(args: argparse.Namespace, ctx: Context) -> int:
    from publisher import pipeline
    from publisher.config import NOT_MAILED

    settings = ctx.settings
    now = ctx.clock.now()
    if args.report is not None:
        found = pipeline.digest_report(settings, args.report or None)
        return _report(found, settings.site.tz, as_json=args.json)
    if args.json:
        return _usage("--json goes with --report")
    if args.preview:
        paths = pipeline.digest_preview(settings, now, backfill=args.backfill)
        if not paths and not args.quiet:
            print("No new articles since the last digest: nothing to preview.")
            _first_digest_hint(settings)
        for path in paths:
            print(path)
        if paths and not settings.digest.postal_address.strip():
            print(
                "Note: digest.postal_address is not set: the footer has no postal address, and "
                "--send and --to refuse until it is.",
                file=sys.stderr,
            )
        return 0
    _warn_unused_smtp(settings)
    if args.to is not None:
        what, reply = pipeline.digest_test(settings, now, args.to, backfill=args.backfill)
        if settings.delivery.transport == "outbox":
            line = (
                f"Wrote a test copy of {what} for {args.to} to {settings.outbox_shown}{reply} ({NOT_MAILED})"
            )
        else:
            line = f"Sent a test copy of {what} to {args.to}: {reply}"
        if not args.quiet:
            print(line)
        return 0
    return _send(args, ctx)


def _warn_unused_smtp(settings: Settings) -> None:
    warning = settings.unused_smtp()
    if warning:
        logging.getLogger("publisher.digest").warning("%s", warning)


def _first_digest_hint(settings: Settings) -> None:
    from publisher import pipeline

    if pipeline.digest_never_sent(settings):
        print(
            "The first digest starts from now and does not mail the back catalogue; "
            "--backfill N includes the N latest articles in it."
        )


def _send(args: argparse.Namespace, ctx: Context) -> int:
    from publisher import pipeline
    from publisher.config import NOT_MAILED
    from publisher.lock import state_lock

    settings = ctx.settings
    on_terminal = sys.stderr is not None and sys.stderr.isatty()
    bar = ProgressBar(sys.stderr) if on_terminal and not args.quiet else None
    with (
        state_lock(settings, wait=args.wait, purpose="publisher digest --send"),
        _stop_on_sigterm() as stopping,
    ):
        try:
            report = pipeline.digest_send(
                settings,
                ctx.clock.now(),
                backfill=args.backfill,
                progress=bar.update if bar else None,
                should_stop=stopping,
            )
        finally:
            if bar:
                bar.finish()
    if not report.digests:
        if not args.quiet:
            print("No new articles since the last digest: nothing to send.")
            _first_digest_hint(ctx.settings)
        return 0
    outbox = settings.delivery.transport == "outbox"
    done = f"written to {settings.outbox_shown} {report.sent}" if outbox else f"sent {report.sent}"
    parts = [done, f"failed {report.failed}", f"skipped {report.skipped}"]
    if report.bounced:
        parts.append(f"bounced {report.bounced}")
    if report.pending:
        parts.append(f"pending {report.pending}")
    names = ", ".join(report.digests)
    note = f" ({NOT_MAILED})" if outbox else ""
    if not args.quiet or report.failed or report.bounced or report.pending:  # -q: only when not all went
        print(f"Digest {names}: {', '.join(parts)} in {report.seconds:.1f} s{note}")
    for digest_id in report.digests:
        _problems(pipeline.digest_report(ctx.settings, digest_id), everyone=ctx.verbosity > 0)
    if report.pending:
        print(
            f"Stopped with {report.pending} message(s) pending: run `publisher digest --send` to resume.",
            file=sys.stderr,
        )
        return 1
    return 0


def _usage(message: str) -> int:
    print(f"Error: {message}", file=sys.stderr)
    return 2


def _problems(found: DigestReport, *, everyone: bool) -> None:
    lines = found.problem_lines(None if everyone else SHOWN_PROBLEMS)
    if lines:
        print(f"Not delivered ({found.digest_id}):")
        for line in lines:
            print(f"  {line}")


def _report(found: DigestReport, tz: tzinfo, *, as_json: bool) -> int:
    """The table, with times in the site's timezone (as `publisher status` shows them)."""
    if as_json:
        print(json.dumps(found.as_json(), indent=2, ensure_ascii=False))
        return 0
    made = f", made {found.created_at.astimezone(tz):%Y-%m-%d %H:%M %Z}" if found.created_at else ""
    print(f"Digest {found.digest_id}: {found.subject!r}{made}")
    counts = found.counts
    print("  " + ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n) or "  no recipients")
    width = max((len(line.email) for line in found.lines), default=0)
    for line in found.lines:
        detail = line.reply
        if line.retry_at is not None and line.outcome == "deferred":
            detail += f" (retry after {line.retry_at.astimezone(tz):%Y-%m-%d %H:%M %Z})"
        print(f"{line.email:<{width}}  {line.outcome:<8}  {detail}".rstrip())
    return 0


@contextmanager
def _stop_on_sigterm() -> Iterator[Callable[[], bool]]:
    """SIGTERM (and Ctrl-C) ask the send to stop between messages, leaving the ledger consistent;
    a second Ctrl-C interrupts at once (messages in flight then count as the duplicate window)."""
    flag = {"stop": False}

    def handler(signum: int, frame: FrameType | None) -> None:
        if flag["stop"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag["stop"] = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield lambda: flag["stop"]
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class ProgressBar:
    """`[#######·········] 1234/10000 sent 1200 failed 3` on one terminal line, redrawn ≤10×/s."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.last = 0.0
        self.drawn = False

    def update(self, state: Progress) -> None:
        now = time.monotonic()
        if now - self.last < 0.1 and state.done < state.total:
            return
        self.last = now
        filled = self.width * state.done // max(state.total, 1)
        bar = "#" * filled + "·" * (self.width - filled)
        line = f"\r[{bar}] {state.done}/{state.total} sent {state.sent} failed {state.failed}"
        if state.deferred:
            line += f" retried {state.deferred}"
        self.stream.write(line + "\x1b[K")
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
