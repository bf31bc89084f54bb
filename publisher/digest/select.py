"""Which articles the next digest holds, and loading them.

The rule (see docs/digest.md):
- A digest holds the articles that went live (`articles.live_at`, set by the build when an article
  first goes out) after the previous digest's cut-off and up to `now`; `now` becomes its cut-off.
- Before the very first digest there is no cut-off. A first run with nothing to send records `now`
  as a baseline cut-off, so the back catalogue already live is never mailed by accident. The first
  digest then holds the articles that went live after the baseline, plus, when `backfill` (the
  argument, else `digest.backfill`) is N > 0, the N articles that went live most recently before
  `now` (whether before or after the baseline). Once a digest is recorded, backfill is ignored.
- No new articles: no digest (and nothing is recorded, except that first-run baseline).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from publisher import urls
from publisher.config import Settings
from publisher.models import Identity, Published
from publisher.store import articles as store_articles
from publisher.store import cache
from publisher.store import digests as store_digests
from publisher.store.db import from_db_time

log = logging.getLogger("publisher.digest")

# Loads the articles with these ids (those it cannot load, e.g. a file currently invalid, are absent).
Loader = Callable[[sqlite3.Connection, Settings, Sequence[str]], dict[str, Published]]


@dataclass(frozen=True, slots=True)
class Plan:
    period_start: datetime | None  # the previous cut-off; None before the first digest
    period_end: datetime
    article_ids: tuple[str, ...]  # oldest live first
    first: bool  # no digest recorded yet
    has_baseline: bool  # a cut-off exists (a digest's, or a first run's baseline)

    @property
    def sets_baseline(self) -> bool:
        """A first run with nothing to send: it only records where the next digest starts."""
        return self.first and not self.has_baseline and not self.article_ids


def plan(conn: sqlite3.Connection, settings: Settings, now: datetime, backfill: int | None) -> Plan:
    previous = store_digests.last_cutoff(conn)
    if previous is not None:
        if now <= previous:
            return Plan(previous, now, (), first=False, has_baseline=True)
        return Plan(previous, now, tuple(store_articles.live_between(conn, previous, now)), False, True)
    wanted = settings.digest.backfill if backfill is None else backfill
    if wanted < 0:
        raise ValueError("backfill must be 0 or more")
    base = store_digests.baseline(conn)
    live = store_articles.live_between(conn, None, now)
    new = set() if base is None else set(store_articles.live_between(conn, base, now))
    older = set(live[-wanted:]) if wanted > 0 else set()
    chosen = tuple(i for i in live if i in new or i in older)
    start = base if base is not None and not older - new else None
    return Plan(start, now, chosen, first=True, has_baseline=base is not None)


def sample(conn: sqlite3.Connection, now: datetime, count: int) -> Plan:
    """The `count` articles that went live most recently before `now`, whatever was mailed
    already: what a test copy shows when there is no digest to show."""
    live = store_articles.live_between(conn, None, now)
    return Plan(None, now, tuple(live[-count:]) if count > 0 else (), first=False, has_baseline=True)


def load(conn: sqlite3.Connection, settings: Settings, ids: Sequence[str]) -> dict[str, Published]:
    """The articles with their identities: content from the build's parse cache (`store.cache`),
    identity from `store.articles`. An id the cache does not hold (its file is currently invalid)
    is absent from the result, and said so in the log."""
    wanted = list(dict.fromkeys(ids))
    identities = _identities(conn, wanted)
    articles = cache.load_articles(conn, wanted)
    found = {i: Published(articles[i], identities[i]) for i in wanted if i in articles and i in identities}
    missing = [i for i in wanted if i not in found]
    if missing:
        log.warning(
            "digest: %d live article(s) left out: not in the build's cache (file invalid or removed)",
            len(missing),
            extra={"ids": " ".join(missing[:5])},
        )
    # A digest links to each article's page: one whose page is not in feeds/ is never mailed.
    pageless = [i for i, item in found.items() if not page_in_place(settings, item.identity.slug)]
    if pageless:
        log.warning(
            "digest: %d article(s) left out: their page is not in %s (run `publisher build`)",
            len(pageless),
            settings.feeds_dir,
            extra={"ids": " ".join(pageless[:5])},
        )
    return {i: item for i, item in found.items() if i not in pageless}


def page_in_place(settings: Settings, slug: str) -> bool:
    return (settings.feeds_dir / urls.article_path(slug)).is_file()


def _identities(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, Identity]:
    found: dict[str, Identity] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT id, slug, seq, first_seen, updated FROM articles WHERE id IN ({marks})", chunk
        )
        for r in rows:
            found[str(r[0])] = Identity(
                id=str(r[0]),
                slug=str(r[1]),
                seq=int(r[2]),
                first_seen=from_db_time(str(r[3])),
                updated=from_db_time(str(r[4])),
            )
    return found
