"""Test helpers for the feed and archive tests: `Published` entries made by hand, and the checks
every Atom document must pass (feedparser without complaint, the RFC 4287 RELAX NG schema).
"""

from __future__ import annotations

import functools
import hashlib
import html
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
from lxml import etree

from publisher.models import Article, Identity, Published

# RFC 4287 Appendix B, converted to the XML syntax (the file's first comment names its source).
ATOM_RNG = Path(__file__).resolve().parents[1] / "data" / "atom.rng"
ATOM = "{http://www.w3.org/2005/Atom}"
FH = "{http://purl.org/syndication/history/1.0}"
T0 = datetime(2025, 2, 1, 9, 30, tzinfo=UTC)


def article(
    n: int,
    *,
    title: str | None = None,
    body: str | None = None,
    date: datetime | None = None,
    author: str | None = None,
    tags: tuple[str, ...] = (),
    summary: str | None = None,
    source: str | None = None,
) -> Article:
    """Article number `n`: distinct text, dated `n` hours after T0 unless told otherwise."""
    title = title if title is not None else f"Article number {n}"
    paragraphs = (body if body is not None else f"Story {n}: something happened, and then more.",)
    body_html = "\n".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)
    story = hashlib.sha256(paragraphs[0].encode()).hexdigest()
    return Article(
        source=source or f"{n:04d}.txt",
        format="text",
        title=title,
        date=date if date is not None else T0 + timedelta(hours=n),
        author=author,
        tags=tags,
        summary=summary if summary is not None else paragraphs[0][:120],
        body_html=body_html,
        paragraphs=paragraphs,
        story_hash=story,
        content_hash=hashlib.sha256((title + body_html).encode()).hexdigest(),
    )


def published(n: int, *, updated: datetime | None = None, slug: str | None = None, **kw: Any) -> Published:
    """A `Published` entry as the store would give it (id, slug and seq minted from `n`)."""
    art = article(n, **kw)
    return Published(
        art,
        Identity(
            id=f"tag:news.example.org,2025-02-01:article-{n}",
            slug=slug or f"article-{n}",
            seq=n,
            first_seen=art.date,
            updated=updated if updated is not None else art.date,
        ),
    )


def newest_first(entries: list[Published]) -> list[Published]:
    return sorted(entries, key=lambda p: (p.published, p.identity.seq), reverse=True)


def parse_clean(data: bytes) -> Any:
    """feedparser's view of `data`; fails the test on any bozo (ill-formed or suspicious) feed."""
    parsed = feedparser.parse(data)
    assert not parsed.bozo, f"feedparser complained: {parsed.get('bozo_exception')!r}"
    return parsed


@functools.cache
def relaxng() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(ATOM_RNG)))


def assert_atom_valid(data: bytes) -> etree._Element:
    """`data` is well-formed Atom that the RFC 4287 schema accepts; returns the root element."""
    root = etree.fromstring(data)
    schema = relaxng()
    if not schema.validate(root):
        raise AssertionError(f"atom.rng rejects the document: {schema.error_log}")
    return root
