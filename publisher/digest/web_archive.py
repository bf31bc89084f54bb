"""The digests' web archive: feeds/digests/<id>.html for each digest, feeds/digests/index.html and
the stylesheet both link, feeds/digests/digest.css.

Pages are written from the web HTML recorded with each digest (no personal links), so rewriting
them gives the same bytes; the index lists every recorded digest, newest first.
"""

from __future__ import annotations

import sqlite3
from datetime import tzinfo
from pathlib import Path

from publisher import urls
from publisher.config import Settings
from publisher.digest import compose
from publisher.digest.content import FOLDER, date_label, period_label
from publisher.output import write_atomic
from publisher.render import Templates
from publisher.store import digests as store_digests

INDEX_TEMPLATE = "digest_index.html.j2"


def write(conn: sqlite3.Connection, settings: Settings, digest_ids: list[str] | None = None) -> list[Path]:
    """Write the web version of the given digests (all when None), the stylesheet and the index.
    Returns the paths written (unchanged files are skipped by write_atomic but still listed)."""
    return [path for path, _ in write_changes(conn, settings, digest_ids)]


def write_changes(
    conn: sqlite3.Connection, settings: Settings, digest_ids: list[str] | None = None
) -> list[tuple[Path, bool]]:
    """As `write`, with each path whether its bytes changed."""
    wanted = None if digest_ids is None else set(digest_ids)
    folder = settings.feeds_dir / FOLDER
    done = []
    for digest_id, web_html in store_digests.web_pages(conn):
        if wanted is None or digest_id in wanted:
            target = folder / f"{digest_id}.html"
            done.append((target, write_atomic(target, web_html.encode("utf-8"))))
    stylesheet = folder / compose.STYLESHEET
    done.append(
        (stylesheet, write_atomic(stylesheet, compose.stylesheet(Templates(settings)).encode("utf-8")))
    )
    index = folder / "index.html"
    done.append((index, write_atomic(index, render_index(conn, settings).encode("utf-8"))))
    return done


def write_stylesheet(settings: Settings) -> Path:
    """feeds/digests/digest.css, which every web version and the index link."""
    target = settings.feeds_dir / FOLDER / compose.STYLESHEET
    write_atomic(target, compose.stylesheet(Templates(settings)).encode("utf-8"))
    return target


def write_page(settings: Settings, digest_id: str, web_html: str) -> Path:
    """Write one digest's web version and the stylesheet it links (before the digest is recorded)."""
    target = settings.feeds_dir / FOLDER / f"{digest_id}.html"
    write_stylesheet(settings)
    write_atomic(target, web_html.encode("utf-8"))
    return target


def render_index(conn: sqlite3.Connection, settings: Settings) -> str:
    tz = settings.site.tz
    entries = [
        {
            "subject": summary.subject,
            "url": summary.web_url,
            "period": _period(conn, summary, tz),
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
        stylesheet=compose.STYLESHEET,
        digests=entries,
    )


def _period(conn: sqlite3.Connection, summary: store_digests.DigestSummary, tz: tzinfo) -> str:
    """The dateline the digest itself shows (see content.build): a first digest spans its articles."""
    if summary.period_start is None:
        dates = store_digests.article_dates(conn, summary.id)
        if dates:
            return period_label(min(dates), max(dates), tz)
    return period_label(summary.period_start, summary.period_end, tz)
