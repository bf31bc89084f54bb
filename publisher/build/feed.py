"""Feed documents as bytes: Atom 1.0 (atom.xml and its RFC 5005 archives), RSS 2.0 and JSON Feed 1.1.

The only module that imports feedgen. Every function here is pure: `Published` entries (already
chosen and sorted newest first by the caller) and the settings in, the exact bytes of one file out;
writing them (atomically) is the caller's job. Same input, same bytes: nothing reads the clock, the
feed's `updated` is its newest entry's, and attribute order is fixed by the code below.

feedgen 1.0 traps worked around here: entries are appended in order, every
`updated` is set explicitly, datetimes are aware, documents come back as bytes (never `atom_file`),
Atom entries never get `description()` (it overwrites `content`), no CDATA content type, the
entry link's `rel`/`type` that feedgen drops (upstream issue 135) are restored inside feedgen's own
tree through its extension hooks, and the RSS channel link is added last (feedgen uses the last).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from publisher import urls
from publisher.config import Settings, SiteSettings
from publisher.models import Published

ATOM_NS = "http://www.w3.org/2005/Atom"
FH_NS = "http://purl.org/syndication/history/1.0"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"

ATOM_FILE = "atom.xml"
RSS_FILE = "rss.xml"
JSON_FILE = "feed.json"
STYLESHEET = "atom.xsl"  # templates/atom.xsl, copied beside atom.xml by the build
GENERATOR = "publisher"  # no version: an upgrade must not change the bytes of frozen archives

# The `updated` of a feed with no entries: any fixed moment keeps the bytes stable; the epoch
# says "nothing yet" to anyone who looks.
EMPTY_UPDATED = datetime(1970, 1, 1, tzinfo=UTC)

# Characters XML 1.0 forbids (C0 controls but tab/LF/CR, lone surrogates, U+FFFE/U+FFFF). lxml
# refuses them outright, so they are dropped from every string before it reaches a document.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_C0 = bytes(c for c in range(0x20) if c not in (0x09, 0x0A, 0x0D))


def clean(text: str) -> str:
    """`text` without the characters XML 1.0 cannot carry."""
    # Fast path, some 20 times quicker than the regex on a long article: C-level byte deletion
    # finds no control character and substring search finds no non-character.
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return _NOT_XML.sub("", text)
    if len(raw.translate(None, _C0)) == len(raw) and "\ufffe" not in text and "\uffff" not in text:
        return text
    return _NOT_XML.sub("", text)


# Text that a reader treating it as HTML would see markup in: a tag, a comment or declaration, or a
# character reference. Such text goes out escaped, as HTML (Atom `type="html"`, RSS always).
_LOOKS_LIKE_MARKUP = re.compile(r"<[A-Za-z/!?]|&(?:#[0-9]+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);")


def looks_like_markup(text: str) -> bool:
    """Would `text`, read as HTML, hold an element, a comment or a character reference?"""
    return _LOOKS_LIKE_MARKUP.search(text) is not None


def as_html(text: str) -> str:
    """Plain `text` as the HTML that shows exactly it: no element or reference can come alive."""
    return html.escape(text, quote=False)


def archive_path(number: int) -> str:
    """Where archive document `number` lives, relative to the site root."""
    return f"archive/{number}.xml"


@dataclass(frozen=True, slots=True)
class _Item:
    """One entry as every format shows it: cleaned text, absolute URL, dates to the second."""

    id: str
    url: str
    title: str
    summary: str
    content_html: str
    author: str
    tags: tuple[str, ...]
    published: datetime
    updated: datetime


def _second(moment: datetime) -> datetime:
    if moment.tzinfo is None:  # models only hold aware datetimes; this guards hand-made input
        raise ValueError("naive datetime in a feed entry")
    return moment.replace(microsecond=0)


def _item(entry: Published, site: SiteSettings) -> _Item:
    article, identity = entry.article, entry.identity
    tags: dict[str, None] = {}  # ordered and without repeats
    for tag in article.tags:
        if cleaned := clean(tag).strip():
            tags[cleaned] = None
    return _Item(
        id=clean(identity.id),
        url=urls.article_url(site, identity.slug),
        title=clean(article.title).strip() or identity.slug,
        summary=clean(article.summary),
        content_html=clean(article.body_html),
        author=clean(article.author or "").strip() or clean(site.author),
        tags=tuple(tags),
        published=_second(article.date),
        updated=_second(identity.updated),
    )


def _newest(items: Sequence[_Item]) -> datetime:
    """The feed's `updated`: its newest entry's, never the build time."""
    return max((item.updated for item in items), default=EMPTY_UPDATED)


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _subtitle(site: SiteSettings) -> str:
    return clean(site.description).strip() or f"The latest articles from {clean(site.title)}"


# --- Atom --------------------------------------------------------------------------------------


def atom_current(entries: Sequence[Published], settings: Settings, *, prev_archive: str | None) -> bytes:
    """atom.xml: the subscription document. `prev_archive` is the newest archive's absolute URL."""
    links = [("prev-archive", prev_archive)] if prev_archive else []
    return _atom(entries, settings, self_path=ATOM_FILE, links=links, archive=False)


