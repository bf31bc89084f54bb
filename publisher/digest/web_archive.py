"""The digests' web archive: feeds/digests/<id>.html for each digest, and feeds/digests/index.html.

Pages are written from the web HTML recorded with each digest (no personal links), so rewriting
them gives the same bytes; the index lists every recorded digest, newest first.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from publisher import urls
from publisher.config import Settings
from publisher.digest.content import FOLDER, date_label, period_label
from publisher.output import write_atomic
from publisher.render import Templates
from publisher.store import digests as store_digests

INDEX_TEMPLATE = "digest_index.html.j2"


def write(conn: sqlite3.Connection, settings: Settings, digest_ids: list[str] | None = None) -> list[Path]:
    """Write the web version of the given digests (all when None) and the index. Returns the paths
    written (unchanged files are skipped by write_atomic but still listed)."""
    wanted = None if digest_ids is None else set(digest_ids)
    folder = settings.feeds_dir / FOLDER
    written = []
    for digest_id, web_html in store_digests.web_pages(conn):
        if wanted is None or digest_id in wanted:
            target = folder / f"{digest_id}.html"
            write_atomic(target, web_html.encode("utf-8"))
            written.append(target)
    index = folder / "index.html"
    write_atomic(index, render_index(conn, settings).encode("utf-8"))
    written.append(index)
    return written


def write_page(settings: Settings, digest_id: str, web_html: str) -> Path:
    """Write one digest's web version (before the digest is recorded)."""
    target = settings.feeds_dir / FOLDER / f"{digest_id}.html"
    write_atomic(target, web_html.encode("utf-8"))
    return target


def render_index(conn: sqlite3.Connection, settings: Settings) -> str:
    tz = settings.site.tz
    entries = [
        {
            "subject": summary.subject,
            "url": summary.web_url,
            "period": period_label(summary.period_start, summary.period_end, tz),
            "date": date_label(summary.period_end, tz),
            "iso": summary.period_end.astimezone(tz).date().isoformat(),
            "articles": summary.articles,
        }
        for summary in store_digests.summaries(conn)
    ]
    return Templates(settings).render(
        INDEX_TEMPLATE,
        lang=settings.site.language,
        site={"title": settings.site.title, "url": settings.site.base_url},
        index_url=urls.absolute(settings.site, f"{FOLDER}/index.html"),
        digests=entries,
    )
