"""One-line summaries of what a job did, for the log and for `publisher status`'s "last work"."""

from __future__ import annotations

from pathlib import Path

from publisher.config import Settings
from publisher.delivery.engine import SendReport
from publisher.pipeline import BuildReport


def rel(settings: Settings, path: Path) -> str:
    try:
        return f"{settings.seeds_dir.name}/{path.relative_to(settings.seeds_dir).as_posix()}"
    except ValueError:
        return str(path)


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


def send(report: SendReport) -> str:
    if not report.digests:
        return "no new articles, nothing sent"
    parts = [f"{report.sent} sent"]
    parts += _counted(
        (report.failed, "failed"),
        (report.skipped, "skipped"),
        (report.bounced, "bounced"),
        (report.pending, "pending"),
    )
    which = ", ".join(report.digests)
    return f"{'; '.join(parts)} (digest {which}) in {report.seconds:.1f}s"
