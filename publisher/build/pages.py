"""The web pages in feeds/: index.html (the latest articles) and articles/<slug>.html (one each).

Pages are rendered from the Jinja2 templates through `render.Templates` and returned as bytes;
writing them is the build's job (atomically, through `output`). Dates are shown in the site's
timezone, and a page depends only on its own article, so adding or editing one article rewrites
that page and index.html, nothing else. The static files beside them (style.css, atom.xsl) are
copied as they are.

URLs: a page reaches the site's own files (stylesheet, feeds, other pages, images) by page-relative
URLs (`style.css` from index.html, `../style.css` from an article), so the same feeds/ works opened
from disk, served by `publisher serve` on 127.0.0.1 and on the real host. What must name the real
site stays absolute: the canonical link, Open Graph and Twitter card tags. Article bodies hold
absolute URLs (the feeds and the digest need them); the page's copy is made relative here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher import BUNDLED_TEMPLATES, urls
from publisher.config import Settings
from publisher.errors import OutputError
from publisher.ingest.text import summary_after_title
from publisher.models import Published

if TYPE_CHECKING:
    from publisher.render import Templates

# Read here without importing Jinja2: a build with nothing to do only fingerprints the templates.
BUNDLED = BUNDLED_TEMPLATES

INDEX = "index.html"
STYLESHEET = "style.css"
ARTICLE_TEMPLATE = "article.html.j2"
INDEX_TEMPLATE = "index.html.j2"
# Copied from the templates folders into feeds/ unchanged.
STATIC_FILES = (STYLESHEET, "atom.xsl")
# Everything that shapes a page: a change to any of these re-renders every page.
PAGE_TEMPLATES = ("base.html.j2", INDEX_TEMPLATE, ARTICLE_TEMPLATE, "_subscribe_form.html.j2")


@dataclass(frozen=True, slots=True)
class _Entry:
    """An article as the templates see it: text, its absolute URL (`url`: canonical, Open Graph)
    and its URL from the page it is shown on (`href`), dates as ISO and as words."""

    title: str
    url: str
    href: str
    date: str
    date_text: str
    updated: str
    updated_text: str | None
    author: str
    summary: str  # to show under the title: never repeats it (empty when it would say nothing more)
    description: str  # the whole summary: meta description, Open Graph, Twitter card
    tags: tuple[str, ...]
    image: str | None  # absolute URL of its first image (Open Graph, Twitter card), or None
    body: Any  # markupsafe.Markup of HTML publisher built itself


def template_folders(settings: Settings) -> list[Path]:
    """Where templates are looked up, the operator's folder first."""
    folders = [settings.paths.templates]
    if settings.paths.templates != BUNDLED:
        folders.append(BUNDLED)
    return folders


def find_template(settings: Settings, name: str) -> Path | None:
    for folder in template_folders(settings):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


class Pages:
    """Renders the pages of one build; the templates are compiled once and reused."""

    def __init__(self, settings: Settings, templates: Templates | None = None) -> None:
        self.settings = settings
        self.site = settings.site
        if templates is None:
            from publisher.render import Templates

            templates = Templates(settings)
        self.templates = templates
        self.tz = settings.site.tz
        self.images_queued: set[str] = set()  # images this process queued in this build
        self.links = self._links("")
        self.article_links = self._links(urls.up(urls.article_path("x")))

    def _links(self, root: str) -> dict[str, str]:
        """The site's own URLs from a page `root` away from the site's top (`""` or `"../"`)."""
        return {
            "root": root,  # prefix for any other path under feeds/
            "home": root + INDEX,
            "style": root + STYLESHEET,
            "atom": root + "atom.xml",
            "rss": root + "rss.xml",
            "json": root + "feed.json",
            "site": urls.absolute(self.site, ""),  # the real site: canonical, Open Graph
        }

    def _day(self, moment: datetime) -> str:
        local = moment.astimezone(self.tz)
        return f"{local.day} {local:%B %Y}"  # English month names: strftime in the C locale

    def _entry(self, item: Published, *, root: str, body: bool) -> _Entry:
        article = item.article
        updated_text = None
        if item.updated.astimezone(self.tz).date() != article.date.astimezone(self.tz).date():
            updated_text = self._day(item.updated)
        html = urls.relativise(article.body_html, self.site, root, INDEX) if body else ""
        return _Entry(
            title=article.title,
            url=urls.article_url(self.site, item.identity.slug),
            href=root + urls.article_path(item.identity.slug),
            date=article.date.isoformat(),
            date_text=self._day(article.date),
            updated=item.updated.isoformat(),
            updated_text=updated_text,
            author=article.author or self.site.author,
            summary=summary_after_title(article.title, article.summary),
            description=article.summary,
            tags=article.tags,
            image=urls.absolute(self.site, article.images[0][1]) if article.images else None,
            body=self.templates.markup(html) if body else None,
        )

    def article(self, item: Published) -> bytes:
        """articles/<slug>.html for one published article."""
        links = self.article_links
        html = self.templates.render(
            ARTICLE_TEMPLATE,
            site=self.site,
            links=links,
            entry=self._entry(item, root=links["root"], body=True),
        )
        return html.encode("utf-8")

    def index(self, items: Sequence[Published]) -> bytes:
        """index.html listing `items` (newest first, as given)."""
        entries = [self._entry(item, root="", body=False) for item in items]
        return self.templates.render(
            INDEX_TEMPLATE, site=self.site, links=self.links, entries=entries
        ).encode("utf-8")

    def static(self) -> dict[str, bytes]:
        """The static files to copy into feeds/ (style.css is required; atom.xsl is copied when found)."""
        found: dict[str, bytes] = {}
        for name in STATIC_FILES:
            path = find_template(self.settings, name)
            if path is None:
                if name == STYLESHEET:
                    raise OutputError(f"template {name} not found")
                continue
            try:
                found[name] = path.read_bytes()
            except OSError as exc:
                raise OutputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        return found


def page_path(slug: str) -> str:
    """Where an article's page lives under feeds/."""
    return urls.article_path(slug)
