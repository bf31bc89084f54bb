"""HTML inside an article never becomes live markup: no scripts, no event handlers, no script links.

Each body is parsed with the standard library's HTML parser and checked structurally: only the
tags a Markdown renderer makes, no `on*` attribute, and every href/src absolute http(s) or mailto.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from publisher.ingest import ingest
from publisher.models import Article
from tests.conftest import Project

SAFE_TAGS = {
    "p", "em", "strong", "a", "img", "code", "pre", "blockquote", "ul", "ol", "li", "hr", "br", "s",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
SAFE_ATTRIBUTES = {"href", "src", "alt", "title", "start", "style", "class"}


class Markup(HTMLParser):
    """Collects every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def markup(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Markup()
    parser.feed(html)
    parser.close()
    return parser.tags


def assert_inert(html: str) -> None:
    for tag, attrs in markup(html):
        assert tag in SAFE_TAGS, f"live <{tag}> in {html!r}"
        for name, value in attrs.items():
            assert not name.startswith("on"), f"event handler {name} in {html!r}"
            assert name in SAFE_ATTRIBUTES, f"attribute {name} in {html!r}"
            if name in ("href", "src"):
                assert value is not None
                assert value.startswith(("https://", "http://", "mailto:")), f"{name}={value!r}"
            if name == "style":
                pytest.fail(f"style attribute in {html!r}")


def one(project: Project, name: str, text: str) -> Article:
    project.seed(name, text)
    result = ingest(project.settings())
    assert [str(p) for p in result.problems] == []
    (article,) = result.articles
    return article


HOSTILE = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    "<iframe src=https://evil.example></iframe>",
    "<svg onload=alert(1)>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<!-- comment --><style>body{display:none}</style>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<body onload=alert(1)>",
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_html_in_plain_text_is_text(project: Project, payload: str) -> None:
    article = one(project, "x.txt", f"date 2025-02-19 Story with {payload} inside.\n\n{payload}\n")
    assert_inert(article.body_html)
    assert [tag for tag, _ in markup(article.body_html)] == ["p", "p"]
    assert payload in article.paragraphs[1]  # kept as the writer typed it: it is text


@pytest.mark.parametrize("payload", HOSTILE)
def test_raw_html_in_markdown_is_text(project: Project, payload: str) -> None:
    """Both raw HTML blocks (own paragraph) and inline HTML (inside a sentence)."""
    article = one(
        project, "x.md", f"---\ntitle: T\ndate: 2025-02-19\n---\n{payload}\n\nInline {payload} here.\n"
    )
    assert_inert(article.body_html)


def test_raw_html_block_is_escaped_exactly(project: Project) -> None:
    article = one(project, "x.md", "---\ntitle: T\ndate: 2025-02-19\n---\n<div onclick=x>\nhi\n</div>\n")
    assert article.body_html == "<p>&lt;div onclick=x&gt;\nhi\n&lt;/div&gt;</p>"


LINKS = [
    "[a](javascript:alert(1))",
    "[a](JavaScript:alert(1))",
    "[a]( javascript:alert(1) )",
    "[a](<javascript:alert(1)>)",
    "[a](javascript&#58;alert(1))",
    "[a](&#106;avascript:alert(1))",
    "[a](vbscript:msgbox(1))",
    "[a](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[a](file:///etc/passwd)",
    "<javascript:alert(1)>",
    "<data:text/html,<script>alert(1)</script>>",
    "![i](javascript:alert(1))",
    "![i](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![i](data:image/png;base64,iVBORw0KGgo=)",
    "[a][r]\n\n[r]: javascript:alert(1)",
    "![i][r]\n\n[r]: data:image/png;base64,iVBORw0KGgo=",
    '[a](https://x.example/" onmouseover="alert(1))',
    "[a](https://x.example/ 'title\" onclick=\"x')",
]


@pytest.mark.parametrize("link", LINKS)
def test_script_and_data_links_never_become_links(project: Project, link: str) -> None:
    article = one(project, "x.md", f"---\ntitle: T\ndate: 2025-02-19\n---\nSee {link}\n")
    assert_inert(article.body_html)
    targets = [v for _, attrs in markup(article.body_html) for k, v in attrs.items() if k in ("href", "src")]
    assert all(t is not None and t.startswith("https://x.example/") for t in targets), targets


@pytest.mark.parametrize(
    ("link", "href"),
    [
        ("[a](/about.html)", "https://news.example.org/about.html"),
        ("[a](other.html#x)", "https://news.example.org/other.html#x"),
        ("[a](https://example.com/x?q=1)", "https://example.com/x?q=1"),
        ("<https://example.com/auto>", "https://example.com/auto"),
        ("<desk@example.com>", "mailto:desk@example.com"),
        ("[a][r]\n\n[r]: /ref", "https://news.example.org/ref"),
    ],
)
def test_good_links_are_kept_and_made_absolute(project: Project, link: str, href: str) -> None:
    article = one(project, "x.md", f"---\ntitle: T\ndate: 2025-02-19\n---\nSee {link}\n")
    assert_inert(article.body_html)
    assert [attrs.get("href") for tag, attrs in markup(article.body_html) if tag == "a"] == [href]


def test_images_are_kept_with_absolute_src(project: Project) -> None:
    """A site path stays a link to the site (pictures beside the article: tests/test_images.py)."""
    article = one(project, "x.md", "---\ntitle: T\ndate: 2025-02-19\n---\n![The pier](/img/pier.jpg)\n")
    assert markup(article.body_html) == [
        ("p", {}),
        ("img", {"src": "https://news.example.org/img/pier.jpg", "alt": "The pier"}),
    ]


def test_title_summary_and_tags_stay_plain_text(project: Project) -> None:
    """They are escaped where they are shown; here they must simply not be altered or rendered."""
    article = one(
        project,
        "x.md",
        "---\ntitle: '<b>Bold</b> & co'\nsummary: '<script>x</script>'\ntags: ['<i>t</i>']\n"
        "date: 2025-02-19\n---\nBody.\n",
    )
    assert article.title == "<b>Bold</b> & co"
    assert article.summary == "<script>x</script>"
    assert article.tags == ("<i>t</i>",)
