"""From selected articles to `Content`: ids, labels, subject, preheader and the per-article blocks.

Every string that reaches a mail header (subject, preheader) is flattened to one line here, so no
title or site name can carry a CR or LF into the message.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from html.parser import HTMLParser

from publisher import urls
from publisher.config import Settings
from publisher.digest.compose import Content, Item, Picture, one_line
from publisher.ingest.images import NotAnImage, dimensions
from publisher.models import Article, Published
from publisher.render import Templates

log = logging.getLogger(__name__)

FOLDER = "digests"
SUBJECT_MAX = 200
PREHEADER_MAX = 140
TITLE_MAX = 200
SUMMARY_MAX = 400
PICTURE_WIDTH = 536  # the column's inner width: 600 px less its 32 px padding on each side


def page_path(digest_id: str) -> str:
    """Path of a digest's web version relative to the site root."""
    return f"{FOLDER}/{digest_id}.html"


def web_url(settings: Settings, digest_id: str) -> str:
    return urls.absolute(settings.site, page_path(digest_id))


def make_id(period_end: datetime, article_ids: Sequence[str]) -> str:
    """`d-YYYYMMDD-HHMM-<hash>` (UTC): the same cut-off and articles always give the same id."""
    end = period_end.astimezone(UTC)
    seed = end.isoformat() + "\n" + "\n".join(article_ids)
    return f"d-{end:%Y%m%d-%H%M}-{hashlib.sha256(seed.encode('utf-8')).hexdigest()[:8]}"


def date_label(moment: datetime, tz: tzinfo) -> str:
    """`1 March 2025` in the site's timezone."""
    local = moment.astimezone(tz)
    return f"{local.day} {local:%B %Y}"


def period_label(start: datetime | None, end: datetime, tz: tzinfo) -> str:
    """`19 February – 1 March 2025`, `1 March 2025` for one day, `Until 1 March 2025` without a start."""
    if start is None:
        return f"Until {date_label(end, tz)}"
    first, last = start.astimezone(tz), end.astimezone(tz)
    if first.date() >= last.date():
        return date_label(last, tz)
    if first.year == last.year:
        return f"{first.day} {first:%B} – {date_label(last, tz)}"
    return f"{date_label(first, tz)} – {date_label(last, tz)}"


def order(published: Sequence[Published]) -> list[Published]:
    """Newest article first (by its date), ties by id: the order readers see."""
    return sorted(published, key=lambda p: (-p.article.date.timestamp(), p.id))


def build(
    settings: Settings,
    templates: Templates,
    digest_id: str,
    period_start: datetime | None,
    period_end: datetime,
    published: Sequence[Published],
) -> Content:
    """Everything the templates show, for articles already in reading order."""
    site = settings.site
    tz = site.tz
    items = tuple(
        Item(
            title=one_line(p.article.title, TITLE_MAX),
            url=urls.article_url(site, p.identity.slug),
            date=date_label(p.article.date, tz),
            author=one_line(p.article.author or site.author, TITLE_MAX),
            summary=one_line(p.article.summary, SUMMARY_MAX),
            picture=_picture(settings, p.article),
        )
        for p in published
    )
    if period_start is None and published:
        # A first digest with back-catalogue articles (backfill) has no previous cut-off: its
        # dateline spans the articles it holds, not the time up to the day it is made.
        dates = [p.article.date for p in published]
        label = period_label(min(dates), max(dates), tz)
    else:
        label = period_label(period_start, period_end, tz)
    subject = _subject(settings, templates, items, label)
    preheader = one_line(" · ".join(item.title for item in items), PREHEADER_MAX)
    return Content(
        lang=site.language,
        site_title=one_line(site.title),
        site_url=site.base_url,
        subject=subject,
        preheader=preheader,
        period_label=label,
        items=items,
        web_url=web_url(settings, digest_id),
        reason=f"You are receiving this email because you subscribed to the {one_line(site.title)} "
        "digest of new articles.",
        web_reason=f"This is the web version of the {one_line(site.title)} email digest.",
        postal_address=one_line(settings.digest.postal_address),
    )


def _subject(settings: Settings, templates: Templates, items: Sequence[Item], label: str) -> str:
    # Values are marked safe: a subject is plain text, not HTML, so "&" must stay "&".
    safe = templates.markup
    site = settings.site
    rendered = templates.render_string(
        settings.digest.subject,
        site={"title": safe(site.title), "url": safe(site.base_url), "author": safe(site.author)},
        count=len(items),
        titles=[safe(item.title) for item in items],
        period=safe(label),
    )
    return one_line(rendered, SUBJECT_MAX) or one_line(site.title, SUBJECT_MAX)


def _picture(settings: Settings, article: Article) -> Picture | None:
    """The article's first picture (its front-matter `image`, else the first in its body), or None.
    Only a file already in feeds/ is shown: a digest never links a picture that is not there."""
    if not article.images:
        return None
    name = article.images[0][1]
    try:  # the bytes were checked whole at ingest and copied only if unchanged: the header will do
        _, width, height = dimensions((settings.feeds_dir / name).read_bytes())
    except (OSError, NotAnImage) as exc:
        log.warning("digest: %s: picture %s left out: %s", article.source, name, exc)
        return None
    url = urls.absolute(settings.site, name)
    shown = min(width, PICTURE_WIDTH)
    alt = one_line(_Alts.of(article.body_html).get(url, ""), SUMMARY_MAX)
    return Picture(url=url, alt=alt, width=shown, height=max(1, round(height * shown / width)))


class _Alts(HTMLParser):
    """The alt text of each image in an article's HTML, by its (absolute) address."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, str] = {}

    @classmethod
    def of(cls, html: str) -> dict[str, str]:
        parser = cls()
        parser.feed(html)
        return parser.found

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img" and values.get("src"):
            self.found.setdefault(str(values["src"]), values.get("alt") or "")