def atom_archive(
    entries: Sequence[Published],
    settings: Settings,
    *,
    number: int,
    prev_archive: str | None,
    next_archive: str | None,
) -> bytes:
    """archive/<number>.xml: an RFC 5005 archive document (`fh:archive`, `current`, prev/next)."""
    if number < 1:
        raise ValueError(f"archive numbers start at 1, not {number}")
    links = [("current", urls.absolute(settings.site, ATOM_FILE))]
    if prev_archive:
        links.append(("prev-archive", prev_archive))
    if next_archive:
        links.append(("next-archive", next_archive))
    return _atom(entries, settings, self_path=archive_path(number), links=links, archive=True)


def _atom(
    entries: Sequence[Published],
    settings: Settings,
    *,
    self_path: str,
    links: list[tuple[str, str]],
    archive: bool,
) -> bytes:
    site = settings.site
    items = [_item(entry, site) for entry in entries]
    fg = FeedGenerator()
    # Our fixes run inside feedgen's own tree (its extension hooks), so the document is
    # serialised once and never parsed back.
    fg.register_extension("publisher", _AtomFeed, _AtomEntry, atom=True, rss=False)
    fg.publisher.archive = archive
    # One logical feed: the archives share the subscription document's id (RFC 5005 examples).
    fg.id(urls.absolute(site, ATOM_FILE))
    fg.title(clean(site.title))
    fg.subtitle(_subtitle(site))
    fg.author(name=clean(site.author))
    fg.language(site.language)
    fg.generator(GENERATOR)
    fg.link(href=urls.absolute(site, self_path), rel="self", type="application/atom+xml")
    fg.link(href=site.base_url, rel="alternate", type="text/html")
    if not archive:  # WebSub: the subscription document names its hubs (archives never change)
        for hub in settings.websub.hubs:
            fg.link(href=hub, rel="hub")
    for rel, href in links:
        fg.link(href=href, rel=rel, type="application/atom+xml")
    fg.updated(_newest(items))
    for item in items:
        fe = fg.add_entry(order="append")  # the default prepends, reversing the caller's order
        fe.id(item.id)
        fe.title(item.title)
        fe.updated(item.updated)
        fe.published(item.published)
        fe.author(name=item.author)
        fe.link(href=item.url, rel="alternate", type="text/html")
        fe.summary(item.summary)
        fe.content(item.content_html, type="html")
        for tag in item.tags:
            fe.category(term=tag)
    data: bytes = fg.atom_str(pretty=True, xml_declaration=True, encoding="UTF-8")
    # Relative on purpose: browsers apply only same-origin stylesheets, and a site previewed on
    # another host (publisher serve) must still find it. Feed readers ignore the instruction.
    href = "../" * self_path.count("/") + STYLESHEET
    declaration = b"<?xml version='1.0' encoding='UTF-8'?>\n"
    if not data.startswith(declaration):  # a feedgen upgrade changed its output: fail loudly
        raise RuntimeError("unexpected XML declaration from feedgen")
    instruction = f'<?xml-stylesheet type="text/xsl" href="{href}"?>\n'.encode()
    return declaration + instruction + data[len(declaration) :]


def _declare_html(parent: etree._Element, names: tuple[str, ...]) -> None:
    """Atom text constructs whose text looks like markup become `type="html"`, escaped, so that
    readers show the text as written and validators see no undeclared HTML (RFC 4287 3.1)."""
    for name in names:
        for node in parent.iterfind(name):
            text = node.text or ""
            if node.get("type", "text") == "text" and looks_like_markup(text):
                node.set("type", "html")
                node.text = as_html(text)


class _AtomFeed(BaseExtension):  # type: ignore[misc]
    """Marks an archive document with `fh:archive` (RFC 5005), declared on the root element, and
    declares the feed's own title and subtitle as HTML when they look like markup."""

    archive = False

    def extend_ns(self) -> dict[str, str]:
        return {"fh": FH_NS} if self.archive else {}

    def extend_atom(self, feed: etree._Element) -> etree._Element:
        _declare_html(feed, ("title", "subtitle"))
        if self.archive:
            etree.SubElement(feed, f"{{{FH_NS}}}archive")
        return feed


