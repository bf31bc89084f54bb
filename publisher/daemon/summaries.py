"""One-line summaries of what a job did, for the log and for `publisher status`'s "last work"."""

from __future__ import annotations

from pathlib import Path

from publisher import pipeline
from publisher.config import NOT_MAILED, Settings
from publisher.delivery.engine import SendReport
from publisher.errors import PublisherError
from publisher.models import escape_name
from publisher.pipeline import BuildReport

# Recipients named in the log after a send before it points at `digest --report`.
SHOWN_PROBLEMS = 10


def rel(settings: Settings, path: Path) -> str:
    """`seeds/x.md` for a path in seeds/, escaped as every message names a seed file."""
    try:
        return escape_name(f"{settings.seeds_dir.name}/{path.relative_to(settings.seeds_dir).as_posix()}")
    except ValueError:
        return escape_name(str(path))


def _counted(*counts: tuple[int, str]) -> list[str]:
    """`3 new`, `1 removed`: the counts that are not zero, in the order given."""
    return [f"{n} {what}" for n, what in counts if n]


def build(report: BuildReport) -> str:
    if report.skipped:
        return f"nothing changed ({report.published} published)"
    changes = _counted(
        (report.new, "new"),
        (report.changed, "changed"),
        (report.renamed, "renamed"),
        (report.removed, "removed"),
    )
    parts = [", ".join(changes) or "no article changed", f"{len(report.written)} files written"]
    parts.append(f"{report.published} published")
    if report.rejected:
        parts.append(f"{report.rejected} rejected")
    return f"{'; '.join(parts)} in {report.seconds:.2f}s"


def send(report: SendReport, written_to: str | None = None) -> str:
    """`written_to`: the outbox folder, when the messages were written there rather than mailed."""
    if not report.digests:
        return "no new articles, nothing sent"
    parts = [f"{report.sent} sent" if written_to is None else f"{report.sent} written to {written_to}"]
    parts += _counted(
        (report.failed, "failed"),
        (report.skipped, "skipped"),
        (report.bounced, "bounced"),
        (report.pending, "pending"),
    )
    which = ", ".join(report.digests)
    note = "" if written_to is None else f"; {NOT_MAILED}"
    return f"{'; '.join(parts)} (digest {which}) in {report.seconds:.1f}s{note}"


def not_delivered(settings: Settings, report: SendReport) -> list[str]:
    """Who did not get the digests of a send, and why, as the CLI's summary names them."""
    if not (report.failed or report.bounced or report.pending):
        return []
    lines: list[str] = []
    for digest_id in report.digests:
        try:
            lines += pipeline.digest_report(settings, digest_id).problem_lines(SHOWN_PROBLEMS)
        except PublisherError as exc:  # the send is done; only its report could not be read
            lines.append(f"{digest_id}: report unavailable: {exc.one_line()}")
    return lines
