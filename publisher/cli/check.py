"""`publisher check`: validate every file in seeds/ and say exactly what is wrong."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from publisher.cli.main import Context


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "check",
        help="validate the files in seeds/ and report every problem",
        description="Validate every file in seeds/ and print each problem as 'path: field: message', "
        "then a summary line. Writes nothing. Exit status: 0 when no file is rejected, 1 when any is, "
        "2 on a usage or configuration error.",
    )
    parser.add_argument(
        "--strict", action="store_true", help="treat warnings (control characters removed, …) as failures"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from publisher.pipeline import check

    now = ctx.clock.now()
    report = check(ctx.settings, now)
    from publisher.models import grouped

    # The same problem in many files is one line (-v: one line per file).
    lines = [str(p) for p in report.problems] if ctx.verbosity > 0 else grouped(report.problems)
    for line in lines:
        print(line, file=sys.stdout)
    if ctx.verbosity > 0:  # -v: what each good file will be published as
        from publisher.ingest import display

        for article in sorted(report.articles, key=lambda a: a.source):
            state = "draft" if article.draft else "scheduled" if article.date > now else "ok"
            when = article.date.isoformat()
            print(f"{display(ctx.settings, article.source)}: {state}: {article.title} ({when})")
    parts = [f"{report.files} file{'s' if report.files != 1 else ''} checked", f"{report.valid} valid"]
    if report.drafts:
        parts.append(f"{report.drafts} draft{'s' if report.drafts != 1 else ''}")
    if report.scheduled:
        parts.append(f"{report.scheduled} scheduled for later")
    parts.append(f"{report.rejected} rejected")
    if report.warnings:
        parts.append(f"{report.warnings} warning{'s' if report.warnings != 1 else ''}")
    if not args.quiet or report.rejected:
        print(", ".join(parts))
    failed = report.rejected > 0 or (args.strict and report.warnings > 0)
    return 1 if failed else 0
