"""The pipeline: the one place that sequences the stages (ingest → store → feeds/pages → digest →
delivery). The CLI and the daemon call these functions and never re-implement the sequence.

Everything below receives `now` (and, for delivery, the transport) from the caller.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from publisher import ingest
from publisher.config import Settings
from publisher.models import Article, Problem

log = logging.getLogger("publisher.pipeline")


@dataclass
class CheckReport:
    """What `publisher check` found: every problem, and counts for the summary line."""

    files: int = 0
    valid: int = 0
    drafts: int = 0
    scheduled: int = 0
    problems: list[Problem] = field(default_factory=list)
    articles: list[Article] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len({p.path for p in self.problems if p.severity == "error"})

    @property
    def warnings(self) -> int:
        return sum(1 for p in self.problems if p.severity == "warning")


def check(settings: Settings, now: datetime) -> CheckReport:
    """Validate every file in seeds/ without writing anything anywhere."""
    result = ingest.ingest(settings)
    dupes = ingest.duplicates(result.articles, settings)
    duplicate_paths = {p.path for p in dupes}
    articles = [a for a in result.articles if ingest.display(settings, a.source) not in duplicate_paths]
    # Files refused while scanning (a link leading outside seeds/, a FIFO) count as checked too, so
    # the summary's "rejected" never exceeds its "checked".
    scanned = {ingest.display(settings, rel) for rel in result.invalid} | {
        ingest.display(settings, a.source) for a in result.articles
    }
    refused = {p.path for p in result.problems if p.severity == "error"} - scanned
    return CheckReport(
        files=result.files + len(refused),
        valid=len(articles),
        drafts=sum(1 for a in articles if a.draft),
        scheduled=sum(1 for a in articles if not a.draft and a.date > now),
        problems=sorted([*result.problems, *dupes], key=lambda p: (p.path, p.severity != "error")),
        articles=articles,
    )


PREVIEW_FOLDER = "preview"


def digest_preview(settings: Settings, now: datetime, *, backfill: int | None = None) -> list[Path]:
    """Render the next digest from the real articles into state/preview/ (HTML and text parts, as
    a subscriber would get them, with a dummy unsubscribe link). Sends nothing and records
    nothing: the database is opened read-only. Returns the paths written; [] when there would be
    no digest now."""
    from publisher import digest
    from publisher.output import write_atomic
    from publisher.store import db

    conn = db.connect(settings.db_path, readonly=True)
    try:
        rendered = digest.render_preview(conn, settings, now, backfill)
    finally:
        conn.close()
    if rendered is None:
        return []
    html, text = digest.personalise(rendered, digest.unsubscribe_url(settings, "preview"), "")
    folder = settings.state_dir / PREVIEW_FOLDER
    paths = [folder / "next-digest.html", folder / "next-digest.txt"]
    write_atomic(paths[0], html.encode("utf-8"))
    write_atomic(paths[1], text.encode("utf-8"))
    return paths