class _AtomEntry(BaseEntryExtension):  # type: ignore[misc]
    """Restores the entry link's `rel` and `type`, which feedgen drops (upstream issue 135), and
    declares titles and summaries that look like markup as HTML."""

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        _declare_html(entry, ("title", "summary"))
        # feedgen's elements carry no namespace (it writes xmlns as a plain attribute); each entry
        # has exactly one link: its page.
        for link in entry.iterfind("link"):
            link.set("rel", "alternate")
            link.set("type", "text/html")
        return entry


# --- RSS 2.0 -----------------------------------------------------------------------------------


def _rss_title(text: str) -> str:
    # Readers differ on whether an RSS title is HTML; escaped only when it looks like markup, it
    # reads right either way for ordinary titles and is never live for the others.
    return as_html(text) if looks_like_markup(text) else text


def rss(entries: Sequence[Published], settings: Settings) -> bytes:
    """rss.xml: RSS 2.0 with `guid isPermaLink="false"`, RFC 822 dates and an atom:link to itself.

    Every reader treats `description` as HTML, many treat `title` so: our plain texts go there
    escaped as HTML (so escaped twice in the XML), never as live markup."""
    site = settings.site
    items = [_item(entry, site) for entry in entries]
    fg = FeedGenerator()
    fg.load_extension("dc")  # dc:creator: RSS <author> must be an email address, ours is a name
    if settings.websub.hubs:
        fg.register_extension("websub", _RssHubs, None, atom=False, rss=True)
        fg.websub.hubs = list(settings.websub.hubs)
    fg.title(_rss_title(clean(site.title)))
    fg.link(href=urls.absolute(site, RSS_FILE), rel="self", type="application/rss+xml")
    # feedgen makes the channel <link> of whichever link came last: the home page must.
    fg.link(href=site.base_url, rel="alternate")
    fg.description(as_html(_subtitle(site)))
    fg.language(site.language)
    fg.generator(GENERATOR)
    fg.lastBuildDate(_newest(items))  # the default is the build time
    for item in items:
        fe = fg.add_entry(order="append")
        fe.id(item.id)  # also the guid, isPermaLink="false": a tag: URI is no URL to follow
        fe.title(_rss_title(item.title))
        fe.link(href=item.url, rel="alternate")
        fe.description(as_html(item.summary))  # RSS only: description + content:encoded
        fe.content(item.content_html)
        fe.published(item.published)
        fe.dc.dc_creator(item.author)
        for tag in item.tags:
            fe.category(term=tag)
    document: bytes = fg.rss_str(pretty=True, xml_declaration=True, encoding="UTF-8")
    return document


class _RssHubs(BaseExtension):  # type: ignore[misc]
    """WebSub hubs as `atom:link rel="hub"` beside the channel's self link (feedgen writes an
    atom:link for `self` only)."""

    hubs: list[str] = []  # noqa: RUF012 (set per document, before rendering)

    def extend_rss(self, feed: etree._Element) -> etree._Element:
        channel = feed.find("channel")
        anchor = channel.find(f"{{{ATOM_NS}}}link") if channel is not None else None
        if channel is None or anchor is None:
            raise RuntimeError("unexpected RSS document from feedgen: no atom:link in the channel")
        position = list(channel).index(anchor) + 1
        for offset, hub in enumerate(self.hubs):
            link = etree.Element(f"{{{ATOM_NS}}}link", href=hub, rel="hub")
            channel.insert(position + offset, link)
        return feed


# --- JSON Feed 1.1 -----------------------------------------------------------------------------


def json_feed(entries: Sequence[Published], settings: Settings) -> bytes:
    """feed.json: JSON Feed 1.1, keys in a fixed order, UTF-8 (not \\u-escaped), one trailing newline."""
    site = settings.site
    doc: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": clean(site.title),
        "home_page_url": site.base_url,
        "feed_url": urls.absolute(site, JSON_FILE),
        "description": _subtitle(site),
        "language": site.language,
        "authors": [{"name": clean(site.author)}],
        **(
            {"hubs": [{"type": "WebSub", "url": hub} for hub in settings.websub.hubs]}
            if settings.websub.hubs
            else {}
        ),
        "items": [_json_item(_item(entry, site), site) for entry in entries],
    }
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _json_item(item: _Item, site: SiteSettings) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": item.id,
        "url": item.url,
        "title": item.title,
        "content_html": item.content_html,
        "summary": item.summary,
        "date_published": _rfc3339(item.published),
        "date_modified": _rfc3339(item.updated),
        "authors": [{"name": item.author}],
        "language": site.language,
    }
    if item.tags:
        out["tags"] = list(item.tags)
    return out


# The documents of the current entries beside atom.xml (which also links its archives): file name in
# feeds/ -> the function that makes its bytes. A new output format is a function above and a line
# here; tests/test_feed_golden.py then asks for its golden file.
FORMATS: dict[str, Callable[[Sequence[Published], Settings], bytes]] = {RSS_FILE: rss, JSON_FILE: json_feed}
