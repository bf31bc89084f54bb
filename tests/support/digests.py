"""Helpers for digest tests: articles made live in a real state database, as the build does it."""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from publisher import ingest
from publisher.config import Settings
from publisher.store import articles, db


def markdown(
    title: str, date: str, body: str = "A paragraph of the story.", author: str | None = None
) -> str:
    """A Markdown article with front matter; the title goes in a YAML double-quoted string, so YAML
    escapes in it (\\r, \\n, \\u2028) become the characters themselves."""
    quoted = title.replace('"', '\\"')
    lines = ["---", f'title: "{quoted}"', f"date: {date}"]
    if author is not None:
        lines.append(f'author: "{author}"')
    return "\n".join([*lines, "---", "", textwrap.dedent(body).strip(), ""])


def publish(settings: Settings, live_at: datetime) -> list[str]:
    """Ingest seeds/, give every article its identity, and mark the new ones live at `live_at`.
    Returns the ids marked live now."""
    result = ingest.ingest(settings)
    with connection(settings.db_path) as conn:
        report = articles.sync(conn, result.articles, live_at, host=settings.site.host)
        already = {
            str(r[0]) for r in conn.execute("SELECT id FROM articles WHERE live_at IS NOT NULL").fetchall()
        }
        fresh = [p.id for p in report.published if p.id not in already]
        articles.mark_live(conn, fresh, live_at)
        # As if a build had put them out (digests select along out_at).
        conn.execute("UPDATE articles SET out_at = live_at WHERE out_at IS NULL AND live_at IS NOT NULL")
    return fresh


@contextmanager
def connection(path: Path) -> Iterator[sqlite3.Connection]:
    conn = db.connect(path)
    try:
        yield conn
    finally:
        conn.close()


def build(project: Any, at: datetime) -> None:
    """Run the real `publisher build` at `at` (articles first going out get live_at = at)."""
    result = project.cli("-q", "build", now=at)
    assert result.code == 0, result.err
