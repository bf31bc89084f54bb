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

    report = check(ctx.settings, ctx.clock.now())
    for problem in report.problems:
        print(problem, file=sys.stdout)
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
