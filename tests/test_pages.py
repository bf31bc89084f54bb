"""The web pages in feeds/: page-relative links to the site's own files (absolute only where the
real site must be named), feed autodiscovery, escaping, and nothing inline that a strict
Content-Security-Policy would block."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from conftest import NOW, Project
from lxml import html

from publisher import pipeline
from publisher.build import pages as pages_module
from publisher.build.pages import Pages
from publisher.config import Settings
from publisher.errors import OutputError
from publisher.models import Article, Identity, Published


def _published(
    title: str = "A <b>bold</b> & “quoted” title", *, updated: datetime | None = None
) -> Published:
    date = datetime(2025, 2, 19, tzinfo=UTC)
    article = Article(
        source="x.md",
        format="markdown",
        title=title,
        date=date,
        author="Ayşe Yılmaz",
        tags=("world", "<script>"),
        summary="Summary with <i>markup</i> as text.",
        body_html="<p>Body by Erdoğan.</p>",
        paragraphs=("Body by Erdoğan.",),
        story_hash="s",
        content_hash="c",
    )
    identity = Identity(
        id="tag:news.example.org,2025-02-19:x", slug="x", seq=1, first_seen=NOW, updated=updated or date
    )
    return Published(article, identity)


def _links(doc: html.HtmlElement) -> list[str]:
    return [str(v) for v in doc.xpath("//@href | //@src | //@action")]


@pytest.fixture
def settings(project: Project) -> Settings:
    return project.settings()


def test_article_page_has_title_date_author_tags_body_canonical_and_a_way_back(settings: Settings) -> None:
    """Everything a reader needs, escaped where it is text, with absolute URLs only."""
    page = Pages(settings).article(_published()).decode("utf-8")
    doc = html.fromstring(page)
    assert doc.findtext(".//h1") == "A <b>bold</b> & “quoted” title"
    assert "<b>bold</b>" not in page and "<script>" not in page
    assert doc.xpath("//link[@rel='canonical']/@href") == ["https://news.example.org/articles/x.html"]
    assert doc.xpath("//time/@datetime")[0] == "2025-02-19T00:00:00+00:00"
    assert "19 February 2025" in page and "Ayşe Yılmaz" in page and "Body by Erdoğan." in page
    assert [li.text for li in doc.xpath("//ul[@class='tags']/li")] == ["world", "<script>"]
    assert doc.xpath("//a[@href='../index.html']")
    absolute = [link for link in _links(doc) if "://" in link]
    assert absolute == ["https://news.example.org/articles/x.html"]  # the canonical link only
    assert doc.xpath("//link[@rel='stylesheet']/@href") == ["../style.css"]
    assert "updated" not in doc.findtext(".//p[@class='byline']").lower()  # type: ignore[union-attr]


def test_a_later_update_is_shown(settings: Settings) -> None:
    """An article edited after its day says when."""
    item = _published(updated=datetime(2025, 3, 2, 10, tzinfo=UTC))
    assert "updated" in Pages(settings).article(item).decode("utf-8")


def test_index_lists_entries_with_autodiscovery_and_the_subscribe_form(settings: Settings) -> None:
    """Atom, RSS and JSON Feed are announced with <link rel=alternate>; the form posts to the site
    that serves the page (relative), and the canonical link names the real one."""
    items = [_published("First"), _published("Second")]
    doc = html.fromstring(Pages(settings).index(items))
    kinds = {e.get("type"): e.get("href") for e in doc.xpath("//link[@rel='alternate']")}
    assert kinds == {
        "application/atom+xml": "atom.xml",
        "application/rss+xml": "rss.xml",
        "application/feed+json": "feed.json",
    }
    assert [a.text for a in doc.xpath("//ol[@class='article-list']//h2/a")] == ["First", "Second"]
    assert doc.xpath("//ol[@class='article-list']//h2/a/@href") == ["articles/x.html"] * 2
    assert doc.xpath("//form/@action") == ["subscribe"]
    assert [link for link in _links(doc) if "://" in link] == ["https://news.example.org/"]


def test_links_in_an_article_body_become_relative_on_its_page(settings: Settings) -> None:
    """The body keeps absolute URLs for feeds and mail; its page reaches the site relatively."""
    item = _published()
    body = (
        '<p><a href="https://news.example.org/">home</a> <a href="https://news.example.org/articles/y.html#a">'
        'y</a> <a href="https://elsewhere.example/">out</a> <img src="https://news.example.org/images/p.png" '
        'alt="p"></p>'
    )
    item = Published(item.article.model_copy(update={"body_html": body}), item.identity)
    doc = html.fromstring(Pages(settings).article(item))
    assert doc.xpath("//div[@class='article-body']//@href | //div[@class='article-body']//@src") == [
        "../index.html",
        "../articles/y.html#a",
        "https://elsewhere.example/",
        "../images/p.png",
    ]


def test_no_inline_style_or_script_in_any_built_page(project: Project) -> None:
    """A strict CSP (no 'unsafe-inline') must not break a single page: no style=, <style>, <script>, on*=."""
    project.seed(
        "a.md", "---\ntitle: Hello\ndate: 2025-02-01\ntags: [x]\n---\nSome *text* <script>alert(1)</script>\n"
    )
    project.seed("b.txt", "date 2025-02-02 A plain story with <style>body{}</style> in it.\n")
    pipeline.build(project.settings(), NOW + timedelta(days=1))
    built = sorted(project.feeds.rglob("*.html"))
    assert len(built) == 4  # index, two articles, the digests' archive
    for path in built:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<script|<style|\sstyle=|\son[a-z]+=|javascript:", text, re.I), path.name


def test_stylesheet_is_copied_and_a_missing_one_is_an_error(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """style.css comes from the templates; an operator folder without it falls back to the bundled one."""
    settings = project.settings()
    static = Pages(settings).static()
    assert b"max-width" in static["style.css"]
    bare = settings.model_copy(
        update={"paths": settings.paths.model_copy(update={"templates": project.root})}
    )
    assert Pages(bare).static()["style.css"] == static["style.css"]
    monkeypatch.setattr(pages_module, "BUNDLED", project.root / "nowhere")
    with pytest.raises(OutputError, match=r"template style\.css not found"):
        Pages(bare).static()
